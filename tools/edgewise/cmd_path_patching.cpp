// `edgewise discover --method path-patching | flap | app` and `edgewise prune`: automated path
// patching, FLAP's sparsity sweep and cliff point, and APP (path patching over the heads a FLAP
// circuit keeps), with a report per run (JSON) that holds every figure the summary prints.
// Circuits are head sets: written as circuit JSON whose in-graph edges are those among the kept
// heads, every MLP, the input and the logits (so `edgewise evaluate` ablates the other heads).
//
// Not here: the methods themselves (src/discover/path_patching.cpp, flap.cpp).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "discover.h"
#include "edgewise/circuit.h"
#include "edgewise/error.h"
#include "edgewise/flops.h"
#include "edgewise/metrics.h"
#include "edgewise/path_patching.h"
#include "progress.h"

namespace edgewise::cli {

namespace {

// Performance is measured with the task's own metric; KL (0 for the model) has no ratio.
Metric performance_metric(Metric m) { return m == Metric::KL ? Metric::LogitDiff : m; }

std::vector<std::pair<int64_t, int64_t>> head_list(const at::Tensor& heads) {
  std::vector<std::pair<int64_t, int64_t>> out;
  at::Tensor h = heads.to(at::kBool).contiguous();
  for (int64_t l = 0; l < h.size(0); ++l)
    for (int64_t j = 0; j < h.size(1); ++j)
      if (h[l][j].item<bool>()) out.push_back({l, j});
  return out;
}

// A head's name as the graph spells it ("a{l}.h{h}").
std::string head_name(const Graph& graph, int64_t l, int64_t h) {
  return graph.source_name(graph.head_source(l, h));
}

nlohmann::json heads_json(const Graph& graph, const at::Tensor& heads) {
  nlohmann::json j = nlohmann::json::array();
  for (auto [l, h] : head_list(heads)) j.push_back(head_name(graph, l, h));
  return j;
}

// Every head's standardised FLAP score by name, so a reader can rank heads or plot them.
nlohmann::json head_scores_json(const Graph& graph, const at::Tensor& scores) {
  nlohmann::json j = nlohmann::json::object();
  const at::Tensor s = scores.to(at::kDouble).contiguous();
  const double* p = s.data_ptr<double>();
  for (int64_t l = 0; l < s.size(0); ++l)
    for (int64_t h = 0; h < s.size(1); ++h) j[head_name(graph, l, h)] = p[l * s.size(1) + h];
  return j;
}

// A head set as a circuit over the split graph: edges among input, the kept heads, every MLP and
// the logits. `scores` [n_src, n_dst] (float64) go into the file as they are.
Circuit head_circuit(const Model& model, const Graph& graph, const at::Tensor& heads, const at::Tensor& scores) {
  const int64_t S = graph.n_sources(), R = graph.n_readers();
  const int64_t H = graph.shape().n_heads, group = H / graph.shape().n_kv_heads;
  at::Tensor hk = heads.to(at::kBool);
  std::vector<uint8_t> src(S, 0), rd(R, 0);
  for (int64_t s = 0; s < S; ++s) {
    const auto& x = graph.source(s);
    src[s] = x.kind != Graph::SourceKind::Head || hk[x.layer][x.head].item<bool>();
  }
  for (int64_t r = 0; r < R; ++r) {
    const auto& x = graph.reader(r);
    switch (x.kind) {
      case Graph::ReaderKind::Q:
      case Graph::ReaderKind::Head: rd[r] = hk[x.layer][x.head].item<bool>(); break;
      case Graph::ReaderKind::K:
      case Graph::ReaderKind::V:
        rd[r] = graph.grouped() ? hk[x.layer].narrow(0, x.head * group, group).any().item<bool>()
                                : hk[x.layer][x.head].item<bool>();
        break;
      default: rd[r] = 1;
    }
  }
  at::Tensor kept = at::zeros({S, R}, at::kBool);
  bool* kp = kept.data_ptr<bool>();
  for (int64_t s = 0; s < S; ++s)
    for (int64_t r = 0; r < R; ++r) kp[s * R + r] = src[s] && rd[r] && graph.is_edge(s, r);
  return circuit_of(model, graph, scores, kept);
}

// The sender -> receiver scores of every sweep as an [n_src, n_dst] matrix.
at::Tensor sweep_scores(const Graph& graph, const PathPatchingResult& r) {
  at::Tensor s = at::zeros({graph.n_sources(), graph.n_readers()}, at::kDouble);
  for (const PathSweep& p : r.sweeps)
    for (size_t i = 0; i < p.senders.size(); ++i) s[p.senders[i]][p.reader] = p.scores[i];
  return s;
}

PathPatchingOptions pp_options(const Model& model, const Dataset& ds, const DiscoverArgs& a) {
  PathPatchingOptions o;
  o.metric = parse_metric(a.metric);
  o.ablation = ablation_from_string(a.ablation);
  o.paths = paths_from_string(a.paths);
  o.threshold = threshold_mode_from_string(a.threshold_mode);
  o.importance_threshold = a.importance_threshold;
  o.min_value_threshold = a.min_value_threshold;
  o.batch_size = a.batch_size;
  o.max_masks = a.max_masks;
  o.checkpoint = a.checkpoint;
  o.save_every = a.save_every;
  o.resume = a.resume;
  o.fingerprint = run_fingerprint(model, ds, a);
  return o;
}

struct PpRun {
  PathPatchingResult r;
  double performance = 0;  // %
};

PathPatchingResult run_search(const Model& model, const Graph& graph, const Batch& b, PathPatchingOptions o,
                              const std::string& what) {
  Progress clock(what, 1);
  o.progress = [&](int64_t steps, int64_t heads, int64_t queued, int64_t evals) {
    std::fprintf(stderr, "%s: step %lld, %lld heads in the circuit, %lld receivers queued, %lld sender evaluations, %.1f s\n",
                 what.c_str(), (long long)steps, (long long)heads, (long long)queued, (long long)evals, clock.seconds());
    std::fflush(stderr);
  };
  return path_patching(model, graph, b, o);
}

double percent(double m, double full) { return 100.0 * m / full; }

struct FlapRun {
  FlapStats clean, corrupted;
  std::vector<double> levels;
  // per kind ("vanilla", "contrastive"): performance per level, chosen index, set at the choice
  std::map<std::string, std::vector<double>> perf;
  std::map<std::string, std::vector<int64_t>> n_heads;
  std::map<std::string, int64_t> cliff;
  std::map<std::string, double> chosen;
  std::map<std::string, PruneSet> sets;
  std::map<std::string, at::Tensor> head_scores;  // [L, H] float64, standardised
  PruneSet result;
  double metric_model = 0;
  int64_t flops = 0;
  double seconds = 0;
};

std::string default_flap_metric(const std::string& kind) { return kind == "vanilla" ? "wifv" : "wifn"; }

// FLAP of `kind` (vanilla, contrastive or hybrid): statistics, scores, the sweep, the cliff.
FlapRun flap_run(const Model& model, const Batch& b, const DiscoverArgs& a, const std::string& kind) {
  if (kind != "vanilla" && kind != "contrastive" && kind != "hybrid")
    fail("flap", "unknown FLAP kind '" + kind + "' (expected vanilla, contrastive or hybrid)");
  if (!(a.lowest >= 0 && a.highest <= 1 && a.lowest <= a.highest && a.step > 0))
    fail("flap", "the sweep needs 0 <= --lowest <= --highest <= 1 and --step > 0");
  if (!(a.sparsity >= 0 && a.sparsity <= 1)) fail("flap", "--sparsity must be in [0, 1]");
  Progress clock("flap", 1);
  const ModelConfig& c = model.config();
  const Metric pm = performance_metric(parse_metric(a.metric));
  const Ablation eval = ablation_from_string(a.eval_ablation);
  FlapRun f;
  const int64_t N = b.size(), T = b.clean.size(1);
  const int64_t pass = forward_flops(c, N, T, 0, T);
  f.clean = flap_stats(model, b.clean, b.clean_len, a.batch_size);
  f.flops += pass;
  const bool need_corrupted = kind != "vanilla";
  if (need_corrupted) {
    f.corrupted = flap_stats(model, b.corrupted, b.corrupted_len, a.batch_size);
    f.flops += pass;
  }
  std::vector<std::string> kinds;
  if (kind != "contrastive") kinds.push_back("vanilla");
  if (kind != "vanilla") kinds.push_back("contrastive");
  PruneSet all{at::ones({c.n_layers, c.n_heads}, at::kBool), at::ones({c.n_layers, c.d_mlp}, at::kBool)};
  f.metric_model = pruned_metric(model, b, all, f.clean, eval, pm, a.batch_size);
  f.flops += pass;
  for (double s = a.lowest; s <= a.highest + 1e-9; s += a.step) f.levels.push_back(std::round(s * 1e6) / 1e6);
  const int64_t per_eval = pass * (eval == Ablation::Resample ? 2 : 1);
  for (const std::string& k : kinds) {
    const std::string fm = a.flap_metric.empty() ? default_flap_metric(k) : a.flap_metric;
    const FlapMetric metric = flap_metric_from_string(fm);
    FlapScores sc = k == "vanilla" ? flap_scores(model, f.clean, metric)
                                   : flap_contrastive_scores(model, f.clean, f.corrupted, metric);
    f.head_scores[k] = sc.heads;
    for (size_t i = 0; i < f.levels.size(); ++i) {
      PruneSet ps = flap_select(model, sc, f.levels[i], a.flap_mlp);
      f.perf[k].push_back(percent(pruned_metric(model, b, ps, f.clean, eval, pm, a.batch_size), f.metric_model));
      f.n_heads[k].push_back(ps.heads.sum().item<int64_t>());
      f.flops += per_eval;
      std::fprintf(stderr, "flap %s (%s): sparsity %.2f, %lld heads, performance %.1f%%, %.1f s\n", k.c_str(),
                   fm.c_str(), f.levels[i], (long long)f.n_heads[k].back(), f.perf[k].back(), clock.seconds());
    }
    const int64_t ci = cliff_point(f.perf[k], cliff_from_string(a.cliff));
    f.cliff[k] = ci;
    f.chosen[k] = ci >= 0 ? f.levels[ci] : a.sparsity;
    f.sets[k] = flap_select(model, sc, f.chosen[k], a.flap_mlp);
  }
  f.result = kind == "hybrid" ? prune_union(f.sets["vanilla"], f.sets["contrastive"]) : f.sets[kind];
  f.seconds = clock.seconds();
  return f;
}

nlohmann::json flap_json(const FlapRun& f, const Graph& graph, const std::string& kind, const DiscoverArgs& a) {
  nlohmann::json j = {{"kind", kind}, {"levels", f.levels}, {"cliff_rule", a.cliff}, {"fixed_sparsity", a.sparsity},
                      {"include_mlp", a.flap_mlp}, {"eval_ablation", a.eval_ablation},
                      {"metric_model", f.metric_model}, {"flops", f.flops}, {"seconds", f.seconds},
                      {"heads", heads_json(graph, f.result.heads)},
                      {"n_heads", f.result.heads.sum().item<int64_t>()},
                      {"channels_kept", f.result.channels.sum().item<int64_t>()}};
  for (const auto& [k, p] : f.perf)
    j["curves"][k] = {{"flap_metric", a.flap_metric.empty() ? default_flap_metric(k) : a.flap_metric},
                      {"performance", p}, {"heads", f.n_heads.at(k)}, {"cliff_index", f.cliff.at(k)},
                      {"sparsity", f.chosen.at(k)}, {"head_scores", head_scores_json(graph, f.head_scores.at(k))}};
  return j;
}

void write_flap_curve(const FlapRun& f, const DiscoverArgs& a, const std::string& out, const std::string& title) {
  const std::string path = a.curve.empty() ? path_stem(out) + ".flap.csv" : a.curve;
  std::ostringstream csv;
  csv << "kind,sparsity,heads,performance_percent,chosen\n";
  std::vector<double> x, y;
  for (const auto& [k, p] : f.perf)
    for (size_t i = 0; i < p.size(); ++i) {
      char line[160];
      std::snprintf(line, sizeof line, "%s,%.4f,%lld,%.6g,%d\n", k.c_str(), f.levels[i],
                    (long long)f.n_heads.at(k)[i], p[i], f.chosen.at(k) == f.levels[i] ? 1 : 0);
      csv << line;
    }
  write_file_atomic(path, csv.str());
  // The plot: the first kind's curve (the CSV has all).
  const auto& [k0, p0] = *f.perf.begin();
  for (size_t i = 0; i < p0.size(); ++i) x.push_back(f.levels[i]), y.push_back(p0[i]);
  const std::string svg = path_stem(path) + ".svg";
  write_file_atomic(svg, curve_svg(x, y, title + " (" + k0 + ")", "sparsity (log scale)"));
  std::printf("curve      %s, %s\n", path.c_str(), svg.c_str());
}

Batch load_batch(const Model& model, const DiscoverArgs& a, Dataset* ds) {
  return task_batch(model, a.task, a.n, a.seed, ablation_from_string(a.ablation), ds);
}

void write_report(const std::string& out, const nlohmann::json& report) {
  const std::string path = path_stem(out) + ".report.json";
  write_file_atomic(path, report.dump(2) + "\n");
  std::printf("report     %s\n", path.c_str());
}

nlohmann::json pp_json(const PathPatchingResult& r, const Graph& graph, double performance) {
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

nlohmann::json pp_settings(const DiscoverArgs& a) {
  return {{"importance_threshold", a.importance_threshold}, {"min_value_threshold", a.min_value_threshold},
          {"threshold_mode", a.threshold_mode}, {"paths", a.paths}, {"metric", a.metric},
          {"ablation", a.ablation}, {"flops_convention", "one multiply-add = one FLOP, matmuls only (flops.h)"}};
}

double head_set_performance(const Model& model, const Batch& b, const at::Tensor& heads, const FlapStats& stats,
                            const DiscoverArgs& a, double metric_model) {
  const ModelConfig& c = model.config();
  PruneSet ps{heads.to(at::kBool), at::ones({c.n_layers, c.d_mlp}, at::kBool)};
  return percent(pruned_metric(model, b, ps, stats, ablation_from_string(a.eval_ablation),
                               performance_metric(parse_metric(a.metric)), a.batch_size),
                 metric_model);
}

void check_not_edges(const DiscoverArgs& a) {
  if (a.edges >= 0 || a.nodes >= 0)
    fail("discover", "--edges and --nodes do not apply to " + a.method + ": the thresholds set the size");
}

}  // namespace

void run_path_patching(const DiscoverArgs& a) {
  check_not_edges(a);
  Model model = load_model(a.m);
  Graph graph = model_graph(model, true);
  Dataset ds;
  Batch b = load_batch(model, a, &ds);
  PathPatchingOptions o = pp_options(model, ds, a);
  PathPatchingResult r = run_search(model, graph, b, o, "path-patching");
  const FlapStats stats = flap_stats(model, b.clean, b.clean_len, a.batch_size);
  const ModelConfig& c = model.config();
  PruneSet all{at::ones({c.n_layers, c.n_heads}, at::kBool), at::ones({c.n_layers, c.d_mlp}, at::kBool)};
  const double m_model = pruned_metric(model, b, all, stats, ablation_from_string(a.eval_ablation),
                                       performance_metric(o.metric), a.batch_size);
  const double perf = head_set_performance(model, b, r.heads, stats, a, m_model);
  Circuit circ = head_circuit(model, graph, r.heads, sweep_scores(graph, r));
  nlohmann::json pj = pp_json(r, graph, perf);
  circ.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()},
               {"method", "path-patching"}, {"seed", a.seed}, {"path_patching", pp_settings(a)},
               {"heads", pj["heads"]}, {"performance_percent", perf}, {"flops", r.flops}, {"seconds", r.seconds},
               {"score_sign", "score = (M(path patched) - M(clean)) / (M(clean) - M(corrupted)) on sender -> receiver edges"}};
  circuit_write(circ, a.out);
  if (!a.svg.empty()) circuit_draw_svg(circ, a.svg);
  nlohmann::json report = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()},
                           {"settings", pp_settings(a)}, {"metric_model_eval", m_model}, {"path_patching", pj}};
  std::printf("model      %s\ntask       %s (%lld examples)\nmethod     path-patching (%s paths, %s threshold %g SD, min %g, metric %s)\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)b.size(), a.paths.c_str(),
              a.threshold_mode.c_str(), a.importance_threshold, a.min_value_threshold, a.metric.c_str());
  std::printf("%-6s %12s %8s %11s %9s%s\n", "heads", "performance", "steps", "evaluations", "seconds",
              a.calc_flops ? "      GFLOPs" : "");
  std::printf("%-6lld %11.1f%% %8lld %11lld %9.1f", (long long)r.heads.sum().item<int64_t>(), perf, (long long)r.steps,
              (long long)r.evaluations, r.seconds);
  if (a.calc_flops) std::printf(" %11.1f", r.flops / 1e9);
  std::printf("%s\n\ncircuit    %s\n", r.complete ? "" : " (stopped)", a.out.c_str());
  write_report(a.out, report);
}

void run_flap(const DiscoverArgs& a) {
  check_not_edges(a);
  Model model = load_model(a.m);
  Graph graph = model_graph(model, true);
  Dataset ds;
  Batch b = load_batch(model, a, &ds);
  FlapRun f = flap_run(model, b, a, a.flap_kind);
  const ModelConfig& c = model.config();
  // Head scores on every out-edge of the head would mislead; the circuit carries no scores.
  Circuit circ = head_circuit(model, graph, f.result.heads, at::zeros({graph.n_sources(), graph.n_readers()}, at::kDouble));
  const double perf = head_set_performance(model, b, f.result.heads, f.clean, a, f.metric_model);
  nlohmann::json fj = flap_json(f, graph, a.flap_kind, a);
  fj["performance_percent"] = perf;
  circ.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"method", "flap"},
               {"seed", a.seed}, {"flap", fj}};
  circuit_write(circ, a.out);
  if (!a.svg.empty()) circuit_draw_svg(circ, a.svg);
  std::printf("model      %s\ntask       %s (%lld examples)\nmethod     flap %s (cliff %s, eval ablation %s%s)\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)b.size(), a.flap_kind.c_str(),
              a.cliff.c_str(), a.eval_ablation.c_str(), a.flap_mlp ? ", MLP channels too" : "");
  std::printf("%-12s %9s %6s %12s\n", "kind", "sparsity", "heads", "performance");
  for (const auto& [k, s] : f.chosen)
    std::printf("%-12s %9.2f %6lld %11.1f%%%s\n", k.c_str(), s, (long long)f.sets.at(k).heads.sum().item<int64_t>(),
                percent(pruned_metric(model, b, f.sets.at(k), f.clean, ablation_from_string(a.eval_ablation),
                                      performance_metric(parse_metric(a.metric)), a.batch_size),
                        f.metric_model),
                f.cliff.at(k) < 0 ? " (no cliff: fixed sparsity)" : "");
  if (a.flap_kind == "hybrid")
    std::printf("%-12s %9s %6lld %11.1f%%\n", "hybrid", "union", (long long)f.result.heads.sum().item<int64_t>(), perf);
  if (a.flap_mlp)
    std::printf("MLP channels kept: %lld of %lld\n", (long long)f.result.channels.sum().item<int64_t>(),
                (long long)(c.n_layers * c.d_mlp));
  std::printf("\ncircuit    %s\n", a.out.c_str());
  write_flap_curve(f, a, a.out, "FLAP on " + ds.name);
  write_report(a.out, {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"flap", fj}});
}

void run_app(const DiscoverArgs& a) {
  check_not_edges(a);
  Model model = load_model(a.m);
  Graph graph = model_graph(model, true);
  Dataset ds;
  Batch b = load_batch(model, a, &ds);
  FlapRun f = flap_run(model, b, a, a.pruning);
  const int64_t allowed_n = f.result.heads.sum().item<int64_t>();
  std::fprintf(stderr, "app: FLAP (%s) keeps %lld of %lld heads\n", a.pruning.c_str(), (long long)allowed_n,
               (long long)f.result.heads.numel());

  // Plain path patching: from a previous run's report, or run here.
  PathPatchingOptions o = pp_options(model, ds, a);
  at::Tensor pp_heads;
  int64_t pp_flops = 0;
  double pp_seconds = 0;
  std::string pp_from;
  if (!a.pp_circuit.empty()) {
    const std::string rep = path_stem(a.pp_circuit) + ".report.json";
    nlohmann::json j;
    try {
      std::ifstream in(rep);
      if (!in) fail(rep, "cannot open the path-patching report of --pp-circuit (written beside the circuit)");
      j = nlohmann::json::parse(in);
      const auto& pj = j.at("path_patching");
      if (j.at("task") != ds.name || j.at("examples") != b.size() || j.at("model") != model.source().origin ||
          j.at("settings").at("importance_threshold") != a.importance_threshold ||
          j.at("settings").at("min_value_threshold") != a.min_value_threshold ||
          j.at("settings").at("threshold_mode") != a.threshold_mode || j.at("settings").at("paths") != a.paths ||
          j.at("settings").at("metric") != a.metric)
        fail(rep, "is a path-patching run of other settings (model, task, examples, thresholds, paths, metric must match)");
      pp_heads = at::zeros({model.config().n_layers, model.config().n_heads}, at::kBool);
      for (const auto& h : pj.at("heads")) {
        auto src = graph.find_source(h.get<std::string>());
        if (!src) fail(rep, "unknown head " + h.get<std::string>());
        pp_heads[graph.source(*src).layer][graph.source(*src).head] = true;
      }
      pp_flops = pj.at("flops").get<int64_t>();
      pp_seconds = pj.at("seconds").get<double>();
    } catch (const nlohmann::json::exception& ex) {
      fail(rep, std::string("not a path-patching report (") + ex.what() + ")");
    }
    pp_from = rep;
  } else {
    PathPatchingOptions po = o;
    if (!po.checkpoint.empty()) po.checkpoint = with_suffix(po.checkpoint, ".pp");
    PathPatchingResult pr = run_search(model, graph, b, po, "path-patching");
    pp_heads = pr.heads;
    pp_flops = pr.flops;
    pp_seconds = pr.seconds;
    const std::string pp_out = with_suffix(a.out, ".pp");
    Circuit pc = head_circuit(model, graph, pr.heads, sweep_scores(graph, pr));
    pc.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"method", "path-patching"},
               {"path_patching", pp_settings(a)}};
    circuit_write(pc, pp_out);
    const double pperf = head_set_performance(model, b, pr.heads, f.clean, a, f.metric_model);
    write_report(pp_out, {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()},
                          {"settings", pp_settings(a)}, {"path_patching", pp_json(pr, graph, pperf)}});
    pp_from = pp_out;
  }

  o.allowed = f.result.heads;
  PathPatchingResult r = run_search(model, graph, b, o, "app");
  const double perf = head_set_performance(model, b, r.heads, f.clean, a, f.metric_model);
  const double pp_perf = head_set_performance(model, b, pp_heads, f.clean, a, f.metric_model);
  const int64_t n_pp = pp_heads.sum().item<int64_t>();
  const int64_t inter = pp_heads.logical_and(r.heads).sum().item<int64_t>();
  const double tpr = n_pp > 0 ? static_cast<double>(inter) / n_pp : std::nan("");
  const double flop_ratio = static_cast<double>(pp_flops) / static_cast<double>(std::max<int64_t>(1, r.flops));
  const double flop_ratio_flap = static_cast<double>(pp_flops) / static_cast<double>(r.flops + f.flops);
  const double time_ratio = pp_seconds / std::max(1e-9, r.seconds);
  const double time_ratio_flap = pp_seconds / std::max(1e-9, r.seconds + f.seconds);

  Circuit circ = head_circuit(model, graph, r.heads, sweep_scores(graph, r));
  nlohmann::json aj = pp_json(r, graph, perf);
  nlohmann::json cmp = {{"path_patching_heads", heads_json(graph, pp_heads)}, {"path_patching_n_heads", n_pp},
                        {"path_patching_performance_percent", pp_perf}, {"path_patching_flops", pp_flops},
                        {"path_patching_seconds", pp_seconds}, {"path_patching_from", pp_from},
                        {"tpr", tpr}, {"flop_ratio", flop_ratio}, {"flop_ratio_with_flap", flop_ratio_flap},
                        {"time_ratio", time_ratio}, {"time_ratio_with_flap", time_ratio_flap}};
  circ.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"method", "app"},
               {"pruning", a.pruning}, {"seed", a.seed}, {"path_patching", pp_settings(a)}, {"heads", aj["heads"]},
               {"performance_percent", perf}, {"tpr", tpr}, {"flop_ratio", flop_ratio}};
  circuit_write(circ, a.out);
  if (!a.svg.empty()) circuit_draw_svg(circ, a.svg);
  write_flap_curve(f, a, a.out, "FLAP on " + ds.name);
  std::printf("model      %s\ntask       %s (%lld examples)\nmethod     app, %s FLAP (%lld heads allowed), %s paths, %s threshold %g SD, min %g\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)b.size(), a.pruning.c_str(),
              (long long)allowed_n, a.paths.c_str(), a.threshold_mode.c_str(), a.importance_threshold,
              a.min_value_threshold);
  std::printf("%-15s %6s %12s %6s %12s %9s\n", "", "heads", "performance", "TPR", "GFLOPs", "seconds");
  std::printf("%-15s %6lld %11.1f%% %6s %12.1f %9.1f\n", "path patching", (long long)n_pp, pp_perf, "1",
              pp_flops / 1e9, pp_seconds);
  std::printf("%-15s %6lld %11.1f%% %6.2f %12.1f %9.1f\n", "app", (long long)r.heads.sum().item<int64_t>(), perf, tpr,
              r.flops / 1e9, r.seconds);
  std::printf("%-15s %6lld %12s %6s %12.1f %9.1f\n", "(flap)", (long long)allowed_n, "", "", f.flops / 1e9, f.seconds);
  std::printf("\nFLOP ratio %.2fx (%.2fx with FLAP's cost), wall-time ratio %.2fx (%.2fx)\ncircuit    %s\n", flop_ratio,
              flop_ratio_flap, time_ratio, time_ratio_flap, a.out.c_str());
  write_report(a.out, {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()},
                       {"settings", pp_settings(a)}, {"pruning", a.pruning}, {"flap", flap_json(f, graph, a.pruning, a)},
                       {"app", aj}, {"comparison", cmp}});
}

void add_path_patching_options(CLI::App* cmd, DiscoverArgs& a, bool flap_only) {
  if (!flap_only) {
    auto* pp = cmd->add_option_group("Path patching (--method path-patching, app)");
    pp->add_option("--importance-threshold", a.importance_threshold,
                   "A sender is selected when |score| - |mean| exceeds this many SDs of the sweep's scores")
        ->capture_default_str();
    pp->add_option("--min-value-threshold", a.min_value_threshold,
                   "... and |score| exceeds this (scores: metric change / (clean - corrupted))")
        ->capture_default_str();
    pp->add_option("--threshold-mode", a.threshold_mode,
                   "flat: T SDs; linear: T + 0.1 per layer between sender and receiver (APP's code); "
                   "sqrt: T + 2/sqrt((layer+1) heads) (APP's paper runs)")
        ->check(CLI::IsMember({"flat", "linear", "sqrt"}))
        ->capture_default_str();
    pp->add_option("--paths", a.paths,
                   "direct: the sender reaches only the receiver; via-mlps: also through the MLPs between "
                   "(the reference's path patching)")
        ->check(CLI::IsMember({"direct", "via-mlps"}))
        ->capture_default_str();
    pp->add_option("--save-every", a.save_every, "Write --checkpoint every N receiver steps")->capture_default_str();
    pp->add_option("--max-masks", a.max_masks, "Sender masks per patched pass")->capture_default_str();
    pp->add_flag("--calc-flops", a.calc_flops, "Print the FLOPs of every pass in the summary (always in the report)");
    pp->add_option("--pruning", a.pruning, "app: the FLAP circuit that restricts the senders")
        ->check(CLI::IsMember({"vanilla", "contrastive", "hybrid"}))
        ->capture_default_str();
    pp->add_option("--pp-circuit", a.pp_circuit,
                   "app: compare with this plain path-patching circuit (its .report.json beside it) instead of "
                   "running path patching again");
  }
  auto* fl = cmd->add_option_group("FLAP (--method flap, app; edgewise prune)");
  fl->add_option("--flap", a.flap_kind, "vanilla (clean prompts), contrastive (clean vs corrupted) or hybrid (union)")
        ->check(CLI::IsMember({"vanilla", "contrastive", "hybrid"}))
        ->capture_default_str();
  fl->add_option("--flap-metric", a.flap_metric, "ifv, wifv or wifn (default: wifv vanilla, wifn contrastive)")
      ->check(CLI::IsMember({"ifv", "wifv", "wifn", "IFV", "WIFV", "WIFN"}));
  fl->add_option("--lowest", a.lowest, "Sparsity sweep: lowest sparsity")->capture_default_str();
  fl->add_option("--highest", a.highest, "... highest")->capture_default_str();
  fl->add_option("--step", a.step, "... step")->capture_default_str();
  fl->add_option("--cliff", a.cliff, "Where the sweep's curve picks the circuit: first drop, biggest drop, or fixed")
      ->check(CLI::IsMember({"first", "biggest", "fixed"}))
      ->capture_default_str();
  fl->add_option("--sparsity", a.sparsity, "The fixed sparsity (--cliff fixed, or when no cliff is found)")
      ->capture_default_str();
  fl->add_flag("--mlp", a.flap_mlp, "Prune MLP channels too (AL-AM: heads and channels ranked together)");
  fl->add_option("--eval-ablation", a.eval_ablation,
                 "Pruned heads take their mean over the prompts (mean: FLAP's bias compensation) or the corrupted "
                 "prompt's value (resample)")
      ->check(CLI::IsMember({"mean", "resample"}))
      ->capture_default_str();
}

void register_prune_command(CLI::App& app) {
  static DiscoverArgs a;
  a.method = "flap";
  auto* cmd = app.add_subcommand("prune", "FLAP structured pruning: head scores, a sparsity sweep, the circuit at its cliff");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  add_model_args(cmd, a.m);
  cmd->add_option("--task,-t", a.task, "Built-in task or a dataset file (its clean prompts calibrate)")
      ->capture_default_str();
  cmd->add_option("-n,--examples", a.n, "Examples")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of the task generator")->capture_default_str();
  cmd->add_option("--batch-size", a.batch_size, "Examples per pass")->capture_default_str();
  cmd->add_option("--metric,-m", a.metric, "Performance metric (logit-diff or prob-diff)")
      ->check(CLI::IsMember({"logit-diff", "prob-diff"}))
      ->capture_default_str();
  cmd->add_option("-o,--out", a.out, "Circuit JSON of the kept heads")->capture_default_str();
  cmd->add_option("--svg", a.svg, "Also draw the circuit");
  cmd->add_option("--curve", a.curve, "The sweep as CSV (default <out>.flap.csv) and SVG beside it");
  add_path_patching_options(cmd, a, true);
  cmd->footer(
      "FLAP scores each head by the fluctuation of its output projection's inputs over the task's clean\n"
      "prompts (contrastive: clean vs corrupted), keeps the best heads at each sparsity of the sweep,\n"
      "measures the pruned model (pruned heads replaced by their mean = bias compensation) and picks\n"
      "the circuit where performance first falls off (--cliff). Example:\n"
      "  edgewise prune --task ioi -n 100 --flap hybrid -o ioi-flap.json");
  cmd->callback([] { run_flap(a); });
}

}  // namespace edgewise::cli
