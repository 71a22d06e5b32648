// `edgewise discover`: every method through the library's one entry point. Attribution methods
// (discover()) score every edge and the circuit is the best edges or nodes; ACDC, Edge Pruning
// and HAP (discover_sweep()) find their own circuit per sweep value (tau, target). Either way the
// same code measures the circuits (one evaluate_circuits call: the full model, every circuit, the
// empty circuit and a curve's circuits), writes each circuit (JSON, and its drawing), the
// method's own table (ACDC's trajectory, Edge Pruning's training log), a sweep's table and
// folded scores, and the faithfulness curve with CPR and CMD. Head-set methods (path patching,
// FLAP, APP) are measured by the pruned model instead: cmd_path_patching.cpp.
//
// CPR and CMD (MIB): over the edge budgets b_i (fractions of all edges) with normalised
// faithfulness f_i, CPR = the area under f (trapezoids over b) and CMD = the area under |1 - f|;
// a good method has CPR high and CMD near 0.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "commands.h"
#include "discover.h"
#include "edgewise/circuit.h"
#include "edgewise/discover.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/outputs.h"
#include "edgewise/patch.h"
#include "edgewise/plot.h"
#include "progress.h"

namespace edgewise::cli {

DiscoverOptions method_options(const DiscoverCli& a, const Model& model, const Dataset& ds) {
  DiscoverOptions o = a.opt;
  o.attribution.ablation = o.acdc.ablation = o.edge_pruning.ablation = o.path_patching.ablation = a.ablation;
  if (a.metric_given) o.attribution.metric = o.acdc.metric = o.path_patching.metric = o.flap.metric = a.metric;
  // Edge Pruning's loss compares with the full model: KL (its default) or MSE when asked for.
  if (a.metric_given && (a.metric == Metric::KL || a.metric == Metric::MSE)) o.edge_pruning.loss = a.metric;
  if (a.steps_given) o.attribution.steps = o.edge_pruning.steps = a.steps;
  if (a.batch_given)
    o.attribution.batch_size = o.edge_pruning.batch_size = o.path_patching.batch_size = o.flap.batch_size = a.batch_size;
  o.edge_pruning.seed = a.seed;
  const std::string fingerprint = model.source().origin + " | " + ds.name + " | n=" + std::to_string(a.n) +
                                  " | seed=" + std::to_string(a.seed) + (a.head_level ? " | head-level" : "");
  for (RunControl* rc : {&o.acdc.run, &o.edge_pruning.run, &o.path_patching.run}) {
    rc->checkpoint = a.checkpoint;
    rc->checkpoint_seconds = a.checkpoint_every;
    rc->resume = a.resume;
    rc->fingerprint = fingerprint;
  }
  o.attribution.progress = progress_printer("discover:");
  o.acdc.run.progress = progress_printer("acdc");
  o.edge_pruning.run.progress = progress_printer(a.method);
  o.path_patching.run.progress = progress_printer(a.method);
  o.flap.progress = progress_printer("flap");
  return o;
}

namespace {

// One cell of a table: integers as integers, other numbers with 9 significant digits.
std::string cell(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    char b[40];
    std::snprintf(b, sizeof b, "%.9g", v.get<double>());
    return b;
  }
  return v.dump();
}

// A table the method's report carries as `name` (rows) and `name`_columns, as CSV.
void write_report_table(const nlohmann::json& report, const std::string& name, const std::string& path) {
  std::ostringstream s;
  const nlohmann::json& cols = report.at(name + "_columns");
  for (size_t i = 0; i < cols.size(); ++i) s << (i ? "," : "") << cols[i].get<std::string>();
  s << "\n";
  for (const auto& row : report.at(name)) {
    for (size_t i = 0; i < row.size(); ++i) s << (i ? "," : "") << cell(row[i]);
    s << "\n";
  }
  write_file_atomic(path, s.str());
}

// The report without its tables (they go to their own files).
nlohmann::json report_figures(const nlohmann::json& report, std::vector<std::string>* tables = nullptr) {
  nlohmann::json j = nlohmann::json::object();
  for (auto it = report.begin(); it != report.end(); ++it) {
    if (report.contains(it.key() + "_columns")) {
      if (tables) tables->push_back(it.key());
      continue;
    }
    if (it.key().size() > 8 && it.key().substr(it.key().size() - 8) == "_columns") continue;
    j[it.key()] = it.value();
  }
  return j;
}

void write_curve(const DiscoverCli& a, const OutputFiles& out, const std::string& svg, const FaithfulnessCurve& fc,
                 const std::string& title) {
  write_file_atomic(out.staged(a.curve), fc.csv());
  std::vector<double> x, y;
  for (const CurvePoint& p : fc.points) x.push_back(p.fraction), y.push_back(p.faithfulness);
  write_file_atomic(out.staged(svg), curve_svg(x, y, title, "edges in the circuit (fraction of all, log scale)"));
  std::printf("curve      %s, %s: CPR %.4f, CMD %.4f\n", a.curve.c_str(), svg.c_str(), fc.cpr, fc.cmd);
}

// The values a sweep method runs at (--tau or --target).
const std::vector<double>& sweep_values(const DiscoverCli& a, const MethodInfo& mi) {
  return std::string(mi.sweep) == "tau" ? a.taus : a.targets;
}

// Every file the run writes, named and checked once before any work (the writer below takes
// the names from here): two outputs on one path (a --curve named like the sweep's table, say),
// which would leave only the last, a missing folder or an unwritable one fail in a second, not
// after the method. Files are written under staged names and published together at the end.
struct RunFiles {
  struct PerCircuit {
    std::string circuit, drawing;               ///< drawing "" without --svg
    std::map<std::string, std::string> tables;  ///< the report's tables by name: trajectory, log
  };
  std::vector<PerCircuit> circuits;
  std::string sweep_csv, sweep_json, sweep_svg;  ///< "" unless a sweep
  std::string curve_svg;                         ///< "" without --curve
  OutputFiles out;
};

RunFiles plan_files(const DiscoverCli& a, const MethodInfo& mi) {
  const bool attribution = mi.kind == MethodKind::Attribution;
  const std::vector<double>& values = sweep_values(a, mi);
  const bool sweep = !attribution && values.size() > 1;
  RunFiles f;
  for (size_t i = 0; i < (attribution ? 1 : values.size()); ++i) {
    const std::string suffix = sweep ? sweep_value_suffix(mi, values[i]) : "";
    RunFiles::PerCircuit p;
    p.circuit = sweep ? path_with_suffix(a.out, suffix) : a.out;
    f.out.add(p.circuit, "the circuit");
    if (!a.svg.empty()) {
      p.drawing = sweep ? path_with_suffix(a.svg, suffix) : a.svg;
      f.out.add(p.drawing, "the drawing");
    }
    // --trajectory / --train-log (with the value's suffix in a sweep), or beside the circuit.
    auto table = [&](const std::string& name, const std::string& beside, const std::string& what) {
      p.tables[name] = a.table.empty() ? path_stem(p.circuit) + beside
                                       : (suffix.empty() ? a.table : path_with_suffix(a.table, suffix));
      f.out.add(p.tables[name], what);
    };
    if (a.method == "acdc") table("trajectory", ".trajectory.csv", "the trajectory");
    if (mi.trains) table("log", ".log.csv", "the training log");
    f.circuits.push_back(std::move(p));
  }
  if (sweep) {
    f.sweep_csv = path_stem(a.out) + ".sweep.csv";
    f.sweep_json = path_stem(a.out) + ".sweep.json";
    f.sweep_svg = path_stem(a.out) + ".sweep.svg";
    f.out.add(f.sweep_csv, "the sweep's table");
    f.out.add(f.sweep_json, "the sweep's folded scores");
    f.out.add(f.sweep_svg, "the sweep's plot");
  }
  if (!a.curve.empty()) {
    f.curve_svg = path_stem(a.curve) + ".svg";
    f.out.add(a.curve, "the curve (--curve)");
    f.out.add(f.curve_svg, "the curve's plot");
  }
  if (!a.checkpoint.empty()) check_output_path(a.checkpoint, "the checkpoint (--checkpoint)");
  if (!a.svg.empty()) require_program("dot", "--svg (drawing with Graphviz)");
  return f;
}

void run_discover(const DiscoverCli& a) {
  const MethodInfo& mi = discovery_method(a.method);
  if (mi.head_set) return run_head_set(a);
  const bool attribution = mi.kind == MethodKind::Attribution;
  if (attribution && a.edges >= 0 && a.nodes >= 0) fail("discover", "give --edges or --nodes, not both");
  if (!attribution && (a.edges >= 0 || a.nodes >= 0))
    fail("discover", std::string("--edges and --nodes do not apply to ") + mi.key + ": --" + mi.sweep + " sets the size");
  if (!a.candidates.empty() && a.method != "exact") fail("discover", "--exact-candidates is for --method exact");
  if (mi.trains && !(a.validation_fraction >= 0 && a.validation_fraction < 1))
    fail("discover", "--validation-fraction must lie in [0, 1)");
  if (!attribution) {  // the library checks them too; here the message names the option
    const std::vector<double>& vs = sweep_values(a, mi);
    if (vs.empty()) fail("discover", std::string("--") + mi.sweep + " needs at least one value");
    for (double v : vs)
      if (!(v > 0) || !std::isfinite(v))
        fail("discover", std::string("--") + mi.sweep + " values must be positive numbers, got " + cell(v));
  }

  RunFiles files = plan_files(a, mi);

  Model model = load_model(a.m);
  Graph graph = model_graph(model, !a.head_level);
  // The data: a training method learns on one part and is measured on the other.
  Dataset ds = load_data(model, a.task, a.n, a.seed, a.skip_bad);
  BatchOptions bo;
  bo.require_aligned = ablation_needs_alignment(a.ablation);
  Batch data, held_out;
  std::string split = "the discovery data";
  if (mi.trains) {
    TrainValidation tv = split_train_validation(ds, a.validation_fraction, 0);
    split = tv.from_file ? "the file's validation split" : "held out (seeded split)";
    if (tv.validation.examples.empty()) {
      std::fprintf(stderr, "%s: no validation examples (--validation-fraction 0): measuring on the training set\n",
                   mi.key);
      tv.validation = tv.train;
      split = "the training set";
    }
    data = make_batch(tv.train, model.tokenizer(), bo);
    held_out = make_batch(tv.validation, model.tokenizer(), bo);
  } else {
    data = held_out = make_batch(ds, model.tokenizer(), bo);
  }

  DiscoverOptions opt = method_options(a, model, ds);
  if (!a.candidates.empty()) {
    const Circuit cand = circuit_read(a.candidates);
    if (!(cand.shape == graph.shape()) || cand.split_qkv != graph.split_qkv())
      fail(a.candidates, "its graph does not match this model's (layers, heads, kv heads, q/k/v split, block)");
    std::vector<uint8_t> in = cand.in_graph;
    opt.attribution.exact_candidates =
        at::from_blob(in.data(), {graph.n_sources(), graph.n_readers()}, at::kByte).to(at::kBool).clone();
  }
  const Metric metric = a.method == "acdc" ? opt.acdc.metric : opt.attribution.metric;
  const std::vector<double>& values = sweep_values(a, mi);
  const bool sweep = !attribution && values.size() > 1;
  if (mi.trains)
    std::fprintf(stderr, "%s: %lld training / %lld validation examples, %lld steps of batch %lld, %lld edges\n", mi.key,
                 (long long)data.size(), (long long)held_out.size(), (long long)opt.edge_pruning.steps,
                 (long long)opt.edge_pruning.batch_size, (long long)graph.n_edges());
  if (a.method == "acdc")
    std::fprintf(stderr, "acdc: %lld prompts x %lld tokens in one batch; the circuit's state takes ~%lld MiB\n",
                 (long long)data.size(), (long long)data.clean.size(1),
                 (long long)((graph.n_sources() + graph.n_readers()) * data.size() * data.clean.size(1) *
                             model.config().d_model * 4 / (1 << 20)));

  // The method: its circuits (pruned), each with its run's result and its size before pruning.
  Progress clock("discover", 1);
  std::vector<DiscoveryResult> runs;
  std::vector<Circuit> circuits;
  std::vector<int64_t> raw;
  SelectOptions so;
  SweepResult sw;
  if (attribution) {
    runs.push_back(discover(a.method, model, graph, data, opt));
    Circuit c = circuit_from_scores(model, graph, runs[0].scores);
    so.absolute = !a.signed_scores;
    so.greedy = a.greedy;
    so.higher_is_better = metric_higher_is_better(metric);
    if (a.nodes >= 0) so.nodes = a.nodes;
    else so.edges = a.edges >= 0 ? a.edges : std::max<int64_t>(1, graph.n_edges() / 100);  // default: 1% of edges
    raw.push_back(select_circuit(c, so));
    circuits.push_back(std::move(c));
  } else {
    sw = discover_sweep(a.method, model, graph, data, opt, values);
    for (const DiscoveryResult& r : sw.runs) {
      Circuit c = circuit_from_scores(model, graph, r.scores, r.in_circuit);
      raw.push_back(c.n_edges_in());
      c.prune();
      circuits.push_back(std::move(c));
    }
    runs = sw.runs;
  }
  const double t_method = clock.seconds();

  // The curve's circuits: the best edges at each budget (attribution) or the sweep's circuits.
  const int64_t K = static_cast<int64_t>(circuits.size());
  std::vector<double> fracs;
  std::vector<Circuit> curve_cs;
  if (!a.curve.empty()) {
    if (attribution) {
      fracs = curve_fractions();
      curve_cs = curve_circuits(circuits[0], so, fracs);
    } else {
      CurvePoints p = sweep_curve(circuits, raw, graph.n_edges());
      fracs = std::move(p.fractions);
      curve_cs = std::move(p.circuits);
    }
  }
  // One patched pass per batch measures the full model, every circuit, the empty circuit and
  // the curve's circuits.
  std::vector<at::Tensor> masks;
  for (const Circuit& c : circuits) masks.push_back(circuit_mask(c));
  masks.push_back(at::zeros({graph.n_sources(), graph.n_readers()}));
  for (const Circuit& c : curve_cs) masks.push_back(circuit_mask(c));
  EvaluateOptions eo;
  eo.ablation = a.ablation;
  eo.batch_size = mi.trains ? std::min<int64_t>(opt.edge_pruning.batch_size, 32) : opt.attribution.batch_size;
  eo.progress = progress_printer("discover: evaluating " + std::to_string(masks.size()) + " circuits,");
  const CircuitEvaluation ev = evaluate_circuits(model, graph, held_out, at::stack(masks), eo);
  const std::vector<double>& f = ev.of(metric);
  const size_t E = static_cast<size_t>(K) + 1;  // the empty circuit
  const double f_model = f[0], f_empty = f[E];

  // Files: each circuit, its drawing and its method's tables.
  const std::string section = [&] {
    std::string k = attribution ? "attribution" : a.method == "hap" ? "edge-pruning" : a.method;
    std::replace(k.begin(), k.end(), '-', '_');
    return k;
  }();
  const char* sweep_name = attribution ? "" : mi.sweep;
  std::printf("model      %s\ntask       %s (%lld examples%s)\nmethod     %s (ablation %s, metric %s)\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)data.size(),
              mi.trains ? (", " + std::to_string(held_out.size()) + " to measure").c_str() : "", a.method.c_str(),
              ablation_name(a.ablation), metric_name(metric));
  // The table: the metric first, so scripts read "<row> <metric>".
  std::printf("%-9s %12s %8s %9s %8s %6s %7s %7s %6s %8s\n", sweep ? sweep_name : "", metric_name(metric), "faithful",
              "KL", "accuracy", "exact", "edges", "pruned", "nodes", "seconds");
  std::printf("%-9s %12.5g %8s %9s %8.3f %6.3f\n", "model", f_model, "1", "0", ev.accuracy[0], ev.exact_match[0]);
  std::printf("%-9s %12.5g %8s %9.4g %8.3f %6.3f\n", "empty", f_empty, "0", ev.kl[E], ev.accuracy[E],
              ev.exact_match[E]);
  std::ostringstream table;
  std::vector<std::string> figure_keys;
  std::vector<std::pair<double, double>> sweep_points;  // (fraction of edges, faithfulness) of each circuit
  double last_faith = 0;
  for (int64_t i = 0; i < K; ++i) {
    const size_t j = static_cast<size_t>(i) + 1;
    Circuit& c = circuits[i];
    const DiscoveryResult& r = runs[attribution ? 0 : i];
    const RunFiles::PerCircuit& to = files.circuits[i];
    const double faith = normalized_faithfulness(f[j], f_empty, f_model);
    const std::vector<uint8_t> nodes_in = c.nodes_in_graph();
    const int64_t n_nodes = std::count(nodes_in.begin(), nodes_in.end(), 1);
    std::vector<std::string> tables;
    nlohmann::json figures = report_figures(r.report, &tables);
    if (!attribution) figures["edges_before_prune"] = raw[i];
    c.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", data.size()}, {"method", a.method},
              {"ablation", ablation_name(a.ablation)}, {"metric", metric_name(metric)}, {"seed", a.seed},
              {section, figures},
              {"metric_model", f_model}, {"metric_circuit", f[j]}, {"metric_empty", f_empty}, {"faithfulness", faith},
              {mi.trains ? "validation" : "evaluation",
               {{"examples", held_out.size()}, {"data", split}, {"kl", ev.kl[j]},
                              {"logit_diff", ev.logit_diff[j]}, {"prob_diff", ev.prob_diff[j]},
                              {"accuracy", ev.accuracy[j]}, {"exact_match", ev.exact_match[j]},
                              {"logit_diff_model", ev.logit_diff[0]}, {"logit_diff_empty", ev.logit_diff[E]},
                              {"kl_empty", ev.kl[E]}}},
              {"score_sign", r.score_sign}};
    if (attribution)
      c.meta["selection"] = {{"edges", so.edges}, {"nodes", so.nodes}, {"greedy", so.greedy}, {"absolute", so.absolute}};
    circuit_write(c, files.out.staged(to.circuit));
    if (!to.drawing.empty()) circuit_draw_svg(c, files.out.staged(to.drawing));
    std::string wrote = to.circuit;
    for (const std::string& t : tables) {
      const auto p = to.tables.find(t);
      if (p == to.tables.end()) fail("discover", "no file is planned for " + a.method + "'s table '" + t + "'");
      write_report_table(r.report, t, files.out.staged(p->second));
      wrote += ", " + p->second;
    }
    const double seconds = r.report.value("seconds", attribution ? t_method : 0.0);
    char head[32];
    std::snprintf(head, sizeof head, "%g", sweep || !attribution ? values[i] : 0.0);
    std::printf("%-9s %12.5g %8.4f %9.4g %8.3f %6.3f %7lld %7lld %6lld %8.1f%s\n",
                sweep || !attribution ? head : "circuit", f[j], faith, ev.kl[j], ev.accuracy[j], ev.exact_match[j],
                (long long)raw[i], (long long)c.n_edges_in(), (long long)n_nodes, seconds,
                r.report.value("complete", true) ? "" : " (stopped)");
    if (K == 1) last_faith = faith;
    if (c.n_edges_in() > 0) sweep_points.push_back({static_cast<double>(c.n_edges_in()) / graph.n_edges(), faith});
    std::fprintf(stderr, "wrote %s\n", wrote.c_str());
    // The sweep's table: the value, sizes, every metric, then the method's own scalar figures.
    if (sweep) {
      if (i == 0) {
        for (auto it = figures.begin(); it != figures.end(); ++it)
          if ((it.value().is_number() || it.value().is_boolean()) && it.key() != sweep_name && it.key() != "seconds" &&
              it.key() != "edges_before_prune")
            figure_keys.push_back(it.key());
        table << sweep_name << ",edges,edges_after_prune,nodes,metric,faithfulness,kl,logit_diff,prob_diff,accuracy,exact_match";
        for (const std::string& k : figure_keys) table << "," << k;
        table << ",seconds\n";
      }
      table << cell(values[i]) << "," << raw[i] << "," << c.n_edges_in() << "," << n_nodes << "," << cell(f[j]) << ","
            << cell(faith) << "," << cell(ev.kl[j]) << "," << cell(ev.logit_diff[j]) << "," << cell(ev.prob_diff[j]) << ","
            << cell(ev.accuracy[j]) << "," << cell(ev.exact_match[j]);
      for (const std::string& k : figure_keys) table << "," << (figures.contains(k) ? cell(figures[k]) : "");
      table << "," << cell(seconds) << "\n";
    }
  }
  if (K == 1) std::printf("\nnormalised faithfulness %.4f\n", last_faith);
  std::printf("\n");
  if (sweep) {
    // The sweep as one table and as one score per edge (the largest value keeping the edge).
    const std::string &csv = files.sweep_csv, &folded = files.sweep_json, &plot = files.sweep_svg;
    write_file_atomic(files.out.staged(csv), table.str());
    std::sort(sweep_points.begin(), sweep_points.end());
    std::vector<double> x, y;
    for (const auto& [px, py] : sweep_points) x.push_back(px), y.push_back(py);
    if (!x.empty())
      write_file_atomic(files.out.staged(plot), curve_svg(x, y, a.method + " " + sweep_name + " sweep on " + ds.name + " (" +
                                                  metric_name(metric) + ")",
                                        "edges in the circuit (fraction of all, log scale)"));
    Circuit all = circuit_from_scores(model, graph, sw.scores, sw.scores > 0);
    all.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", data.size()}, {"method", a.method},
                {"ablation", ablation_name(a.ablation)}, {"seed", a.seed}, {"sweep", sweep_name}, {"values", values},
                {"score_sign", std::string("score = the largest ") + sweep_name + " at which the edge is in the circuit"}};
    circuit_write(all, files.out.staged(folded));
    std::printf("sweep      %s, %s%s\n", csv.c_str(), folded.c_str(), x.empty() ? "" : (", " + plot).c_str());
  }
  if (!a.curve.empty()) {
    const FaithfulnessCurve fc =
        faithfulness_curve(fracs, curve_cs, std::vector<double>(f.begin() + static_cast<int64_t>(E) + 1, f.end()),
                           f_empty, f_model, graph.n_edges());
    write_curve(a, files.out, files.curve_svg, fc, a.method + " on " + ds.name + " (" + metric_name(metric) + ")");
  }
  files.out.commit();  // every file at once, only now that the run has succeeded
  std::printf("time       %.1f s %s, %.1f s total\n", t_method, attribution ? "attribution" : "search", clock.seconds());
}

}  // namespace

void register_discover_command(CLI::App& app) {
  static DiscoverCli a;
  auto* cmd = app.add_subcommand("discover", "Find a circuit: score every edge, keep the best, measure it");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // later options override
  add_model_args(cmd, a.m);
  cmd->add_option("--task,-t", a.task,
                  "Built-in task (ioi, greater-than, induction, gendered-pronouns, docstring, sva; tracr-reverse, "
                  "tracr-xproportion on the Tracr models) or a dataset file")
      ->capture_default_str();
  static std::vector<std::string> method_keys;
  for (const MethodInfo& m : discovery_methods()) method_keys.push_back(m.key);
  std::string methods;
  for (const auto& k : method_keys) methods += (methods.empty() ? "" : ", ") + k;
  std::string about = "\nMethods (--method):\n";
  for (const MethodInfo& m : discovery_methods()) {
    char line[200];
    std::snprintf(line, sizeof line, "  %-19s %s\n", m.key, m.summary);
    about += line;
  }
  cmd->add_option("--method", a.method, "Method: " + methods)->check(CLI::IsMember(method_keys))->capture_default_str();
  auto* ablation_opt = add_enum_option(cmd, "--ablation,-a", a.ablation, kAblationNames,
                                       "What replaces an ablated edge's source (a Tracr task's default: zero)");
  auto* metric_opt = add_enum_option(cmd, "--metric,-m", a.metric, kMetricNames,
                                     "Task metric (acdc's default: kl, as ACDC's reference; the Tracr tasks': mse)");
  cmd->add_option("--edges", a.edges, "Edge budget (default: 1% of the graph's edges)")->check(CLI::PositiveNumber);
  cmd->add_option("--nodes", a.nodes, "Node budget instead: the best source nodes and the edges among them")
      ->check(CLI::PositiveNumber);
  auto* steps_opt = cmd->add_option("--steps", a.steps,
                                    "Integrated-gradient steps (default " + std::to_string(AttributionOptions{}.steps) +
                                        "); edge-pruning: optimisation steps (default " +
                                        std::to_string(EdgePruningOptions{}.steps) + ")")
                        ->check(CLI::PositiveNumber);
  cmd->add_flag("--greedy", a.greedy, "Grow from the logits, best edge into the circuit first (EAP-IG's greedy)");
  cmd->add_flag("--signed", a.signed_scores, "Rank by signed importance instead of |score|");
  cmd->add_flag("--head-level", a.head_level, "One reader per head instead of separate q/k/v readers");
  cmd->add_option("-o,--out", a.out, "Circuit JSON to write (a sweep writes one per value: a.tau0.01.json)")
      ->capture_default_str();
  cmd->add_option("--svg", a.svg, "Also draw the circuit (Graphviz) to this SVG");
  cmd->add_option("--curve", a.curve,
                  "Faithfulness over edge budgets (attribution: 0.1%..100%; a sweep: its circuits) as CSV with CPR "
                  "and CMD, and .svg beside it");
  cmd->add_option("--exact-candidates", a.candidates,
                  "exact: score only the in-circuit edges of this circuit file (the others score 0)")
      ->check(CLI::ExistingFile);
  cmd->add_option("-n,--examples", a.n, "Examples (generated, or the first N of a file)")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of the task generator (and of Edge Pruning's noise and batch order)")
      ->capture_default_str();
  add_skip_bad_lines(cmd, a.skip_bad);
  auto* batch_opt = cmd->add_option("--batch-size", a.batch_size,
                                    "Examples per pass (default " + std::to_string(AttributionOptions{}.batch_size) +
                                        "; edge-pruning: per optimisation step, default " +
                                        std::to_string(EdgePruningOptions{}.batch_size) + "; path patching " +
                                        std::to_string(PathPatchingOptions{}.batch_size) + ")")
                        ->check(CLI::PositiveNumber);
  AcdcOptions& ac = a.opt.acdc;
  auto* acdc = cmd->add_option_group("ACDC (--method acdc)");
  acdc->add_option("--tau", a.taus,
                   "Threshold: an edge goes when ablating it moves the loss by less than tau; several values "
                   "(--tau 0.001,0.01) run a sweep")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->capture_default_str();
  add_enum_option(acdc, "--acdc-mode", ac.mode, kAcdcModeNames,
                  "classic: one edge at a time, exact; group: recursive group testing; rollback: try many, then roll "
                  "back");
  acdc->add_option("--rollback-tau", ac.rollback_tau, "rollback: threshold for edges removed together (default 40 tau)");
  acdc->add_flag("--abs", ac.absolute, "Compare |loss change| with tau (an edge that helps is kept too)");
  acdc->add_option("--max-candidates", ac.max_candidates, "Masks per batched pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  acdc->add_option("--trajectory", a.table,
                   "CSV of every decision (edge, kept/removed, metric, evaluations); default: beside -o");
  auto* ck = cmd->add_option_group("Checkpoints (acdc, edge-pruning, hap, path-patching, app)");
  ck->add_option("--checkpoint", a.checkpoint,
                 "Checkpoint file (acdc, path patching: JSON; edge-pruning: safetensors); a sweep writes one per value");
  ck->add_option("--checkpoint-every", a.checkpoint_every, "Seconds between checkpoints (0: after every unit of work)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  ck->add_flag("--resume", a.resume, "Continue from --checkpoint when it exists (a checkpoint of other settings is refused)");
  EdgePruningOptions& e = a.opt.edge_pruning;
  auto* ep = cmd->add_option_group("Edge Pruning (--method edge-pruning, hap)");
  ep->add_option("--target", a.targets,
                 "Edge sparsity to reach (fraction of edges removed; > 1 pushes to the emptiest circuit); several "
                 "values (--target 0.99,0.995) run a sweep")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->capture_default_str();
  ep->add_flag("--node-masks", e.node_masks, "Also learn a mask per source node (head, MLP, input)");
  ep->add_option("--node-target", e.node_target, "Node sparsity target (with --node-masks)")->capture_default_str();
  ep->add_flag("--no-node-loss{false}", e.node_loss, "Node masks without their sparsity term (the reference's sweep)");
  ep->add_flag("--keep-embedding-edges", e.keep_embedding_edges, "Never prune the input's edges");
  ep->add_option("--init-log-alpha", e.init_mean, "Mean of the initial log-alphas (std --init-std)")->capture_default_str();
  ep->add_option("--init-std", e.init_std, "Their standard deviation")->capture_default_str();
  ep->add_option("--lr", e.lr, "AdamW learning rate of the log-alphas")->capture_default_str();
  ep->add_option("--lambda-lr", e.lambda_lr, "Learning rate of the Lagrange multipliers (gradient ascent)")
      ->capture_default_str();
  ep->add_option("--weight-decay", e.weight_decay, "AdamW weight decay")->capture_default_str();
  ep->add_option("--max-grad-norm", e.max_grad_norm, "Clip the gradient norm (0: off)")->capture_default_str();
  ep->add_option("--warmup-steps", e.warmup_steps, "Learning-rate warm-up steps (then linear decay to 0)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  ep->add_option("--target-warmup-steps", e.target_warmup_steps, "Steps over which the target rises from 0")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  ep->add_option("--validation-fraction", a.validation_fraction,
                 "Examples held out for validation when the data has no split field")
      ->capture_default_str();
  ep->add_option("--cache-mb", e.cache_mb, "Keep every example's ablated values when they fit in this many MiB")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  ep->add_option("--train-log", a.table, "Training log CSV (step, loss, KL, sparsity, lambdas); default: beside -o");
  auto* hp = cmd->add_option_group("HAP (--method hap; with the Edge Pruning options)");
  hp->add_option("--prefilter", a.opt.hap.prefilter, "Attribution method whose best edges Edge Pruning may keep")
      ->check(CLI::IsMember(attribution_methods()))
      ->capture_default_str();
  hp->add_option("--keep-fraction", a.opt.hap.keep_fraction, "Fraction of the graph's edges the prefilter keeps")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  add_path_patching_options(cmd, a, false);
  cmd->footer(
      "Scores estimate M(edge ablated) - M(full model) (exact computes it). The circuit keeps the\n"
      "best-ranked edges, then drops edges on no input -> logits path. Example:\n"
      "  edgewise discover --task ioi --method eap-ig-inputs --edges 500 -o ioi.json --svg ioi.svg --curve ioi.csv\n"
      "ACDC removes edges greedily (logits first) while the loss moves by less than --tau; its scores\n"
      "are the metric change when each edge was tried. A sweep writes one circuit per tau, the sweep's\n"
      "table (<out>.sweep.csv), its circuits folded into one score per edge (<out>.sweep.json: the\n"
      "largest tau keeping the edge) and, with --curve, the size-vs-faithfulness curve:\n"
      "  edgewise discover --task ioi -n 20 --method acdc --tau 0.003,0.01,0.03 -o acdc.json --curve acdc.csv\n"
      "Edge Pruning learns a hard-concrete mask per edge (KL to the model + a Lagrangian pull to --target\n"
      "sparsity), on the training split, and reports the circuits on the validation split:\n"
      "  edgewise discover --task ioi -n 200 --method edge-pruning --target 0.99,0.995 --steps 500 -o ep.json\n"
      "Path patching grows a head circuit from the logits: each sweep patches every earlier head's\n"
      "corrupted output into one receiver and keeps the heads whose effect stands out (thresholds in SDs);\n"
      "APP runs it only over the heads a FLAP pruning keeps, and compares with plain path patching:\n"
      "  edgewise discover --task ioi -n 20 --method path-patching -o pp.json\n"
      "  edgewise discover --task ioi -n 20 --method app --pruning hybrid --pp-circuit pp.json -o app.json\n" +
      about);
  cmd->callback([ablation_opt, metric_opt, steps_opt, batch_opt] {
    a.metric_given = metric_opt->count() > 0;
    std::string ablation = ablation_name(a.ablation), metric = metric_name(a.metric);
    apply_task_defaults(a.task, ablation_opt->count() > 0, &ablation, a.metric_given, &metric);
    a.ablation = ablation_from_string(ablation);
    if (!a.metric_given && metric != metric_name(a.metric)) a.metric = parse_metric(metric), a.metric_given = true;
    a.steps_given = steps_opt->count() > 0;
    a.batch_given = batch_opt->count() > 0;
    run_discover(a);
  });
}

}  // namespace edgewise::cli
