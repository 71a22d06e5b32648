// The path-patching / FLAP / APP pipelines (path_patching.h, last part): FLAP's sparsity sweep
// with its cliff point and the hybrid union, head sets as circuits, the reports, path patching
// with its performance, and APP end to end with its comparison with plain path patching.
//
// Not here: the path-patching search (path_patching.cpp), FLAP's statistics, scores, selection,
// pruned-model metric and cliff rule (flap.cpp).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

#include "edgewise/discover.h"
#include "edgewise/distributed.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/flops.h"
#include "edgewise/names.h"
#include "edgewise/path_patching.h"

namespace edgewise {

namespace {

double percent(double m, double full) { return 100.0 * m / full; }

PruneSet keep_all(const ModelConfig& c) {
  return {at::ones({c.n_layers, c.n_heads}, at::kBool), at::ones({c.n_layers, c.d_mlp}, at::kBool)};
}

std::vector<std::pair<int64_t, int64_t>> head_list(const at::Tensor& heads) {
  std::vector<std::pair<int64_t, int64_t>> out;
  at::Tensor h = heads.to(at::kCPU, at::kBool).contiguous();
  const bool* p = h.data_ptr<bool>();
  for (int64_t l = 0; l < h.size(0); ++l)
    for (int64_t j = 0; j < h.size(1); ++j)
      if (p[l * h.size(1) + j]) out.push_back({l, j});
  return out;
}

// A head's name as the graph spells it ("a{l}.h{h}").
std::string head_name(const Graph& graph, int64_t l, int64_t h) { return graph.source_name(graph.head_source(l, h)); }

// Every head's standardised FLAP score by name, so a reader can rank heads or plot them.
nlohmann::json head_scores_json(const Graph& graph, const at::Tensor& scores) {
  nlohmann::json j = nlohmann::json::object();
  const at::Tensor s = scores.to(at::kCPU, at::kDouble).contiguous();
  const double* p = s.data_ptr<double>();
  for (int64_t l = 0; l < s.size(0); ++l)
    for (int64_t h = 0; h < s.size(1); ++h) j[head_name(graph, l, h)] = p[l * s.size(1) + h];
  return j;
}

}  // namespace

const char* flap_kind_name(FlapKind k) { return enum_name(kFlapKindNames, k); }
FlapKind flap_kind_from_string(const std::string& s) { return enum_parse(kFlapKindNames, s, "flap", "FLAP kind"); }

Metric flap_performance_metric(Metric m) { return metric_needs_clean_logits(m) ? Metric::LogitDiff : m; }

FlapSweep flap_sweep(const Model& model, const Batch& b, const FlapSweepOptions& o) {
  if (!(o.lowest >= 0 && o.highest <= 1 && o.lowest <= o.highest && o.step > 0))
    fail("flap", "the sweep needs 0 <= --lowest <= --highest <= 1 and --step > 0");
  if (!(o.sparsity >= 0 && o.sparsity <= 1)) fail("flap", "--sparsity must be in [0, 1]");
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = model.config();
  const Metric pm = flap_performance_metric(o.metric);
  FlapSweep f;
  const int64_t N = b.size(), T = b.clean.size(1);
  const int64_t pass = forward_flops(c, N, T, 0, T);
  f.clean = flap_stats(model, b.clean, b.clean_len, o.batch_size);
  f.flops += pass;
  if (o.kind != FlapKind::Vanilla) {
    f.corrupted = flap_stats(model, b.corrupted, b.corrupted_len, o.batch_size);
    f.flops += pass;
  }
  std::vector<std::string> kinds;
  if (o.kind != FlapKind::Contrastive) kinds.push_back("vanilla");
  if (o.kind != FlapKind::Vanilla) kinds.push_back("contrastive");
  f.metric_model = pruned_metric(model, b, keep_all(c), f.clean, o.eval_ablation, pm, o.batch_size);
  f.flops += pass;
  for (double s = o.lowest; s <= o.highest + 1e-9; s += o.step) f.levels.push_back(std::round(s * 1e6) / 1e6);
  const int64_t per_eval = pass * (o.eval_ablation == Ablation::Resample ? 2 : 1);
  for (const std::string& k : kinds) {
    FlapCurve& cv = f.curves[k];
    cv.flap_metric = o.flap_metric.value_or(k == "vanilla" ? FlapMetric::WIFV : FlapMetric::WIFN);
    FlapScores sc = k == "vanilla" ? flap_scores(model, f.clean, cv.flap_metric)
                                   : flap_contrastive_scores(model, f.clean, f.corrupted, cv.flap_metric);
    cv.head_scores = sc.heads;
    for (double level : f.levels) {
      PruneSet ps = flap_select(model, sc, level, o.include_mlp);
      cv.performance.push_back(
          percent(pruned_metric(model, b, ps, f.clean, o.eval_ablation, pm, o.batch_size), f.metric_model));
      cv.heads.push_back(ps.heads.sum().item<int64_t>());
      f.flops += per_eval;
      if (o.progress)
        o.progress({k + " (" + flap_metric_name(cv.flap_metric) + ")", static_cast<int64_t>(cv.heads.size()),
                    static_cast<int64_t>(f.levels.size()),
                    {{"sparsity", level}, {"heads", static_cast<double>(cv.heads.back())},
                     {"performance %", cv.performance.back()}}});
    }
    cv.cliff = cliff_point(cv.performance, o.cliff);
    cv.sparsity = cv.cliff >= 0 ? f.levels[cv.cliff] : o.sparsity;
    cv.set = flap_select(model, sc, cv.sparsity, o.include_mlp);
    // At a cliff the set is the level's own; a fixed sparsity off the sweep is measured here (as
    // the summary always did; not counted in `flops`, which are the sweep's).
    cv.set_performance = cv.cliff >= 0 ? cv.performance[cv.cliff]
                                       : percent(pruned_metric(model, b, cv.set, f.clean, o.eval_ablation, pm,
                                                               o.batch_size), f.metric_model);
  }
  f.result = o.kind == FlapKind::Hybrid ? prune_union(f.curves.at("vanilla").set, f.curves.at("contrastive").set)
                                        : f.curves.at(kinds.front()).set;
  f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return f;
}

double head_set_performance(const Model& model, const Batch& data, const at::Tensor& heads,
                            const FlapStats& calibration, Ablation eval_ablation, Metric metric, int64_t batch_size,
                            double metric_model) {
  const ModelConfig& c = model.config();
  PruneSet ps{heads.to(at::kBool), at::ones({c.n_layers, c.d_mlp}, at::kBool)};
  return percent(pruned_metric(model, data, ps, calibration, eval_ablation, flap_performance_metric(metric), batch_size),
                 metric_model);
}

nlohmann::json flap_sweep_json(const FlapSweep& f, const Graph& graph, const FlapSweepOptions& o) {
  nlohmann::json j = {{"kind", flap_kind_name(o.kind)}, {"levels", f.levels}, {"cliff_rule", cliff_name(o.cliff)},
                      {"fixed_sparsity", o.sparsity}, {"include_mlp", o.include_mlp},
                      {"eval_ablation", ablation_name(o.eval_ablation)}, {"metric_model", f.metric_model},
                      {"flops", f.flops}, {"seconds", f.seconds}, {"heads", heads_json(graph, f.result.heads)},
                      {"n_heads", f.result.heads.sum().item<int64_t>()},
                      {"channels_kept", f.result.channels.sum().item<int64_t>()}};
  for (const auto& [k, cv] : f.curves)
    j["curves"][k] = {{"flap_metric", flap_metric_name(cv.flap_metric)}, {"performance", cv.performance},
                      {"heads", cv.heads}, {"cliff_index", cv.cliff}, {"sparsity", cv.sparsity},
                      {"head_scores", head_scores_json(graph, cv.head_scores)}};
  return j;
}

Circuit head_circuit(const Model& model, const Graph& graph, const at::Tensor& heads, const at::Tensor& scores) {
  const int64_t S = graph.n_sources(), R = graph.n_readers();
  const int64_t H = graph.shape().n_heads, group = H / graph.shape().n_kv_heads;
  const at::Tensor hk = heads.to(at::kCPU, at::kBool).contiguous();
  const bool* hp = hk.data_ptr<bool>();
  auto head_in = [&](int64_t l, int64_t h) { return hp[l * H + h]; };
  std::vector<uint8_t> src(S, 0), rd(R, 0);
  for (int64_t s = 0; s < S; ++s) {
    const auto& x = graph.source(s);
    src[s] = x.kind != Graph::SourceKind::Head || head_in(x.layer, x.head);
  }
  for (int64_t r = 0; r < R; ++r) {
    const auto& x = graph.reader(r);
    switch (x.kind) {
      case Graph::ReaderKind::Q:
      case Graph::ReaderKind::Head: rd[r] = head_in(x.layer, x.head); break;
      case Graph::ReaderKind::K:
      case Graph::ReaderKind::V:
        if (graph.grouped()) {
          for (int64_t h = x.head * group; h < (x.head + 1) * group; ++h) rd[r] = rd[r] || head_in(x.layer, h);
        } else {
          rd[r] = head_in(x.layer, x.head);
        }
        break;
      default: rd[r] = 1;
    }
  }
  at::Tensor kept = at::zeros({S, R}, at::kBool);
  bool* kp = kept.data_ptr<bool>();
  for (int64_t s = 0; s < S; ++s)
    for (int64_t r = 0; r < R; ++r) kp[s * R + r] = src[s] && rd[r] && graph.is_edge(s, r);
  return circuit_from_scores(model, graph, scores, kept);
}

at::Tensor path_sweep_scores(const Graph& graph, const PathPatchingResult& r) {
  at::Tensor s = at::zeros({graph.n_sources(), graph.n_readers()}, at::kDouble);
  double* p = s.data_ptr<double>();
  for (const PathSweep& sw : r.sweeps)
    for (size_t i = 0; i < sw.senders.size(); ++i) p[sw.senders[i] * graph.n_readers() + sw.reader] = sw.scores[i];
  return s;
}

nlohmann::json heads_json(const Graph& graph, const at::Tensor& heads) {
  nlohmann::json j = nlohmann::json::array();
  for (auto [l, h] : head_list(heads)) j.push_back(head_name(graph, l, h));
  return j;
}

nlohmann::json path_patching_settings_json(const PathPatchingOptions& o) {
  return {{"importance_threshold", o.importance_threshold}, {"min_value_threshold", o.min_value_threshold},
          {"threshold_mode", threshold_mode_name(o.threshold)}, {"paths", paths_name(o.paths)},
          {"metric", metric_name(o.metric)}, {"ablation", ablation_name(o.ablation)},
          {"flops_convention", "one multiply-add = one FLOP, matmuls only (flops.h)"}};
}

nlohmann::json path_patching_json(const PathPatchingResult& r, const Graph& graph, double performance) {
  nlohmann::json sweeps = nlohmann::json::array();
  for (const PathSweep& p : r.sweeps) {
    nlohmann::json s = {{"receiver", graph.reader_name(p.reader)}};
    for (size_t i = 0; i < p.senders.size(); ++i) s["scores"][graph.source_name(p.senders[i])] = p.scores[i];
    for (int64_t i : p.selected) s["selected"].push_back(graph.source_name(p.senders[i]));
    sweeps.push_back(s);
  }
  return {{"heads", heads_json(graph, r.heads)}, {"n_heads", r.heads.sum().item<int64_t>()},
          {"performance_percent", performance}, {"metric_clean", r.metric_clean},
          {"metric_corrupted", r.metric_corrupted}, {"steps", r.steps}, {"evaluations", r.evaluations},
          {"passes", r.passes}, {"flops", r.flops}, {"seconds", r.seconds}, {"complete", r.complete},
          {"sweeps", sweeps}};
}

PathPatchingReference path_patching_reference(const std::string& rep, const Model& model, const Graph& graph,
                                              const std::string& task, int64_t examples,
                                              const PathPatchingOptions& o) {
  PathPatchingReference ref;
  try {
    std::ifstream in(rep);
    if (!in) fail(rep, "cannot open the path-patching report of --pp-circuit (written beside the circuit)");
    const nlohmann::json j = nlohmann::json::parse(in);
    const auto& pj = j.at("path_patching");
    const auto& st = j.at("settings");
    if (j.at("task") != task || j.at("examples") != examples || j.at("model") != model.source().origin ||
        st.at("importance_threshold") != o.importance_threshold ||
        st.at("min_value_threshold") != o.min_value_threshold ||
        st.at("threshold_mode") != threshold_mode_name(o.threshold) || st.at("paths") != paths_name(o.paths) ||
        st.at("metric") != metric_name(o.metric))
      fail(rep, "is a path-patching run of other settings (model, task, examples, thresholds, paths, metric must match)");
    ref.heads = at::zeros({model.config().n_layers, model.config().n_heads}, at::kBool);
    for (const auto& h : pj.at("heads")) {
      auto src = graph.find_source(h.get<std::string>());
      if (!src) fail(rep, "unknown head " + h.get<std::string>());
      ref.heads[graph.source(*src).layer][graph.source(*src).head] = true;
    }
    ref.flops = pj.at("flops").get<int64_t>();
    ref.seconds = pj.at("seconds").get<double>();
  } catch (const nlohmann::json::exception& ex) {
    fail(rep, std::string("not a path-patching report (") + ex.what() + ")");
  }
  ref.from = rep;
  return ref;
}

AppComparison app_compare(const PathPatchingReference& ref, double reference_performance,
                          const PathPatchingResult& app, const FlapSweep& flap) {
  AppComparison c;
  c.reference_heads = ref.heads.sum().item<int64_t>();
  c.reference_performance = reference_performance;
  const int64_t inter = ref.heads.logical_and(app.heads.to(ref.heads.device())).sum().item<int64_t>();
  c.tpr = c.reference_heads > 0 ? static_cast<double>(inter) / c.reference_heads : std::nan("");
  c.flop_ratio = static_cast<double>(ref.flops) / static_cast<double>(std::max<int64_t>(1, app.flops));
  c.flop_ratio_with_flap = static_cast<double>(ref.flops) / static_cast<double>(app.flops + flap.flops);
  c.time_ratio = ref.seconds / std::max(1e-9, app.seconds);
  c.time_ratio_with_flap = ref.seconds / std::max(1e-9, app.seconds + flap.seconds);
  return c;
}

PathPatchingRun path_patching_run(const Model& model, const Graph& graph, const Batch& data,
                                  const PathPatchingOptions& o, Ablation eval_ablation) {
  PathPatchingRun r;
  r.result = path_patching(model, graph, data, o);
  const FlapStats stats = flap_stats(model, data.clean, data.clean_len, o.batch_size);
  r.metric_model = pruned_metric(model, data, keep_all(model.config()), stats, eval_ablation,
                                 flap_performance_metric(o.metric), o.batch_size);
  r.performance = head_set_performance(model, data, r.result.heads, stats, eval_ablation, o.metric, o.batch_size,
                                       r.metric_model);
  return r;
}

AppRun app_run(const Model& model, const Graph& graph, const Batch& data, const FlapSweepOptions& flap,
               const PathPatchingOptions& o, const std::optional<PathPatchingReference>& reference) {
  AppRun r;
  r.flap = flap_sweep(model, data, flap);
  // What FLAP allows, announced before the (long) path-patching runs, as the CLI printed it.
  if (o.run.progress)
    o.run.progress({"heads FLAP allows", r.flap.result.heads.sum().item<int64_t>(), r.flap.result.heads.numel(), {}});
  auto performance = [&](const at::Tensor& heads) {
    return head_set_performance(model, data, heads, r.flap.clean, flap.eval_ablation, flap.metric, flap.batch_size,
                                r.flap.metric_model);
  };
  if (reference) {
    r.reference = *reference;
  } else {
    PathPatchingOptions po = o;
    if (!po.run.checkpoint.empty()) po.run.checkpoint = path_with_suffix(po.run.checkpoint, ".pp");
    if (o.run.progress)
      po.run.progress = [f = o.run.progress](const ProgressEvent& e) {
        ProgressEvent p = e;
        p.stage = "plain " + e.stage;
        f(p);
      };
    r.reference_run = path_patching(model, graph, data, po);
    r.reference = {r.reference_run->heads, r.reference_run->flops, r.reference_run->seconds, ""};
  }
  PathPatchingOptions ao = o;
  ao.allowed = r.flap.result.heads;
  r.app = path_patching(model, graph, data, ao);
  r.performance = performance(r.app.heads);
  r.comparison = app_compare(r.reference, performance(r.reference.heads), r.app, r.flap);
  return r;
}

}  // namespace edgewise
