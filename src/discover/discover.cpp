// The method table and the single entry point (discover.h).
#include "edgewise/discover.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <utility>

#include "edgewise/error.h"
#include "edgewise/evaluate.h"

namespace edgewise {

namespace {

DiscoveryResult run_attribution(const std::string& key, const Model& model, const Graph& graph, const Batch& data,
                                const DiscoverOptions& opt) {
  if (opt.attribution.node_level) fail(key, "discover() scores edges; node scores: attribute() with node_level");
  DiscoveryResult r;
  r.scores = attribute(key, model, graph, data, opt.attribution);
  r.score_sign = key == "exact" ? "score = M(edge ablated) - M(full model)" : "score ~ M(edge ablated) - M(full model)";
  const AttributionOptions& a = opt.attribution;
  r.report = {{"ablation", ablation_name(a.ablation)},
              {"metric", metric_label(a.metric, a.metric_fn)},
              {"steps", a.steps}, {"batch_size", a.batch_size}};
  return r;
}

DiscoveryResult run_acdc(const Model& model, const Graph& graph, const Batch& data, const DiscoverOptions& opt) {
  const AcdcOptions& o = opt.acdc;
  AcdcResult a = acdc(model, graph, data, o);
  DiscoveryResult r;
  r.scores = a.scores;
  r.in_circuit = a.kept;
  r.score_sign = "score = M(edge ablated) - M(circuit) when ACDC tried it";
  nlohmann::json traj = nlohmann::json::array();
  for (size_t i = 0; i < a.trajectory.size(); ++i) {
    const AcdcStep& s = a.trajectory[i];
    traj.push_back({static_cast<int64_t>(i), graph.edge_name(s.src, s.dst), acdc_decision_name(s.decision), s.metric,
                    s.delta, s.evaluations});
  }
  r.report = {{"tau", o.tau}, {"mode", acdc_mode_name(o.mode)}, {"absolute", o.absolute},
              {"rollback_tau", o.rollback_tau}, {"ablation", ablation_name(o.ablation)},
              {"metric", metric_label(o.metric, o.metric_fn)},
              {"metric_full", a.metric_full}, {"metric_running", a.metric_final}, {"evaluations", a.evaluations},
              {"passes", a.passes}, {"skipped", a.skipped}, {"seconds", a.seconds}, {"complete", a.complete},
              {"trajectory_columns", {"step", "edge", "decision", "metric", "delta", "evaluations"}}, {"trajectory", traj}};
  return r;
}

DiscoveryResult run_edge_pruning(const Model& model, const Graph& graph, const Batch& data, const DiscoverOptions& opt) {
  const EdgePruningOptions& o = opt.edge_pruning;
  EdgePruningResult e = edge_pruning(model, graph, data, o);
  DiscoveryResult r;
  r.scores = e.mask.to(at::kDouble);
  r.in_circuit = e.kept;
  r.score_sign = "score = the deterministic mask value (0..1) of the trained log-alpha";
  nlohmann::json log = nlohmann::json::array();
  for (const EdgePruningLog& l : e.log)
    log.push_back({l.step, l.loss, l.kl, l.edge_sparsity, l.target, l.node_sparsity, l.node_target, l.lambda1,
                   l.lambda2, l.lr, l.seconds});
  r.report = {{"target", o.edge_target}, {"trained_sparsity", e.trained_sparsity}, {"edges_kept", e.edges_kept},
              {"steps", e.steps_done}, {"batch_size", o.batch_size}, {"lr", o.lr}, {"lambda_lr", o.lambda_lr},
              {"node_masks", o.node_masks}, {"keep_embedding_edges", o.keep_embedding_edges},
              {"ablation", ablation_name(o.ablation)}, {"seconds", e.seconds}, {"complete", e.complete},
              {"log_columns", {"step", "loss", "kl", "edge_sparsity", "target", "node_sparsity", "node_target",
                               "lambda1", "lambda2", "lr", "seconds"}},
              {"log", log}};
  return r;
}

void need_split(const std::string& key, const Graph& graph) {
  if (!graph.split_qkv()) fail(key, "needs the graph with separate q/k/v readers (not head level)");
}

// A path-patching search (plain or APP's) as a result: the sender -> receiver scores, the head
// set as a circuit, the search's report without a performance (the evaluation measures that).
DiscoveryResult head_search_result(const Model& model, const Graph& graph, const PathPatchingResult& p) {
  DiscoveryResult r;
  r.scores = path_sweep_scores(graph, p);
  r.in_circuit = circuit_mask(head_circuit(model, graph, p.heads, r.scores)).to(at::kBool);
  r.score_sign = "score = (M(path patched) - M(clean)) / (M(clean) - M(corrupted)) on sender -> receiver edges";
  r.report = path_patching_json(p, graph, std::nan(""));
  r.report.erase("performance_percent");
  return r;
}

DiscoveryResult run_path_patching(const Model& model, const Graph& graph, const Batch& data,
                                  const DiscoverOptions& opt) {
  DiscoveryResult r = head_search_result(model, graph, path_patching(model, graph, data, opt.path_patching));
  r.report["settings"] = path_patching_settings_json(opt.path_patching);
  return r;
}

DiscoveryResult run_flap(const Model& model, const Graph& graph, const Batch& data, const DiscoverOptions& opt) {
  FlapSweep f = flap_sweep(model, data, opt.flap);
  DiscoveryResult r;
  // Head scores on every out-edge of the head would mislead: the scores are 0, the report has
  // every head's standardised score.
  r.scores = at::zeros({graph.n_sources(), graph.n_readers()}, at::kDouble);
  r.in_circuit = circuit_mask(head_circuit(model, graph, f.result.heads, r.scores)).to(at::kBool);
  r.score_sign = "none (a head set; the report holds each head's FLAP score)";
  r.report = flap_sweep_json(f, graph, opt.flap);
  return r;
}

DiscoveryResult run_app(const Model& model, const Graph& graph, const Batch& data, const DiscoverOptions& opt) {
  FlapSweepOptions fo = opt.flap;
  fo.kind = opt.app.pruning;
  FlapSweep f = flap_sweep(model, data, fo);
  PathPatchingOptions o = opt.path_patching;
  o.allowed = f.result.heads;
  DiscoveryResult r = head_search_result(model, graph, path_patching(model, graph, data, o));
  r.report = {{"settings", path_patching_settings_json(o)}, {"flap", flap_sweep_json(f, graph, fo)},
              {"app", std::move(r.report)}};
  return r;
}

// HAP's prefilter: its survivors and the report's "prefilter" entry.
std::pair<at::Tensor, nlohmann::json> hap_prefilter(const Model& model, const Graph& graph, const Batch& data,
                                                    const DiscoverOptions& opt) {
  const HapOptions& h = opt.hap;
  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor candidates = hap_candidates(model, graph, data, h, opt.attribution);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = {{"method", h.prefilter}, {"keep_fraction", h.keep_fraction},
                      {"candidates", candidates.sum().item<int64_t>()}, {"seconds", seconds}};
  return {std::move(candidates), std::move(j)};
}

DiscoveryResult run_hap_within(const Model& model, const Graph& graph, const Batch& data, DiscoverOptions o,
                               const std::pair<at::Tensor, nlohmann::json>& pre) {
  o.edge_pruning.candidates = pre.first;
  DiscoveryResult r = run_edge_pruning(model, graph, data, o);
  r.report["prefilter"] = pre.second;
  return r;
}

DiscoveryResult run_hap(const Model& model, const Graph& graph, const Batch& data, const DiscoverOptions& opt) {
  return run_hap_within(model, graph, data, opt, hap_prefilter(model, graph, data, opt));
}

void set_sweep_value(DiscoverOptions& o, const std::string& sweep, double v) {
  if (sweep == std::string("tau")) o.acdc.tau = v;
  else o.edge_pruning.edge_target = v;
}

}  // namespace

at::Tensor prefilter_candidates(const Graph& graph, const at::Tensor& scores, double fraction) {
  if (!(fraction > 0 && fraction <= 1)) fail("hap", "the kept fraction must lie in (0, 1]");
  const int64_t S = graph.n_sources(), R = graph.n_readers();
  if (scores.dim() != 2 || scores.size(0) != S || scores.size(1) != R)
    fail("hap", "prefilter scores must be [" + std::to_string(S) + ", " + std::to_string(R) + "]");
  const at::Tensor a = scores.to(at::kCPU, at::kDouble).abs().contiguous();
  const double* p = a.data_ptr<double>();
  std::vector<int64_t> edges;
  for (int64_t i = 0; i < S; ++i)
    for (int64_t j = 0; j < R; ++j)
      if (graph.is_edge(i, j)) edges.push_back(i * R + j);
  const auto n = std::min<int64_t>(static_cast<int64_t>(edges.size()),
                                   std::max<int64_t>(1, std::llround(fraction * static_cast<double>(edges.size()))));
  std::partial_sort(edges.begin(), edges.begin() + n, edges.end(),
                    [&](int64_t x, int64_t y) { return p[x] != p[y] ? p[x] > p[y] : x < y; });
  at::Tensor keep = at::zeros({S, R}, at::kBool);
  bool* k = keep.data_ptr<bool>();
  for (int64_t e = 0; e < n; ++e) k[edges[e]] = true;
  return keep;
}

at::Tensor hap_candidates(const Model& model, const Graph& graph, const Batch& data, const HapOptions& hap,
                          const AttributionOptions& attribution) {
  if (discovery_method(hap.prefilter).kind != MethodKind::Attribution)
    fail("hap", "the prefilter must be an attribution method, not '" + hap.prefilter + "'");
  if (attribution.node_level) fail("hap", "the prefilter scores edges (node_level off)");
  return prefilter_candidates(graph, attribute(hap.prefilter, model, graph, data, attribution), hap.keep_fraction);
}

const std::vector<MethodInfo>& discovery_methods() {
  static const std::vector<MethodInfo> t = [] {
    std::vector<MethodInfo> v;
    // One line each; attribution_methods() returns stable strings (a static table), so c_str()
    // stays valid.
    static const std::map<std::string, const char*> about = {
        {"eap", "EAP: (ablated - clean) x gradient at the clean run; 2 forwards + 1 backward"},
        {"eap-ig-inputs", "EAP-IG: gradients averaged over interpolated input embeddings (--steps)"},
        {"eap-ig-activations", "EAP-IG: gradients averaged over interpolated node outputs (--steps)"},
        {"clean-corrupted", "gradients averaged over the clean and the corrupted run"},
        {"mask-gradient", "auto-circuit's mask gradient at mask value 1 (= EAP)"},
        {"mask-gradient-ig", "mask gradients averaged over mask values k/steps"},
        {"exact", "the true effect of ablating each edge alone (one patched pass per edge; slow)"}};
    for (const std::string& k : attribution_methods()) {
      const auto it = about.find(k);
      v.push_back({k.c_str(), MethodKind::Attribution, it != about.end() ? it->second : "edge attribution", false});
    }
    v.push_back({"acdc", MethodKind::Search, "ACDC: greedy pruning with threshold tau (docs/ACDC.md)", false, "tau",
                 ".tau"});
    v.push_back({"edge-pruning", MethodKind::Search, "Edge Pruning: learned hard-concrete edge masks (docs/EDGE_PRUNING.md)",
                 false, "target", ".t", true});
    v.push_back({"hap", MethodKind::Search,
                 "HAP: an attribution prefilter keeps the best edges, Edge Pruning learns within them", false, "target",
                 ".t", true});
    v.push_back({"path-patching", MethodKind::Search, "automated path patching (docs/PATH_PATCHING.md)", true, "", "",
                 false, true});
    v.push_back({"flap", MethodKind::Search, "FLAP head pruning: sparsity sweep and cliff (docs/PATH_PATCHING.md)", true,
                 "", "", false, true});
    v.push_back({"app", MethodKind::Search, "APP: path patching within a FLAP circuit (docs/PATH_PATCHING.md)", true, "",
                 "", false, true});
    return v;
  }();
  return t;
}

const MethodInfo& discovery_method(const std::string& key) {
  for (const MethodInfo& m : discovery_methods())
    if (key == m.key) return m;
  std::string known;
  for (const MethodInfo& m : discovery_methods()) known += std::string(known.empty() ? "" : ", ") + m.key;
  fail("discover", "unknown method '" + key + "' (known: " + known + ")");
}

DiscoveryResult discover(const std::string& key, const Model& model, const Graph& graph, const Batch& data,
                         const DiscoverOptions& opt) {
  const MethodInfo& m = discovery_method(key);
  if (m.split_graph_only) need_split(key, graph);
  check_batch_padding(model, data, key);
  DiscoveryResult r;
  if (m.kind == MethodKind::Attribution) {
    r = run_attribution(key, model, graph, data, opt);
  } else if (key == "acdc") {
    r = run_acdc(model, graph, data, opt);
  } else if (key == "edge-pruning") {
    r = run_edge_pruning(model, graph, data, opt);
  } else if (key == "hap") {
    r = run_hap(model, graph, data, opt);
  } else if (key == "path-patching") {
    r = run_path_patching(model, graph, data, opt);
  } else if (key == "flap") {
    r = run_flap(model, graph, data, opt);
  } else {
    r = run_app(model, graph, data, opt);
  }
  r.method = key;
  return r;
}

at::Tensor sweep_scores(const std::vector<at::Tensor>& kept, const std::vector<double>& values) {
  if (kept.size() != values.size() || kept.empty()) fail("sweep", "one circuit per sweep value, at least one");
  at::Tensor s = at::zeros(kept.front().sizes(), at::kDouble);
  for (size_t i = 0; i < kept.size(); ++i) {
    if (!(values[i] > 0)) fail("sweep", "sweep values must be positive");
    if (!kept[i].sizes().equals(kept.front().sizes())) fail("sweep", "the sweep's circuits differ in shape");
    s = at::where(kept[i].to(at::kCPU, at::kBool), at::clamp_min(s, values[i]), s);
  }
  return s;
}

std::string path_stem(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path;
  return path.substr(0, dot);
}

std::string path_with_suffix(const std::string& path, const std::string& suffix) {
  const std::string stem = path_stem(path);
  return stem + suffix + path.substr(stem.size());
}

std::string sweep_value_suffix(const MethodInfo& m, double value) {
  char b[48];
  std::snprintf(b, sizeof b, "%g", value);
  return m.sweep_suffix + std::string(b);
}

SweepResult discover_sweep(const std::string& key, const Model& model, const Graph& graph, const Batch& data,
                           const DiscoverOptions& opt, const std::vector<double>& values) {
  const MethodInfo& m = discovery_method(key);
  const std::string sweep = m.sweep;
  if (sweep.empty()) fail(key, "has no sweep option (sweeps: acdc over tau, edge-pruning and hap over target)");
  if (values.empty()) fail(key, "a sweep needs at least one " + sweep + " value");
  for (double v : values) {
    char b[48];
    std::snprintf(b, sizeof b, "%g", v);
    if (!(v > 0) || !std::isfinite(v)) fail(key, sweep + " values must be positive numbers, got " + b);
  }
  if (m.split_graph_only) need_split(key, graph);
  const bool several = values.size() > 1;
  std::pair<at::Tensor, nlohmann::json> pre;
  if (key == "hap") pre = hap_prefilter(model, graph, data, opt);  // once for the whole sweep
  SweepResult out;
  out.method = key;
  out.values = values;
  std::vector<at::Tensor> kept;
  for (double v : values) {
    DiscoverOptions o = opt;
    set_sweep_value(o, sweep, v);
    if (several) {
      const std::string suffix = sweep_value_suffix(m, v);
      for (RunControl* rc : {&o.acdc.run, &o.edge_pruning.run}) {
        if (!rc->checkpoint.empty()) rc->checkpoint = path_with_suffix(rc->checkpoint, suffix);
        if (rc->progress) {
          const ProgressFn user = rc->progress;
          const std::string label = sweep + "=" + suffix.substr(std::string(m.sweep_suffix).size());
          rc->progress = [user, label](const ProgressEvent& e) {
            ProgressEvent l = e;
            l.stage = label + " " + e.stage;
            user(l);
          };
        }
      }
    }
    DiscoveryResult r = key == "hap" ? run_hap_within(model, graph, data, o, pre) : discover(key, model, graph, data, o);
    r.method = key;
    kept.push_back(r.in_circuit);
    out.runs.push_back(std::move(r));
  }
  out.scores = sweep_scores(kept, values);
  return out;
}

}  // namespace edgewise
