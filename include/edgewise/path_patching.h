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
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgewise/circuit.h"
#include "edgewise/graph.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/names.h"
#include "edgewise/patch.h"
#include "edgewise/run.h"
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
  /// Checkpoint (JSON, atomic, at most every run.checkpoint_seconds between steps — a step is one
  /// receiver head taken from the queue — and at the end), resume, stop (polled before each step)
  /// and progress (run.h): stage "receivers", done = steps, total = steps + queued, figures
  /// "heads", "queued", "evaluations".
  RunControl run;
};
inline constexpr EnumName<PathPatchingOptions::Threshold> kThresholdModeNames[] = {
    {PathPatchingOptions::Threshold::Flat, "flat"},
    {PathPatchingOptions::Threshold::Linear, "linear"},
    {PathPatchingOptions::Threshold::Sqrt, "sqrt"}};
inline constexpr EnumName<PathPatchingOptions::Paths> kPathsNames[] = {{PathPatchingOptions::Paths::Direct, "direct"},
                                                                      {PathPatchingOptions::Paths::ViaMlps, "via-mlps"}};
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

/// One sweep's raw metrics and what they cost.
struct PathScores {
  std::vector<double> metric;  ///< per sender: the metric with it patched into the receivers
  int64_t flops = 0;           ///< analytic FLOPs of the passes (flops.h)
  int64_t passes = 0;          ///< patched passes run
};
/// The scores of one sweep (no thresholds): every sender in `senders` (head source indices)
/// patched to the readers `readers`, over all of `data`.
PathScores path_patch_scores(const Model& model, const Graph& graph, const Batch& data,
                             const std::vector<int64_t>& senders, const std::vector<int64_t>& readers,
                             const PathPatchingOptions& opt);
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
inline constexpr EnumName<FlapMetric> kFlapMetricNames[] = {
    {FlapMetric::IFV, "ifv"}, {FlapMetric::WIFV, "wifv"}, {FlapMetric::WIFN, "wifn"}};
const char* flap_metric_name(FlapMetric m);
/// Case-insensitive ("IFV" as the paper writes it).
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
inline constexpr EnumName<Cliff> kCliffNames[] = {{Cliff::First, "first"}, {Cliff::Biggest, "biggest"}, {Cliff::Fixed, "fixed"}};
const char* cliff_name(Cliff c);
Cliff cliff_from_string(const std::string& s);
int64_t cliff_point(const std::vector<double>& performance, Cliff how);

// ---------------------------------------------------------------------------------------------
// The pipelines `edgewise prune` and `discover --method path-patching | flap | app` run, as the
// library's: FLAP's sweep over sparsities with its cliff point (vanilla, contrastive, or their
// union: hybrid), head sets as circuits, the reports, and APP's comparison with plain path
// patching. Performance is the pruned model's metric as a percentage of the full model's, with
// pruned heads replaced by their mean (FLAP's bias compensation) or the corrupted prompt's value.

enum class FlapKind { Vanilla, Contrastive, Hybrid };
inline constexpr EnumName<FlapKind> kFlapKindNames[] = {
    {FlapKind::Vanilla, "vanilla"}, {FlapKind::Contrastive, "contrastive"}, {FlapKind::Hybrid, "hybrid"}};
const char* flap_kind_name(FlapKind k);
FlapKind flap_kind_from_string(const std::string& s);

struct FlapSweepOptions {
  FlapKind kind = FlapKind::Vanilla;
  std::optional<FlapMetric> flap_metric;  ///< default: WIFV for vanilla, WIFN for contrastive
  double lowest = 0.60, highest = 0.98, step = 0.01;  ///< the sweep's sparsities (inclusive)
  Cliff cliff = Cliff::First;
  double sparsity = 0.75;    ///< the fixed sparsity (Cliff::Fixed, or when no cliff is found)
  bool include_mlp = false;  ///< prune MLP channels too (AL-AM)
  Ablation eval_ablation = Ablation::Mean;  ///< what pruned heads take: mean or resample
  Metric metric = Metric::LogitDiff;        ///< the task metric (KL measures as logit difference)
  int64_t batch_size = 16;
  /// After each level of the sweep (run.h's shape): stage "<kind> (<flap metric>)", e.g.
  /// "vanilla (wifv)", done / total levels, figures "sparsity", "heads", "performance %".
  ProgressFn progress;
};
/// One kind's curve over the sweep.
struct FlapCurve {
  FlapMetric flap_metric = FlapMetric::WIFV;
  std::vector<double> performance;  ///< % of the full model, per level
  std::vector<int64_t> heads;       ///< heads kept, per level
  int64_t cliff = -1;               ///< index of the cliff point; -1: none (the fixed sparsity)
  double sparsity = 0;              ///< the sparsity chosen
  PruneSet set;                     ///< what it keeps
  double set_performance = 0;       ///< its performance (%; measured again only at a fixed sparsity)
  at::Tensor head_scores;           ///< [L, H] float64, standardised
};
struct FlapSweep {
  FlapStats clean, corrupted;               ///< corrupted: only for contrastive / hybrid
  std::vector<double> levels;               ///< sparsities
  std::map<std::string, FlapCurve> curves;  ///< "vanilla" and / or "contrastive"
  PruneSet result;                          ///< the kind's set (hybrid: the union)
  double metric_model = 0;                  ///< the full model's metric (the 100% of performance)
  int64_t flops = 0;                        ///< analytic FLOPs of every pass
  double seconds = 0;
};
/// Statistics, scores, the sweep, the cliffs and the result. Fails naming a bad option.
FlapSweep flap_sweep(const Model& model, const Batch& data, const FlapSweepOptions& opt);
/// The metric FLAP and APP measure performance with: KL (0 for the full model: no ratio) is
/// measured as logit difference, the others as themselves.
Metric flap_performance_metric(Metric m);
/// Performance (% of metric_model) of the model that keeps `heads` [L, H] and every MLP channel.
double head_set_performance(const Model& model, const Batch& data, const at::Tensor& heads,
                            const FlapStats& calibration, Ablation eval_ablation, Metric metric, int64_t batch_size,
                            double metric_model);
/// The report of a sweep: levels, every curve (performance, heads, cliff, chosen sparsity, every
/// head's standardised score by name), the heads kept, FLOPs, seconds.
nlohmann::json flap_sweep_json(const FlapSweep& f, const Graph& graph, const FlapSweepOptions& opt);

/// A head set [L, H] as a circuit over the split graph: the edges among input, the kept heads
/// (their q/k/v readers; a grouped k/v reader when any head of its group is kept), every MLP and
/// the logits. `scores` [n_src, n_dst] go into the circuit as they are.
Circuit head_circuit(const Model& model, const Graph& graph, const at::Tensor& heads, const at::Tensor& scores);
/// The sender -> receiver scores of every sweep as [n_src, n_dst] float64 (0 elsewhere).
at::Tensor path_sweep_scores(const Graph& graph, const PathPatchingResult& r);
/// The heads of [L, H] by name ("a{l}.h{h}"), in order.
nlohmann::json heads_json(const Graph& graph, const at::Tensor& heads);
/// The options that define a path-patching run (thresholds, paths, metric, ablation).
nlohmann::json path_patching_settings_json(const PathPatchingOptions& o);
/// The report of a run: heads, performance, metrics, counts, FLOPs, seconds, every sweep.
nlohmann::json path_patching_json(const PathPatchingResult& r, const Graph& graph, double performance);

/// Plain path patching as APP compares with it: its heads, FLOPs and seconds.
struct PathPatchingReference {
  at::Tensor heads;  ///< [L, H] bool
  int64_t flops = 0;
  double seconds = 0;
  std::string from;  ///< the report it was read from, or the circuit written for it
};
/// Reads the report `path` (written beside a path-patching circuit) and checks that it is a run
/// of this model, task, examples and settings; fails naming the file otherwise.
PathPatchingReference path_patching_reference(const std::string& path, const Model& model, const Graph& graph,
                                              const std::string& task, int64_t examples,
                                              const PathPatchingOptions& o);
/// APP against plain path patching: TPR (the share of path patching's heads APP finds) and the
/// FLOP and wall-time ratios, without and with FLAP's own cost.
struct AppComparison {
  int64_t reference_heads = 0;
  double reference_performance = 0, tpr = 0;
  double flop_ratio = 0, flop_ratio_with_flap = 0, time_ratio = 0, time_ratio_with_flap = 0;
};
AppComparison app_compare(const PathPatchingReference& ref, double reference_performance,
                          const PathPatchingResult& app, const FlapSweep& flap);

/// Path patching with its performance as FLAP measures a head set: the full model's metric under
/// the pruned model's evaluation (100%), and the found heads' percentage of it (pruned heads take
/// `eval_ablation`, calibrated on the clean prompts' statistics).
struct PathPatchingRun {
  PathPatchingResult result;
  double metric_model = 0;
  double performance = 0;  ///< %
};
PathPatchingRun path_patching_run(const Model& model, const Graph& graph, const Batch& data,
                                  const PathPatchingOptions& o, Ablation eval_ablation);

/// APP end to end: the FLAP sweep (`flap.kind` is APP's pruning), plain path patching (taken from
/// `reference` when given, else run here: checkpoint `<o.run.checkpoint>.pp`, progress stages
/// prefixed "plain "), path patching within FLAP's heads, every head set's performance and the
/// comparison.
struct AppRun {
  FlapSweep flap;
  std::optional<PathPatchingResult> reference_run;  ///< set when plain path patching ran here
  PathPatchingReference reference;                  ///< `from` empty when it ran here
  PathPatchingResult app;
  double performance = 0;  ///< APP's heads, %
  AppComparison comparison;
};
AppRun app_run(const Model& model, const Graph& graph, const Batch& data, const FlapSweepOptions& flap,
               const PathPatchingOptions& o, const std::optional<PathPatchingReference>& reference);

}  // namespace edgewise
