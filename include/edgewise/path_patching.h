// Automated path patching (Wang et al. 2022, automated as in Accelerated Path Patching, APP:
// Andersen et al. 2025), FLAP structured-pruning scores (An et al. 2024) and APP itself: path
// patching restricted to the heads a FLAP circuit keeps. docs/PATH_PATCHING.md has the method,
// the decisions where the references differ, and the benchmark; docs/notes/app-reference.md
// what the reference code computes.
//
// Path patching. Receivers start at the logits. One sweep scores every candidate sender head s
// in layers before the receiver: the sender's ablated output (resample: the corrupted prompt's)
// reaches only the receiver's input, everything else stays clean — in the graph of patch.h the
// mask with edges s -> receiver readers at 0. With paths = ViaMlps the sender also reaches the
// receiver through the MLPs between them, as the reference computes it (every other head frozen
// to its clean output, MLPs and norms recomputed): the sender's edges into those MLPs are
// ablated too, and the MLPs' changed outputs reach other heads and the logits as their clean
// values (their ablated value is the clean output). Score:
//     score(s) = (M(patched) - M(clean)) / (M(clean) - M(corrupted))
// (-1: the patch alone turns the clean behaviour into the corrupted one; KL: M(clean) = 0).
// A sweep selects the senders with |score| > min_value and |score| - |mean| > base(l) x SD
// (SD: unbiased, over every candidate's score in the sweep; l the sender's layer, R the
// receiver's): Flat: base = T; Linear (the reference code): T + 0.1 |l + 1 - R|; Sqrt (the
// paper's runs): T + 2 / sqrt((l + 1) H). Selected heads join the circuit and queue (first in,
// first out) as receivers through their q, k and v inputs, each input its own sweep (a grouped
// model's k/v input is its key/value head's reader: swept once, shared by the heads of the group).
// The circuit is the set of heads; the sender -> receiver edges found are kept with their scores.
//
// Every sweep is one batched patched pass per data batch (K masks, downstream-only recompute
// from the first layer the masks touch, sparse path).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "edgewise/graph.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/tasks.h"

namespace edgewise {

struct PathPatchingOptions {
  Metric metric = Metric::LogitDiff;  ///< logit-diff, prob-diff or kl
  Ablation ablation = Ablation::Resample;
  enum class Paths { Direct, ViaMlps };
  Paths paths = Paths::Direct;
  enum class Threshold { Flat, Linear, Sqrt };
  Threshold threshold = Threshold::Linear;
  double importance_threshold = 2.0;  ///< T, in standard deviations
  double min_value_threshold = 0.02;  ///< in units of the normalised score
  /// [L, H] bool: only these heads may be senders (APP); undefined: every head.
  at::Tensor allowed;
  int64_t batch_size = 32;  ///< examples per pass
  int64_t max_masks = 64;   ///< sender masks per patched pass
  /// Checkpoint (JSON, atomic) every `save_every` steps (a step = one receiver head taken from
  /// the queue) and at the end; empty: none. `resume` continues from it when it exists.
  std::string checkpoint;
  int64_t save_every = 5;
  bool resume = false;
  std::string fingerprint;  ///< identifies the run (model, task, ...); a resume with another fails
  /// Polled after each step: true stops the run after writing the checkpoint (as if killed).
  std::function<bool()> stop;
  /// steps done, heads in the circuit, receivers queued, sender evaluations so far.
  std::function<void(int64_t, int64_t, int64_t, int64_t)> progress;
};
const char* threshold_mode_name(PathPatchingOptions::Threshold t);
PathPatchingOptions::Threshold threshold_mode_from_string(const std::string& s);
const char* paths_name(PathPatchingOptions::Paths p);
PathPatchingOptions::Paths paths_from_string(const std::string& s);

/// One sweep: the scores of every candidate sender for one receiver input.
struct PathSweep {
  int64_t reader = -1;           ///< the graph's reader (logits, or a q/k/v reader)
  std::vector<int64_t> senders;  ///< head source indices scored
  std::vector<double> scores;    ///< their scores
  std::vector<int64_t> selected; ///< the senders selected
};

struct PathPatchingResult {
  at::Tensor heads;                ///< [L, H] bool: the circuit
  std::vector<PathSweep> sweeps;   ///< in the order run
  double metric_clean = 0, metric_corrupted = 0;
  int64_t steps = 0;               ///< receiver heads taken from the queue
  int64_t evaluations = 0;         ///< sender masks evaluated (one patched run each)
  int64_t passes = 0;              ///< patched passes (batches x mask groups)
  int64_t flops = 0;               ///< analytic FLOPs of every pass run (flops.h), resumed runs included
  double seconds = 0;              ///< wall time, resumed runs included
  bool complete = false;           ///< false when `stop` ended the run
};

/// The scores of one sweep (no thresholds): every sender in `senders` (head source indices)
/// patched to the readers `readers`, over all of `data`. `flops` (when given) is increased by
/// the analytic FLOPs of the passes.
std::vector<double> path_patch_scores(const Model& model, const Graph& graph, const Batch& data,
                                      const std::vector<int64_t>& senders, const std::vector<int64_t>& readers,
                                      const PathPatchingOptions& opt, int64_t* flops = nullptr,
                                      int64_t* passes = nullptr);
/// The senders a sweep selects (indices into `senders`) by the rule above.
std::vector<int64_t> select_senders(const Graph& graph, const std::vector<int64_t>& senders,
                                    const std::vector<double>& scores, int64_t receiver_layer,
                                    const PathPatchingOptions& opt);
/// The whole automated search. Graph: split q/k/v readers. Errors name bad options, the dataset
/// (resample needs aligned clean/corrupted prompts) or a checkpoint of another run.
PathPatchingResult path_patching(const Model& model, const Graph& graph, const Batch& data,
                                 const PathPatchingOptions& opt);

// ---------------------------------------------------------------------------------------------
// FLAP: fluctuation-based scores per attention head (input channels of the output projection,
// grouped by head) and per MLP channel (input channels of the down projection), from statistics
// over the real tokens of calibration prompts. Per channel j, x_j its values over the N tokens,
// W the projection's weight ([out, in]):
//     IFV_j  = mean_t (x_tj - mean x_j)^2          (population variance)
//     WIFV_j = IFV_j * sum_i W_ij^2
//     WIFN_j = mean_i |W_ij| * sqrt(mean_t x_tj^2)
// Attention channel scores are squared, then each module's channels are standardised per layer
// (mean, unbiased SD over the layer's channels); a head's score is the mean over its channels.
// Contrastive: per channel |score(clean)^2 - score(corrupted)^2| before the same standardisation.
enum class FlapMetric { IFV, WIFV, WIFN };
const char* flap_metric_name(FlapMetric m);
FlapMetric flap_metric_from_string(const std::string& s);

/// Per-channel statistics over real tokens, float64.
struct FlapStats {
  at::Tensor attn_mean, attn_var, attn_sq;  ///< [L, H * Dh] mean, variance, mean of squares
  at::Tensor mlp_mean, mlp_var, mlp_sq;     ///< [L, F]
  int64_t tokens = 0;
};
/// Statistics of `tokens` [N, T] (right-padded; `lengths` [N]) in batches of batch_size rows.
FlapStats flap_stats(const Model& model, const at::Tensor& tokens, const at::Tensor& lengths, int64_t batch_size);
/// Raw per-channel metric (before squaring / standardising): attention [L, H * Dh], MLP [L, F].
std::pair<at::Tensor, at::Tensor> flap_channel_metric(const Model& model, const FlapStats& s, FlapMetric m);

struct FlapScores {
  at::Tensor heads;  ///< [L, H] float64, standardised
  at::Tensor mlp;    ///< [L, F] float64, standardised
};
/// Vanilla FLAP: scores from the clean statistics.
FlapScores flap_scores(const Model& model, const FlapStats& clean, FlapMetric m);
/// Contrastive FLAP: |clean^2 - corrupted^2| per channel, then standardised.
FlapScores flap_contrastive_scores(const Model& model, const FlapStats& clean, const FlapStats& corrupted,
                                   FlapMetric m);

/// What a sparsity keeps: AL-AM, the global adaptive structure. Heads only (include_mlp false):
/// the round(n_heads x (1 - sparsity)) best heads. With MLP channels, heads and channels are
/// ranked together by standardised score and kept best first while the parameters they hold
/// (a head: its q and o rows plus its share of k/v; a channel: its rows and column) stay within
/// (1 - sparsity) of the total. Ties keep the lower index.
struct PruneSet {
  at::Tensor heads;     ///< [L, H] bool kept
  at::Tensor channels;  ///< [L, F] bool kept (all true without MLP pruning)
};
PruneSet flap_select(const Model& model, const FlapScores& s, double sparsity, bool include_mlp);
/// Union of two sets (hybrid FLAP).
PruneSet prune_union(const PruneSet& a, const PruneSet& b);

/// The metric (dataset mean) of the model with pruned heads and channels replaced by their mean
/// over the calibration statistics — FLAP's bias compensation, which adds W x mean(removed
/// inputs) to the output bias, is exactly this replacement — over `data` in batches. With
/// `ablation` Resample the pruned components take the corrupted prompt's values instead.
double pruned_metric(const Model& model, const Batch& data, const PruneSet& keep, const FlapStats& calibration,
                     Ablation ablation, Metric metric, int64_t batch_size);

/// The cliff point of a performance curve p (increasing sparsity), the reference's rules:
/// window w = round(n_levels / 10) (at least 2), drop = (max p - min p) / 10.
/// First: the first i with |p[i] - min p[i+1 .. i+w-1]| >= drop, moved to the first k < w with
/// p[i+k] - p[i+k+1] >= drop. Biggest: the first argmax of D[i] = |p[i] - min p[i+1 .. i+w-1]|,
/// moved to the last point before D falls by `drop`. Returns the index, or -1 when none (the
/// caller then uses the fixed sparsity).
enum class Cliff { First, Biggest, Fixed };
const char* cliff_name(Cliff c);
Cliff cliff_from_string(const std::string& s);
int64_t cliff_point(const std::vector<double>& performance, Cliff how);

}  // namespace edgewise
