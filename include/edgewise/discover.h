// One entry point for every discovery method: a table of methods by key (auto-circuit's
// PRUNE_ALGO_DICT, llama.cpp's tables) and one result type, so a caller — the command line, the
// Python package, a benchmark — runs any method the same way and gets the same thing back:
//
//   DiscoveryResult r = discover("acdc", model, graph, data, options);
//   r.scores      [n_src, n_dst] float64, 0 off the real edges; larger |score| = more important
//   r.in_circuit  [n_src, n_dst] bool, the method's own circuit (before pruning); undefined for
//                 attribution methods, whose circuit is chosen from the scores (evaluate.h)
//   r.report      the method's record (settings, counts, seconds, its own figures) as JSON
//
// A sweep (ACDC over taus, Edge Pruning and HAP over targets) is discover_sweep(): one run per
// value, and sweep_scores() folds the circuits into one score per edge, so one curve and one
// selection rule serve sweeps as they serve attribution (ACDC: the largest tau at which the edge
// is still kept, as auto-circuit scores ACDC). Long methods take their checkpoint, stop flag and
// progress in one shape (run.h's RunControl, a member `run` of their options).
//
// Not here: the methods (attribution.h, acdc.h, edge_pruning.h, path_patching.h), choosing and
// measuring circuits (evaluate.h), files.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgewise/acdc.h"
#include "edgewise/attribution.h"
#include "edgewise/edge_pruning.h"
#include "edgewise/graph.h"
#include "edgewise/model.h"
#include "edgewise/path_patching.h"
#include "edgewise/tasks.h"

namespace edgewise {

/// HAP (Gu et al. 2025, "Discovering Transformer Circuits via a Hybrid Attribution and Pruning
/// Framework"): an attribution method keeps the `keep_fraction` of edges with the largest
/// |score|, then Edge Pruning learns masks over those survivors only (the others stay ablated and
/// count as removed in the sparsity, which is Edge Pruning's target over the whole graph).
struct HapOptions {
  std::string prefilter = "eap";  ///< any attribution method (its options: DiscoverOptions::attribution)
  double keep_fraction = 0.1;     ///< of the graph's real edges, in (0, 1]
};

/// APP: the FLAP circuit its path patching searches within (the other FLAP options: `flap`).
struct AppOptions {
  FlapKind pruning = FlapKind::Contrastive;  ///< the APP paper's best single kind
};

/// Every method's options; each method reads its own struct (the library's defaults are the
/// command line's). Ablation and metric live in each struct, as each method defines them.
struct DiscoverOptions {
  AttributionOptions attribution;     ///< eap, eap-ig-*, clean-corrupted, mask-gradient*, exact
  AcdcOptions acdc;                   ///< acdc (one tau per call)
  EdgePruningOptions edge_pruning;    ///< edge-pruning (one target per call; `data` is the training set)
  PathPatchingOptions path_patching;  ///< path-patching, app
  FlapSweepOptions flap;              ///< flap, app (the FLAP circuit APP searches within)
  AppOptions app;                     ///< app (replaces flap.kind)
  HapOptions hap;                     ///< hap (with `attribution` for the prefilter, `edge_pruning` for the rest)
};

/// What every method returns.
struct DiscoveryResult {
  std::string method;
  at::Tensor scores;      ///< [n_src, n_dst] float64, 0 off the real edges
  at::Tensor in_circuit;  ///< [n_src, n_dst] bool; undefined: choose from the scores
  std::string score_sign; ///< what a score means ("score ~ M(edge ablated) - M(full model)", ...)
  nlohmann::json report = nlohmann::json::object();
};

/// How a method is used.
enum class MethodKind {
  Attribution,  ///< scores every edge; the circuit is chosen from the scores
  Search,       ///< finds its own circuit (ACDC, Edge Pruning, path patching, FLAP, APP)
};

struct MethodInfo {
  const char* key;
  MethodKind kind;
  const char* summary;  ///< one line, for help texts
  /// Needs the split q/k/v graph (head-set methods).
  bool split_graph_only = false;
  /// The option a sweep varies, one run per value: "tau" (ACDC), "target" (Edge Pruning, HAP);
  /// "" when the method has none. Its files carry `sweep_suffix` + the value (".tau0.01").
  const char* sweep = "";
  const char* sweep_suffix = "";
  /// Learns from its data (Edge Pruning, HAP): measure its circuits on held-out examples.
  bool trains = false;
  /// Finds a set of heads (path patching, FLAP, APP), measured by the pruned model (FLAP's
  /// performance) rather than edge by edge.
  bool head_set = false;
};
/// The table, in the order help lists it.
const std::vector<MethodInfo>& discovery_methods();
/// The entry of `key`; fails naming the known keys.
const MethodInfo& discovery_method(const std::string& key);

/// Runs method `key` on `data`. Fails with a clear message for an unknown key, options the
/// method cannot take (a caller's metric where the method has none) or data it cannot use.
DiscoveryResult discover(const std::string& key, const Model& model, const Graph& graph, const Batch& data,
                         const DiscoverOptions& opt);

/// A sweep's circuits folded into one score per edge: the largest sweep value at which the edge
/// is in the circuit (0 where it never is). `kept[i]` [n_src, n_dst] bool belongs to `values[i]`
/// (values > 0). For ACDC, whose circuit shrinks as tau grows, the edges scoring >= tau are the
/// circuit of tau wherever the sweep's circuits are nested.
at::Tensor sweep_scores(const std::vector<at::Tensor>& kept, const std::vector<double>& values);

/// A sweep: one run per value of the method's sweep option, and their circuits folded into one
/// score per edge (sweep_scores of the runs' in_circuit).
struct SweepResult {
  std::string method;
  std::vector<double> values;
  std::vector<DiscoveryResult> runs;  ///< runs[i] at values[i]
  at::Tensor scores;                  ///< [n_src, n_dst] float64: the largest value keeping the edge
};
/// Runs method `key` once per value (tau, target; MethodInfo::sweep) on `data`. With several
/// values, a checkpoint file gets the value's suffix (run.checkpoint "ck.json" -> "ck.tau0.01.json")
/// and progress stages are prefixed with the value ("tau=0.01 readers"). HAP's prefilter runs
/// once for the whole sweep. Fails for a method without a sweep option, no values, or a value
/// that is not a positive number.
SweepResult discover_sweep(const std::string& key, const Model& model, const Graph& graph, const Batch& data,
                           const DiscoverOptions& opt, const std::vector<double>& values);
/// The path without its extension ("dir/a.json" -> "dir/a"; a dot in a directory name is not one).
std::string path_stem(const std::string& path);
/// "dir/a.json" + ".tau0.01" -> "dir/a.tau0.01.json".
std::string path_with_suffix(const std::string& path, const std::string& suffix);
/// The value's suffix: sweep_suffix + %g ("tau" 0.01 -> ".tau0.01").
std::string sweep_value_suffix(const MethodInfo& m, double value);

/// HAP's survivors: the max(1, round(fraction x edges)) real edges of the largest |score| (ties:
/// lower index first), as [n_src, n_dst] bool. Fails for a fraction outside (0, 1].
at::Tensor prefilter_candidates(const Graph& graph, const at::Tensor& scores, double fraction);
/// HAP's first stage on `data`: the prefilter's scores (with `attribution`'s options), then its
/// survivors. The command line sets EdgePruningOptions::candidates from it.
at::Tensor hap_candidates(const Model& model, const Graph& graph, const Batch& data, const HapOptions& hap,
                          const AttributionOptions& attribution);

}  // namespace edgewise
