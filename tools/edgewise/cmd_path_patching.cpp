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
#include "edgewise/evaluate.h"
#include "edgewise/flops.h"
#include "edgewise/metrics.h"
#include "edgewise/outputs.h"
#include "edgewise/path_patching.h"
#include "edgewise/plot.h"
#include "progress.h"

namespace edgewise::cli {

namespace {

// What a head-set run shares: the model, its split graph, the data, the options.
struct HeadRun {
  explicit HeadRun(const DiscoverCli& a) : model(load_model(a.m)), graph(model_graph(model, true)) {
    TaskBatch t = task_batch(model, a.task, a.n, a.seed, a.ablation, a.skip_bad);
    ds = std::move(t.dataset);
    b = std::move(t.batch);
    o = method_options(a, model, ds);
  }
  Model model;
  Graph graph;
  Dataset ds;
  Batch b;
  DiscoverOptions o;
};

HeadRun head_run(const DiscoverCli& a) {
  if (a.edges >= 0 || a.nodes >= 0)
    fail("discover", "--edges and --nodes do not apply to " + a.method + ": the thresholds set the size");
  if (a.head_level) fail("discover", a.method + " needs the graph with q/k/v readers (drop --head-level)");
  return HeadRun(a);
}

// The FLAP sweep's CSV: --curve, or beside the circuit.
std::string flap_curve_path(const DiscoverCli& a) { return a.curve.empty() ? path_stem(a.out) + ".flap.csv" : a.curve; }

// Every file a head-set run writes, checked before the model is loaded (edgewise/outputs.h).
OutputFiles plan_head_set_files(const DiscoverCli& a) {
  OutputFiles o;
  o.add(a.out, "the circuit");
  o.add(path_stem(a.out) + ".report.json", "the report");
  if (!a.svg.empty()) {
    o.add(a.svg, "the drawing");
    require_program("dot", "--svg (drawing with Graphviz)");
  }
  if (a.method == "flap" || a.method == "app") {
    o.add(flap_curve_path(a), "the FLAP curve");
    o.add(path_stem(flap_curve_path(a)) + ".svg", "the FLAP curve's plot");
  }
  if (a.method == "app" && a.pp_circuit.empty()) {
    const std::string pp_out = path_with_suffix(a.out, ".pp");
    o.add(pp_out, "the path-patching circuit");
    o.add(path_stem(pp_out) + ".report.json", "the path-patching report");
  }
  if (!a.checkpoint.empty()) check_output_path(a.checkpoint, "the checkpoint (--checkpoint)");
  return o;
}

void write_flap_curve(const FlapSweep& f, const DiscoverCli& a, const OutputFiles& files, const std::string& title) {
  const std::string path = flap_curve_path(a);
  std::ostringstream csv;
  csv << "kind,sparsity,heads,performance_percent,chosen\n";
  std::vector<double> x, y;
  for (const auto& [k, cv] : f.curves)
    for (size_t i = 0; i < cv.performance.size(); ++i) {
      char line[160];
      std::snprintf(line, sizeof line, "%s,%.4f,%lld,%.6g,%d\n", k.c_str(), f.levels[i], (long long)cv.heads[i],
                    cv.performance[i], cv.sparsity == f.levels[i] ? 1 : 0);
      csv << line;
    }
  write_file_atomic(files.staged(path), csv.str());
  // The plot: the first kind's curve (the CSV has all).
  const auto& [k0, c0] = *f.curves.begin();
  for (size_t i = 0; i < c0.performance.size(); ++i) x.push_back(f.levels[i]), y.push_back(c0.performance[i]);
  const std::string svg = path_stem(path) + ".svg";
  write_file_atomic(files.staged(svg), curve_svg(x, y, title + " (" + k0 + ")", "sparsity (log scale)"));
  std::printf("curve      %s, %s\n", path.c_str(), svg.c_str());
}

void write_report(const std::string& out, const nlohmann::json& report, const OutputFiles& files) {
  const std::string path = path_stem(out) + ".report.json";
  write_file_atomic(files.staged(path), report.dump(2) + "\n");
  std::printf("report     %s\n", path.c_str());
}

}  // namespace

static void run_path_patching(const DiscoverCli& a) {
  OutputFiles files = plan_head_set_files(a);
  HeadRun h = head_run(a);
  const Model& model = h.model;
  const Graph& graph = h.graph;
  const Batch& b = h.b;
  const Dataset& ds = h.ds;
  const PathPatchingOptions& o = h.o.path_patching;
  const PathPatchingRun run = path_patching_run(model, graph, b, o, h.o.flap.eval_ablation);
  const PathPatchingResult& r = run.result;
  const double perf = run.performance, m_model = run.metric_model;
  Circuit circ = head_circuit(model, graph, r.heads, path_sweep_scores(graph, r));
  nlohmann::json pj = path_patching_json(r, graph, perf);
  const nlohmann::json settings = path_patching_settings_json(o);
  circ.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()},
               {"method", "path-patching"}, {"seed", a.seed}, {"path_patching", settings},
               {"heads", pj["heads"]}, {"performance_percent", perf}, {"flops", r.flops}, {"seconds", r.seconds},
               {"score_sign", "score = (M(path patched) - M(clean)) / (M(clean) - M(corrupted)) on sender -> receiver edges"}};
  circuit_write(circ, files.staged(a.out));
  if (!a.svg.empty()) circuit_draw_svg(circ, files.staged(a.svg));
  nlohmann::json report = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()},
                           {"settings", settings}, {"metric_model_eval", m_model}, {"path_patching", pj}};
  std::printf("model      %s\ntask       %s (%lld examples)\nmethod     path-patching (%s paths, %s threshold %g SD, min %g, metric %s)\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)b.size(), paths_name(o.paths),
              threshold_mode_name(o.threshold), o.importance_threshold, o.min_value_threshold, metric_name(o.metric));
  std::printf("%-6s %12s %8s %11s %9s%s\n", "heads", "performance", "steps", "evaluations", "seconds",
              a.calc_flops ? "      GFLOPs" : "");
  std::printf("%-6lld %11.1f%% %8lld %11lld %9.1f", (long long)r.heads.sum().item<int64_t>(), perf, (long long)r.steps,
              (long long)r.evaluations, r.seconds);
  if (a.calc_flops) std::printf(" %11.1f", r.flops / 1e9);
  std::printf("%s\n\ncircuit    %s\n", r.complete ? "" : " (stopped)", a.out.c_str());
  write_report(a.out, report, files);
  files.commit();
}

static void run_flap(const DiscoverCli& a) {
  OutputFiles files = plan_head_set_files(a);
  HeadRun h = head_run(a);
  const Model& model = h.model;
  const Graph& graph = h.graph;
  const Batch& b = h.b;
  const Dataset& ds = h.ds;
  const FlapSweepOptions& fo = h.o.flap;
  FlapSweep f = flap_sweep(model, b, fo);
  const ModelConfig& c = model.config();
  // Head scores on every out-edge of the head would mislead; the circuit carries no scores.
  Circuit circ = head_circuit(model, graph, f.result.heads, at::zeros({graph.n_sources(), graph.n_readers()}, at::kDouble));
  const double perf =
      head_set_performance(model, b, f.result.heads, f.clean, fo.eval_ablation, fo.metric, fo.batch_size, f.metric_model);
  nlohmann::json fj = flap_sweep_json(f, graph, fo);
  fj["performance_percent"] = perf;
  circ.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"method", "flap"},
               {"seed", a.seed}, {"flap", fj}};
  circuit_write(circ, files.staged(a.out));
  if (!a.svg.empty()) circuit_draw_svg(circ, files.staged(a.svg));
  std::printf("model      %s\ntask       %s (%lld examples)\nmethod     flap %s (cliff %s, eval ablation %s%s)\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)b.size(), flap_kind_name(fo.kind),
              cliff_name(fo.cliff), ablation_name(fo.eval_ablation), fo.include_mlp ? ", MLP channels too" : "");
  std::printf("%-12s %9s %6s %12s\n", "kind", "sparsity", "heads", "performance");
  for (const auto& [k, cv] : f.curves)
    std::printf("%-12s %9.2f %6lld %11.1f%%%s\n", k.c_str(), cv.sparsity, (long long)cv.set.heads.sum().item<int64_t>(),
                cv.set_performance, cv.cliff < 0 ? " (no cliff: fixed sparsity)" : "");
  if (fo.kind == FlapKind::Hybrid)
    std::printf("%-12s %9s %6lld %11.1f%%\n", "hybrid", "union", (long long)f.result.heads.sum().item<int64_t>(), perf);
  if (fo.include_mlp)
    std::printf("MLP channels kept: %lld of %lld\n", (long long)f.result.channels.sum().item<int64_t>(),
                (long long)(c.n_layers * c.d_mlp));
  std::printf("\ncircuit    %s\n", a.out.c_str());
  write_flap_curve(f, a, files, "FLAP on " + ds.name);
  write_report(a.out, {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"flap", fj}}, files);
  files.commit();
}

static void run_app(const DiscoverCli& a) {
  OutputFiles files = plan_head_set_files(a);
  HeadRun h = head_run(a);
  const Model& model = h.model;
  const Graph& graph = h.graph;
  const Batch& b = h.b;
  const Dataset& ds = h.ds;
  FlapSweepOptions fo = h.o.flap;
  fo.kind = h.o.app.pruning;
  const char* pruning = flap_kind_name(fo.kind);
  const PathPatchingOptions& o = h.o.path_patching;
  const nlohmann::json settings = path_patching_settings_json(o);
  // Plain path patching: from a previous run's report (checked before any work), or run here.
  std::optional<PathPatchingReference> given;
  if (!a.pp_circuit.empty())
    given = path_patching_reference(path_stem(a.pp_circuit) + ".report.json", model, graph, ds.name, b.size(), o);
  AppRun run = app_run(model, graph, b, fo, o, given);
  const FlapSweep& f = run.flap;
  const PathPatchingResult& r = run.app;
  const AppComparison& cmp = run.comparison;
  PathPatchingReference& ref = run.reference;
  const double perf = run.performance;
  const int64_t allowed_n = f.result.heads.sum().item<int64_t>();
  if (run.reference_run) {
    const PathPatchingResult& pr = *run.reference_run;
    const std::string pp_out = path_with_suffix(a.out, ".pp");
    Circuit pc = head_circuit(model, graph, pr.heads, path_sweep_scores(graph, pr));
    pc.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"method", "path-patching"},
               {"path_patching", settings}};
    circuit_write(pc, files.staged(pp_out));
    write_report(pp_out, {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()},
                          {"settings", settings},
                          {"path_patching", path_patching_json(pr, graph, cmp.reference_performance)}}, files);
    ref.from = pp_out;
  }

  Circuit circ = head_circuit(model, graph, r.heads, path_sweep_scores(graph, r));
  nlohmann::json aj = path_patching_json(r, graph, perf);
  nlohmann::json cj = {{"path_patching_heads", heads_json(graph, ref.heads)}, {"path_patching_n_heads", cmp.reference_heads},
                       {"path_patching_performance_percent", cmp.reference_performance},
                       {"path_patching_flops", ref.flops}, {"path_patching_seconds", ref.seconds},
                       {"path_patching_from", ref.from}, {"tpr", cmp.tpr}, {"flop_ratio", cmp.flop_ratio},
                       {"flop_ratio_with_flap", cmp.flop_ratio_with_flap}, {"time_ratio", cmp.time_ratio},
                       {"time_ratio_with_flap", cmp.time_ratio_with_flap}};
  circ.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"method", "app"},
               {"pruning", pruning}, {"seed", a.seed}, {"path_patching", settings}, {"heads", aj["heads"]},
               {"performance_percent", perf}, {"tpr", cmp.tpr}, {"flop_ratio", cmp.flop_ratio}};
  circuit_write(circ, files.staged(a.out));
  if (!a.svg.empty()) circuit_draw_svg(circ, files.staged(a.svg));
  write_flap_curve(f, a, files, "FLAP on " + ds.name);
  std::printf("model      %s\ntask       %s (%lld examples)\nmethod     app, %s FLAP (%lld heads allowed), %s paths, %s threshold %g SD, min %g\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)b.size(), pruning,
              (long long)allowed_n, paths_name(o.paths), threshold_mode_name(o.threshold), o.importance_threshold,
              o.min_value_threshold);
  std::printf("%-15s %6s %12s %6s %12s %9s\n", "", "heads", "performance", "TPR", "GFLOPs", "seconds");
  std::printf("%-15s %6lld %11.1f%% %6s %12.1f %9.1f\n", "path patching", (long long)cmp.reference_heads,
              cmp.reference_performance, "1", ref.flops / 1e9, ref.seconds);
  std::printf("%-15s %6lld %11.1f%% %6.2f %12.1f %9.1f\n", "app", (long long)r.heads.sum().item<int64_t>(), perf, cmp.tpr,
              r.flops / 1e9, r.seconds);
  std::printf("%-15s %6lld %12s %6s %12.1f %9.1f\n", "(flap)", (long long)allowed_n, "", "", f.flops / 1e9, f.seconds);
  std::printf("\nFLOP ratio %.2fx (%.2fx with FLAP's cost), wall-time ratio %.2fx (%.2fx)\ncircuit    %s\n",
              cmp.flop_ratio, cmp.flop_ratio_with_flap, cmp.time_ratio, cmp.time_ratio_with_flap, a.out.c_str());
  write_report(a.out, {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()},
                       {"settings", settings}, {"pruning", pruning}, {"flap", flap_sweep_json(f, graph, fo)},
                       {"app", aj}, {"comparison", cj}}, files);
  files.commit();
}

void run_head_set(const DiscoverCli& a) {
  if (a.method == "path-patching") return run_path_patching(a);
  if (a.method == "flap") return run_flap(a);
  if (a.method == "app") return run_app(a);
  fail("discover", "'" + a.method + "' is not a head-set method");
}

void add_path_patching_options(CLI::App* cmd, DiscoverCli& a, bool flap_only) {
  PathPatchingOptions& p = a.opt.path_patching;
  FlapSweepOptions& f = a.opt.flap;
  if (!flap_only) {
    auto* pp = cmd->add_option_group("Path patching (--method path-patching, app)");
    pp->add_option("--importance-threshold", p.importance_threshold,
                   "A sender is selected when |score| - |mean| exceeds this many SDs of the sweep's scores")
        ->capture_default_str();
    pp->add_option("--min-value-threshold", p.min_value_threshold,
                   "... and |score| exceeds this (scores: metric change / (clean - corrupted))")
        ->capture_default_str();
    add_enum_option(pp, "--threshold-mode", p.threshold, kThresholdModeNames,
                    "flat: T SDs; linear: T + 0.1 per layer between sender and receiver (APP's code); sqrt: T + "
                    "2/sqrt((layer+1) heads) (APP's paper runs)");
    add_enum_option(pp, "--paths", p.paths, kPathsNames,
                    "direct: the sender reaches only the receiver; via-mlps: also through the MLPs between (the "
                    "reference's path patching)");
    pp->add_option("--max-masks", p.max_masks, "Sender masks per patched pass")->check(CLI::PositiveNumber)->capture_default_str();
    pp->add_flag("--calc-flops", a.calc_flops, "Print the FLOPs of every pass in the summary (always in the report)");
    add_enum_option(pp, "--pruning", a.opt.app.pruning, kFlapKindNames, "app: the FLAP circuit that restricts the senders");
    pp->add_option("--pp-circuit", a.pp_circuit,
                   "app: compare with this plain path-patching circuit (its .report.json beside it) instead of "
                   "running path patching again");
  }
  auto* fl = cmd->add_option_group("FLAP (--method flap, app; edgewise prune)");
  add_enum_option(fl, "--flap", f.kind, kFlapKindNames,
                  "vanilla: clean prompts; contrastive: clean vs corrupted; hybrid: the union");
  fl->add_option_function<std::string>(
        "--flap-metric", [&f](const std::string& s) { f.flap_metric = flap_metric_from_string(s); },
        "ifv, wifv or wifn (default: wifv vanilla, wifn contrastive)")
      ->check(CLI::IsMember(enum_choices(kFlapMetricNames), CLI::ignore_case));
  fl->add_option("--lowest", f.lowest, "Sparsity sweep: lowest sparsity")->capture_default_str();
  fl->add_option("--highest", f.highest, "... highest")->capture_default_str();
  fl->add_option("--step", f.step, "... step")->capture_default_str();
  add_enum_option(fl, "--cliff", f.cliff, kCliffNames,
                  "Where the sweep's curve picks the circuit: first drop, biggest drop, or fixed");
  fl->add_option("--sparsity", f.sparsity, "The fixed sparsity (--cliff fixed, or when no cliff is found)")
      ->capture_default_str();
  fl->add_flag("--mlp", f.include_mlp, "Prune MLP channels too (AL-AM: heads and channels ranked together)");
  fl->add_option_function<std::string>(
        "--eval-ablation", [&f](const std::string& s) { f.eval_ablation = ablation_from_string(s); },
        "Pruned heads take their mean over the prompts (mean: FLAP's bias compensation, the default) or the "
        "corrupted prompt's value (resample)")
      ->check(CLI::IsMember({"mean", "resample"}));
}

void register_prune_command(CLI::App& app) {
  static DiscoverCli a;
  a.method = "flap";
  auto* cmd = app.add_subcommand("prune", "FLAP structured pruning: head scores, a sparsity sweep, the circuit at its cliff");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  add_model_args(cmd, a.m);
  cmd->add_option("--task,-t", a.task, "Built-in task or a dataset file (its clean prompts calibrate)")
      ->capture_default_str();
  cmd->add_option("-n,--examples", a.n, "Examples")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of the task generator")->capture_default_str();
  add_skip_bad_lines(cmd, a.skip_bad);
  cmd->add_option("--batch-size", a.opt.flap.batch_size, "Examples per pass")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option_function<std::string>(
        "--metric,-m", [](const std::string& s) { a.opt.flap.metric = parse_metric(s); },
        "Performance metric (logit-diff, the default, or prob-diff)")
      ->check(CLI::IsMember({"logit-diff", "prob-diff"}));
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
  cmd->callback([] { run_head_set(a); });
}

}  // namespace edgewise::cli
