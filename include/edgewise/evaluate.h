// Circuit evaluation: the one place where circuits are chosen from scores and measured (as
// EAP-IG's evaluate.py and auto-circuit's measure_prune_metrics are for those libraries). Every
// method's result goes through these functions, and so does every command that reports a metric.
//
//   circuits from scores   top-n edges, a score threshold, EAP-IG's greedy growth, a node budget;
//                          then edges on no input -> logits path are pruned
//   one evaluation         the full model and K circuits (masks [K, n_src, n_dst]) in one
//                          patched pass per batch, returning every metric at once: logit and
//                          probability difference, KL(full || circuit), accuracy, exact match
//   faithfulness curves    the circuits at a list of edge budgets, their normalised faithfulness,
//                          and MIB's CPR (area under f) and CMD (area under |1 - f|), trapezoids
//                          over the budget fractions
//   plain-model scores     answer loss, task scores and perplexity of a (tuned) model
//
// Not here: the patched forward (patch.h), the metrics' formulas (metrics.h), writing files (the
// callers decide where; circuit.h and plot.h format).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "edgewise/circuit.h"
#include "edgewise/graph.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/run.h"
#include "edgewise/tasks.h"

namespace edgewise {

// --- Circuits from scores ---------------------------------------------------------------------

/// The circuit's in-graph flags as a float mask [n_src, n_dst].
at::Tensor circuit_mask(const Circuit& c);
/// The circuit's scores as a float32 tensor [n_src, n_dst] (a copy).
at::Tensor circuit_scores(const Circuit& c);
/// A circuit of `model` over `graph` holding these scores [n_src, n_dst] (any floating dtype;
/// stored as float32) and, when `kept` (bool [n_src, n_dst]) is given, these in-graph edges;
/// otherwise no edge is in.
Circuit circuit_from_scores(const Model& model, const Graph& graph, const at::Tensor& scores,
                            const at::Tensor& kept = {});

/// How a circuit is chosen from scores: exactly one of edges, nodes, threshold.
struct SelectOptions {
  int64_t edges = -1;      ///< keep this many edges (before pruning), or
  int64_t nodes = -1;      ///< keep this many source nodes (input always kept) and the edges between them, or
  double threshold = std::numeric_limits<double>::quiet_NaN();  ///< every edge whose importance is >= this
  bool absolute = true;    ///< rank by |score|; else by importance -score (higher_is_better) or +score
  bool greedy = false;     ///< EAP-IG's greedy: grow from the logits, best edge into the circuit first (edges only)
  bool higher_is_better = true;  ///< the metric's direction (signed ranking only)
};
/// Marks the chosen edges in c.in_graph (c.scores must hold the scores) and prunes edges on no
/// input -> logits path. Returns the number of edges chosen before pruning. Fails for a circuit
/// without scores or for not exactly one budget.
int64_t select_circuit(Circuit& c, const SelectOptions& opt);

// --- Measuring circuits -----------------------------------------------------------------------

/// Every metric of the full model and of K circuits, each a mean over the examples at their
/// prediction positions. Index 0 is the full model, then one entry per mask.
struct CircuitEvaluation {
  std::vector<double> logit_diff, prob_diff, kl, accuracy, mse;
  std::vector<double> exact_match;  ///< the circuit's top token equals the full model's
  std::vector<double> custom;       ///< the caller's metric (EvaluateOptions::metric_fn), when given
  /// With EvaluateOptions::per_example: each metric's value per example, float64 [K + 1, N]
  /// (keys logit_diff, prob_diff, kl, accuracy, mse, exact_match, and custom when given); the
  /// vectors above are their means over N.
  std::map<std::string, at::Tensor> per_example;
  /// The values of one metric ([K + 1]).
  const std::vector<double>& of(Metric m) const;
  /// Normalised faithfulness of entry k under metric m, against the full model (entry 0) and
  /// the entry `empty` (the empty circuit).
  double faithfulness(Metric m, size_t k, size_t empty) const;
};
struct EvaluateOptions {
  Ablation ablation = Ablation::Resample;  ///< what replaces an edge outside the circuit
  int64_t batch_size = 16;                 ///< examples per patched pass
  MetricFn metric_fn;                      ///< also measure this metric (CircuitEvaluation::custom)
  bool per_example = false;                ///< also keep every example's values (CircuitEvaluation::per_example)
  /// After each batch (run.h's shape): stage "examples", done / total examples; may be empty.
  ProgressFn progress;
};
/// The full model and every circuit of masks [K, n_src, n_dst] over `data`: one patched pass
/// per batch evaluates them all (the full model's logits also serve KL and exact match). Mean
/// ablations use the dataset mean over real tokens. Fails for an empty dataset or a batch size < 1.
CircuitEvaluation evaluate_circuits(const Model& model, const Graph& graph, const Batch& data, const at::Tensor& masks,
                                    const EvaluateOptions& opt);
/// One metric of evaluate_circuits: K + 1 values, the full model first.
std::vector<double> circuit_metrics(const Model& model, const Graph& graph, const Batch& data, const at::Tensor& masks,
                                    Ablation ablation, Metric metric, int64_t batch_size,
                                    const ProgressFn& progress = {});

// --- Faithfulness curves ----------------------------------------------------------------------

/// The default edge budgets of a curve, as fractions of all edges: 0.1% .. 100%.
const std::vector<double>& curve_fractions();
/// The circuits of a curve: for each fraction f, the best max(1, round(f x n_edges)) edges of
/// `scored`'s scores by `rule` (its edge ranking; its budget fields are replaced), pruned.
std::vector<Circuit> curve_circuits(const Circuit& scored, const SelectOptions& rule, const std::vector<double>& fractions);
/// A search's sweep as a curve: its circuits ordered by their size before pruning
/// (`raw_edges[i]` of `circuits[i]`; ties keep the sweep's order), each at raw / n_edges.
struct CurvePoints {
  std::vector<double> fractions;
  std::vector<Circuit> circuits;
};
CurvePoints sweep_curve(const std::vector<Circuit>& circuits, const std::vector<int64_t>& raw_edges, int64_t n_edges);
struct CurvePoint {
  double fraction = 0;     ///< the budget, a fraction of all edges
  int64_t budget = 0;      ///< round(fraction x edges)
  int64_t edges = 0;       ///< edges left after pruning
  double metric = 0;       ///< the task metric of the circuit
  double faithfulness = 0; ///< normalised
};
struct FaithfulnessCurve {
  std::vector<CurvePoint> points;
  double cpr = 0;  ///< area under the faithfulness over the fractions (trapezoids)
  double cmd = 0;  ///< area under |1 - faithfulness|
  /// "fraction,edges,edges_after_prune,metric,faithfulness" rows and a closing "# CPR .. CMD .." line.
  std::string csv() const;
};
/// The curve from its circuits' metric values (`metric[i]` of `circuits[i]`) and the full
/// model's and the empty circuit's.
FaithfulnessCurve faithfulness_curve(const std::vector<double>& fractions, const std::vector<Circuit>& circuits,
                                     const std::vector<double>& metric, double f_empty, double f_model, int64_t n_edges);

// --- Scores of the plain model ----------------------------------------------------------------

/// Cross-entropy of the first correct answer at each example's prediction position (batch mean).
at::Tensor answer_loss(const at::Tensor& logits, const Batch& b);
/// The plain model's task scores on `data` (means over examples).
struct TaskScore {
  double logit_diff = 0, accuracy = 0, loss = 0;  ///< loss: answer_loss
};
TaskScore task_score(const Model& model, const Batch& data, int64_t batch_size = 32);
/// Perplexity of `model` on `text`: tokenised without BOS, cut into windows of `context`
/// tokens (the last one shorter), exp of the mean next-token cross-entropy over all predicted
/// tokens. Fails when the text has fewer than 2 tokens.
double perplexity(const Model& model, const std::string& text, int64_t context = 128, int64_t batch_size = 8);

}  // namespace edgewise
