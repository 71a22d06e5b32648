// ROC curves and AUC of a scored circuit against a ground-truth circuit (issue 25): how well a
// method's ranking of edges (or nodes) separates the true circuit's from the rest, as ACDC and
// Edge Pruning report recovery of Tracr's and InterpBench's known circuits. Torch-free.
//
//   items      edge level: every real edge of the graph; with merge_qkv a head's q, k and v
//              readers are one (InterpBench's convention): an edge into the head, its importance
//              the largest of the three, true when any is; node level: every source node
//              (input, heads, MLPs), importance the largest of its out-edges', true (chosen) when
//              any out-edge is in the truth (the circuit)
//   importance |score| (absolute, the default), or the score itself (higher = more important:
//              a sweep's folded scores -- ACDC's largest tau keeping the edge -- are already so)
//   curve      thresholds from +inf down through every distinct importance (ties in one step),
//              (FPR, TPR) after each; AUC by trapezoids, which equals the Mann-Whitney statistic
//              with ties counted 1/2 and sklearn.metrics.roc_auc_score
//   chosen     the scored circuit's own in-graph edges: their TPR and FPR
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "edgewise/circuit.h"

namespace edgewise {

struct RocCurve {
  std::vector<double> thresholds;  ///< descending; the first is +inf (nothing selected)
  std::vector<double> fpr, tpr;    ///< one point per threshold, from (0, 0) to (1, 1)
  double auc = 0;                  ///< NaN when the truth has no positive or no negative
  int64_t positives = 0, negatives = 0;
};
/// The ROC curve of `importance` against `truth` (one flag per item). Fails for different sizes
/// or a non-finite importance.
RocCurve roc_curve(const std::vector<double>& importance, const std::vector<uint8_t>& truth);

struct RocOptions {
  bool absolute = true;    ///< rank by |score|; else by the score
  bool merge_qkv = false;  ///< edge level: q/k/v readers of a head as one reader
};
/// What a ROC is computed over: names, importance, truth and the scored circuit's own choice.
struct RocItems {
  std::vector<std::string> names;
  std::vector<double> importance;
  std::vector<uint8_t> truth, chosen;
};
/// Edge-level and node-level items of `scored` against `truth`: both must be circuits of the
/// same graph (shape and q/k/v split; errors say which differs).
RocItems roc_edge_items(const Circuit& scored, const Circuit& truth, const RocOptions& opt);
RocItems roc_node_items(const Circuit& scored, const Circuit& truth, const RocOptions& opt);

/// A level's curve and the chosen circuit's rates.
struct RocLevel {
  RocCurve curve;
  double tpr_chosen = 0, fpr_chosen = 0;
  int64_t chosen = 0;
};
RocLevel roc_level(const RocItems& items);

/// "level,threshold,fpr,tpr" rows for each level given, then "# <level> AUC .. TPR .. FPR .." lines.
std::string roc_csv(const std::vector<std::pair<std::string, RocLevel>>& levels);
/// The curves in one small SVG (FPR on x, TPR on y, the diagonal for reference), AUCs in the legend.
std::string roc_svg(const std::vector<std::pair<std::string, RocLevel>>& levels, const std::string& title);

}  // namespace edgewise
