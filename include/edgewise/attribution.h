// Attribution: a score for every edge (or node) of the graph, estimating how much the task
// metric changes when that edge alone is ablated. Circuits are chosen from those scores and
// measured by evaluate.h.
//
// Sign convention (all methods): score(e) ~ M(e ablated) - M(full model), M the batch mean of
// the metric over the dataset. For logit difference an important edge therefore has a large
// negative score; `exact` is that difference itself, the gradient methods are its estimates:
//   eap                 (õ_s - o_s) . dM/d in_d at the clean run (Syed et al. 2023)
//   eap-ig-inputs       the same difference times dM/d in_d averaged over `steps` runs whose
//                       input embeddings are corrupted + k/steps (clean - corrupted),
//                       k = 0 .. steps-1 (Hanna et al. 2024, their code's left Riemann sum)
//   eap-ig-activations  averaged over runs that interpolate one node group's outputs (input,
//                       layer l's heads, MLP l) between ablated and clean, k = 1 .. steps
//   clean-corrupted     averaged over the clean and the corrupted run
//   mask-gradient       -dM/d mask at every mask = mask_value (auto-circuit; 1 = EAP)
//   mask-gradient-ig    -dM/d mask averaged over mask values k/steps, k = 1 .. steps
//   exact               M(e ablated) - M(full), one patched pass per edge, batched
// In edgewise masks are 1 for an edge in and 0 for an edge ablated, so -dM/dmask = dM/dkeep.
// Node level: a source node's score is that of ablating all its out-edges; for the gradient
// methods it is the sum of its edges' scores (the gradient is linear), for exact its own pass.
//
// Not here: the patched forward itself (patch.h), the command line (tools/edgewise).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "edgewise/circuit.h"
#include "edgewise/metrics.h"
#include "edgewise/patch.h"
#include "edgewise/run.h"
#include "edgewise/tasks.h"

namespace edgewise {

struct AttributionOptions {
  Ablation ablation = Ablation::Resample;
  Metric metric = Metric::LogitDiff;
  MetricFn metric_fn;         ///< when set, replaces `metric`
  int64_t steps = 5;          ///< IG steps / mask-gradient-ig samples
  double mask_value = 1.0;    ///< mask-gradient: where the gradient is taken
  int64_t batch_size = 16;    ///< examples per pass
  int64_t exact_masks = 32;   ///< exact: single-edge masks per patched pass
  bool node_level = false;    ///< scores per source node [n_src] instead of per edge
  bool double_precision = false;  ///< compute in float64 (weights cast per pass; for checks)
  /// exact: only these edges ([n_src, n_dst] bool; undefined = every edge); others score 0.
  at::Tensor exact_candidates;
  /// After each part of the data (run.h's shape): stage = the method, done / total parts (exact:
  /// patched passes); may be empty.
  ProgressFn progress;
};

/// The method keys: eap, eap-ig-inputs, eap-ig-activations, clean-corrupted, mask-gradient,
/// mask-gradient-ig, exact.
const std::vector<std::string>& attribution_methods();
/// Scores [n_src, n_dst] (node level: [n_src]) in float64, 0 off the real edges. Fails naming
/// the method when unknown, or the dataset when it cannot serve the method (resample and the
/// IG variants need clean and corrupted prompts of equal token counts).
at::Tensor attribute(const std::string& method, const Model& model, const Graph& graph, const Batch& data,
                     const AttributionOptions& opt);

/// A source node's score from edge scores: the sum over its out-edges.
at::Tensor node_scores(const Graph& graph, const at::Tensor& edge_scores);

}  // namespace edgewise
