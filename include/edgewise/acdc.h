// ACDC (Conmy et al. 2023): the greedy search that removes every edge whose ablation, on top of
// the circuit found so far, moves the task loss by less than a threshold tau.
//
// Classic ACDC (the reference's order, acdc/TLACDCExperiment.py): readers are visited in reverse
// topological order — logits, then per layer from the last: m{l}, the v readers, the k readers,
// the q readers, heads by descending index — and each reader's in-edges latest source first
// (m{l-1} before the heads of layer l-1, heads by descending index, input last). Each edge is
// ablated on top of the current circuit; with loss L (the metric for KL, its negation for
// metrics where higher is better):
//     L(circuit without e) - L(circuit) < tau   ->  e is removed for good (L moves on)
// A reader whose node no longer reaches the logits through kept edges loses its in-edges without
// evaluation (the reference does the same: their effect is zero).
//
// Speed, by structure (docs/ACDC.md): the state of the current circuit (every source's output,
// every reader's input) is kept, so an evaluation recomputes only the nodes downstream of the
// edge through kept edges (the rest of the model is unchanged by construction); nodes that no
// longer reach the logits are never recomputed; candidates are batched: one pass evaluates K
// masks, the k-th removing the first k candidate edges of the reader (speculating that edges are
// removed, which most are); the walk stops at the first kept edge. The decisions are exactly the
// sequential algorithm's (the test compares with a full forward per edge).
//
// Variants (from Phylliida/ACDC): group testing (ablate all of a reader's remaining in-edges at
// once; if the loss moves by less than tau remove them all, else split in halves and recurse) and
// try-many-then-rollback (evaluate every in-edge alone, remove all that pass at once; if the
// joint loss change exceeds rollback_tau keep only the best half, quarter, ... and test the rest
// again). Each accepted step raises the loss by less than tau (rollback: rollback_tau), so the
// final loss is at most L(full) + tau x (accepted steps); see docs/ACDC.md for the measured gap
// to classic.
//
// Not here: the command line (tools/edgewise), choosing prompts.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "edgewise/graph.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/names.h"
#include "edgewise/patch.h"
#include "edgewise/run.h"
#include "edgewise/tasks.h"

namespace edgewise {

struct AcdcOptions {
  double tau = 0.01;
  Ablation ablation = Ablation::Resample;
  Metric metric = Metric::KL;
  MetricFn metric_fn;            ///< when set, replaces `metric` (its direction sets the loss's sign)
  enum class Mode { Classic, Group, Rollback };
  Mode mode = Mode::Classic;
  double rollback_tau = -1;      ///< rollback: the joint threshold (< 0: 40 tau, Phylliida's ratio)
  bool absolute = false;         ///< compare |loss change| with tau (the reference's abs_value_threshold)
  int64_t max_candidates = 32;   ///< masks per batched pass (classic speculation, rollback's singles)
  bool double_precision = false; ///< compute in float64 (for checks)
  /// Checkpoint (JSON, atomic, at reader boundaries), resume, stop and progress (run.h). Progress:
  /// stage "readers", done/total readers, figures "edges kept", "evaluations", "metric".
  RunControl run;
};
inline constexpr EnumName<AcdcOptions::Mode> kAcdcModeNames[] = {{AcdcOptions::Mode::Classic, "classic"},
                                                                {AcdcOptions::Mode::Group, "group"},
                                                                {AcdcOptions::Mode::Rollback, "rollback"}};
const char* acdc_mode_name(AcdcOptions::Mode m);
AcdcOptions::Mode acdc_mode_from_string(const std::string& s);

/// One decided edge.
struct AcdcStep {
  enum class Decision { Removed, Kept, Skipped };
  int64_t src = 0, dst = 0;
  Decision decision = Decision::Kept;
  double metric = 0;      ///< the metric with the edge (group: the group) ablated; current metric when skipped
  double delta = 0;       ///< loss change that was compared with tau (0 when skipped)
  int64_t evaluations = 0;  ///< evaluations so far, this one included
};
inline constexpr EnumName<AcdcStep::Decision> kAcdcDecisionNames[] = {{AcdcStep::Decision::Removed, "removed"},
                                                                     {AcdcStep::Decision::Kept, "kept"},
                                                                     {AcdcStep::Decision::Skipped, "skipped"}};
const char* acdc_decision_name(AcdcStep::Decision d);

struct AcdcResult {
  at::Tensor kept;    ///< [n_src, n_dst] bool: the edges left (before any pruning)
  at::Tensor scores;  ///< [n_src, n_dst] float64: M(edge ablated) - M(circuit) when it was tried; 0 if skipped
  std::vector<AcdcStep> trajectory;
  double metric_full = 0;   ///< the metric of the full model
  double metric_final = 0;  ///< of the circuit (ACDC's own running value)
  int64_t evaluations = 0;  ///< masks evaluated (one "forward" each, downstream part only)
  int64_t passes = 0;       ///< batched passes those took
  int64_t skipped = 0;      ///< edges removed without evaluation (their reader was disconnected)
  /// evaluations of edges into readers other than the logits that needed the prediction
  /// positions only (the node reaches the logits without passing through keys or values)
  int64_t last_position_evaluations = 0;
  bool complete = false;    ///< false when `stop` ended the run early
  double seconds = 0;       ///< wall time, summed over resumed runs
};

/// Runs ACDC on all of `data` at once (one batch, as the reference does). Mean ablations use the
/// mean over `data`. Fails with a clear message for bad options or a checkpoint that does not
/// belong to this run.
AcdcResult acdc(const Model& model, const Graph& graph, const Batch& data, const AcdcOptions& opt);

/// The trajectory as CSV (step, edge, decision, metric, delta, evaluations), atomically.
void acdc_write_trajectory(const AcdcResult& r, const Graph& graph, const std::string& path);

}  // namespace edgewise
