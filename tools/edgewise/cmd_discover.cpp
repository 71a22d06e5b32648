// `edgewise discover`: scores every edge with an attribution method, keeps the best edges (or
// nodes) as a circuit, measures it, and writes the circuit (JSON), optionally its drawing and
// the faithfulness curve over edge budgets (CSV + SVG) with CPR and CMD.
//
// CPR and CMD (MIB): over the edge budgets b_i (fractions of all edges) with normalised
// faithfulness f_i, CPR = the area under f (trapezoids over b) and CMD = the area under |1 - f|;
// a good method has CPR high and CMD near 0.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <cstdio>
#include <map>
#include <sstream>

#include "commands.h"
#include "discover.h"
#include "edgewise/acdc.h"
#include "edgewise/attribution.h"
#include "edgewise/circuit.h"
#include "edgewise/discover.h"
#include "edgewise/error.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "progress.h"

namespace edgewise::cli {


std::string path_stem(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path;
  return path.substr(0, dot);
}

std::string with_suffix(const std::string& path, const std::string& suffix) {
  const std::string st = path_stem(path);
  return st + suffix + path.substr(st.size());
}

std::string fmt_g(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

std::string run_fingerprint(const Model& model, const Dataset& ds, const DiscoverArgs& a) {
  return model.source().origin + " | " + ds.name + " | n=" + std::to_string(a.n) + " | seed=" + std::to_string(a.seed) +
         (a.head_level ? " | head-level" : "");
}

void write_sweep(const DiscoverArgs& a, const std::string& csv, std::vector<std::pair<double, double>> curve,
                 const std::string& title) {
  const std::string path = a.curve.empty() ? path_stem(a.out) + ".sweep.csv" : a.curve;
  write_file_atomic(path, csv);
  std::sort(curve.begin(), curve.end());
  std::vector<double> x, y;
  for (auto& [fx, fy] : curve) x.push_back(fx), y.push_back(fy);
  const std::string svg = path_stem(path) + ".svg";
  if (!x.empty()) write_file_atomic(svg, curve_svg(x, y, title, "edges in the circuit (fraction of all, log scale)"));
  std::printf("sweep      %s%s\n", path.c_str(), x.empty() ? "" : (", " + svg).c_str());
}

namespace {

// The writer of each search method (discover.h's table says which methods search); the
// attribution methods share the flow below.
void run_search_method(const DiscoverArgs& a) {
  using Runner = void (*)(const DiscoverArgs&);
  static const std::map<std::string, Runner> runners = {{"acdc", run_acdc},
                                                        {"edge-pruning", run_edge_pruning},
                                                        {"hap", run_edge_pruning},
                                                        {"path-patching", run_path_patching},
                                                        {"flap", run_flap},
                                                        {"app", run_app}};
  const auto it = runners.find(a.method);
  if (it == runners.end()) fail("discover", "no command-line writer for method '" + a.method + "'");
  it->second(a);
}

void run_discover(const DiscoverArgs& a) {
  if (discovery_method(a.method).kind == MethodKind::Search) return run_search_method(a);
  if ((a.edges >= 0) && (a.nodes >= 0)) fail("discover", "give --edges or --nodes, not both");
  Model model = load_model(a.m);
  const Metric metric = parse_metric(a.metric);
  const Ablation ablation = ablation_from_string(a.ablation);
  Graph graph = model_graph(model, !a.head_level);
  Dataset ds;
  Batch b = task_batch(model, a.task, a.n, a.seed, ablation, &ds);

  AttributionOptions opt;
  opt.ablation = ablation;
  opt.metric = metric;
  opt.steps = a.steps;
  opt.batch_size = a.batch_size;
  if (!a.candidates.empty()) {
    if (a.method != "exact") fail("discover", "--exact-candidates is for --method exact");
    const Circuit cand = circuit_read(a.candidates);
    if (!(cand.shape == graph.shape()) || cand.split_qkv != graph.split_qkv())
      fail(a.candidates, "its graph does not match this model's (layers, heads, kv heads, q/k/v split)");
    std::vector<uint8_t> in = cand.in_graph;
    opt.exact_candidates =
        at::from_blob(in.data(), {graph.n_sources(), graph.n_readers()}, at::kByte).to(at::kBool).clone();
  }
  std::unique_ptr<Progress> prog;
  opt.progress = [&](const std::string& stage, int64_t done, int64_t total) {
    if (!prog) prog = std::make_unique<Progress>("discover: " + stage, total);
    prog->update(done);
  };
  Progress clock("discover", 1);
  at::Tensor scores = attribute(a.method, model, graph, b, opt);  // [S, R] float64
  const double t_attr = clock.seconds();

  Circuit c = circuit_from_scores(model, graph, scores);
  SelectOptions so;
  so.absolute = !a.signed_scores;
  so.greedy = a.greedy;
  so.higher_is_better = metric_higher_is_better(metric);
  if (a.nodes >= 0) so.nodes = a.nodes;
  else so.edges = a.edges >= 0 ? a.edges : std::max<int64_t>(1, graph.n_edges() / 100);  // default: 1% of edges
  const int64_t chosen = select_circuit(c, so);

  // The top-n circuits of the curve, chosen by the same rule as the circuit.
  const std::vector<double>& fracs = curve_fractions();
  std::vector<at::Tensor> masks = {circuit_mask(c), at::zeros({graph.n_sources(), graph.n_readers()})};
  std::vector<Circuit> curve_cs;
  if (!a.curve.empty()) curve_cs = curve_circuits(c, so, fracs);
  for (const Circuit& ci : curve_cs) masks.push_back(circuit_mask(ci));
  // The full model, the circuit, the empty circuit and the curve's circuits: one patched pass
  // per batch.
  Progress eval("discover: evaluating " + std::to_string(masks.size()) + " circuits", b.size());
  const std::vector<double> f = circuit_metrics(model, graph, b, at::stack(masks), ablation, metric, a.batch_size,
                                                [&](int64_t done) { eval.update(done); });
  const double f_model = f[0], f_circ = f[1], f_empty = f[2];
  const double faith = normalized_faithfulness(f_circ, f_empty, f_model);
  c.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"method", a.method},
            {"ablation", a.ablation}, {"metric", a.metric}, {"steps", a.steps}, {"seed", a.seed},
            {"selection", {{"edges", so.edges}, {"nodes", so.nodes}, {"greedy", so.greedy}, {"absolute", so.absolute}}},
            {"metric_model", f_model}, {"metric_circuit", f_circ}, {"metric_empty", f_empty}, {"faithfulness", faith},
            {"score_sign", "score ~ M(edge ablated) - M(full model)"}};
  circuit_write(c, a.out);
  if (!a.svg.empty()) circuit_draw_svg(c, a.svg);

  if (!a.curve.empty()) {
    const FaithfulnessCurve fc = faithfulness_curve(fracs, curve_cs, std::vector<double>(f.begin() + 3, f.end()),
                                                    f_empty, f_model, graph.n_edges());
    write_file_atomic(a.curve, fc.csv());
    std::vector<double> faiths;
    for (const CurvePoint& p : fc.points) faiths.push_back(p.faithfulness);
    const std::string svg_path = path_stem(a.curve) + ".svg";
    write_file_atomic(svg_path, curve_svg(fracs, faiths, a.method + " on " + ds.name + " (" + a.metric + ")"));
    std::printf("curve      %s, %s: CPR %.4f, CMD %.4f\n", a.curve.c_str(), svg_path.c_str(), fc.cpr, fc.cmd);
  }

  std::printf("model      %s\ntask       %s (%lld examples)\nmethod     %s (ablation %s, metric %s)\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)b.size(), a.method.c_str(),
              ablation_name(ablation), metric_name(metric));
  const std::vector<uint8_t> nodes_in = c.nodes_in_graph();
  std::printf("circuit    %s: %lld edges chosen, %lld after pruning, %lld nodes, of %lld edges\n", a.out.c_str(),
              (long long)chosen, (long long)c.n_edges_in(), (long long)std::count(nodes_in.begin(), nodes_in.end(), 1),
              (long long)graph.n_edges());
  std::printf("\n%-10s %12s\n%-10s %12.4f\n%-10s %12.4f\n%-10s %12.4f\n", "", metric_name(metric), "model", f_model,
              "circuit", f_circ, "empty", f_empty);
  std::printf("\nnormalised faithfulness %.4f\ntime       %.1f s attribution, %.1f s total\n", faith, t_attr,
              clock.seconds());
}

}  // namespace

void register_discover_command(CLI::App& app) {
  static DiscoverArgs a;
  auto* cmd = app.add_subcommand("discover", "Find a circuit: score every edge, keep the best, measure it");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // later options override
  add_model_args(cmd, a.m);
  cmd->add_option("--task,-t", a.task,
                  "Built-in task (ioi, greater-than, induction, gendered-pronouns, docstring, sva) or a dataset file")
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
  cmd->add_option("--ablation,-a", a.ablation, "What replaces an ablated edge's source")
      ->check(CLI::IsMember(enum_choices(kAblationNames)))
      ->capture_default_str();
  auto* metric_opt = cmd->add_option("--metric,-m", a.metric, "Task metric (acdc: default kl, as ACDC's reference)")
      ->check(CLI::IsMember(enum_choices(kMetricNames)))
      ->capture_default_str();
  cmd->add_option("--edges", a.edges, "Edge budget (default: 1% of the graph's edges)");
  cmd->add_option("--nodes", a.nodes, "Node budget instead: the best source nodes and the edges among them");
  auto* steps_opt = cmd->add_option("--steps", a.steps,
                                    "Integrated-gradient steps (default 5); edge-pruning: optimisation steps (default 3000)")
                        ->check(CLI::PositiveNumber);
  cmd->add_flag("--greedy", a.greedy, "Grow from the logits, best edge into the circuit first (EAP-IG's greedy)");
  cmd->add_flag("--signed", a.signed_scores, "Rank by signed importance instead of |score|");
  cmd->add_flag("--head-level", a.head_level, "One reader per head instead of separate q/k/v readers");
  cmd->add_option("-o,--out", a.out, "Circuit JSON to write")->capture_default_str();
  cmd->add_option("--svg", a.svg, "Also draw the circuit (Graphviz) to this SVG");
  cmd->add_option("--curve", a.curve, "Faithfulness over edge budgets 0.1%..100% as CSV (and .svg beside it)");
  cmd->add_option("--exact-candidates", a.candidates,
                  "exact: score only the in-circuit edges of this circuit file (the others score 0)")
      ->check(CLI::ExistingFile);
  cmd->add_option("-n,--examples", a.n, "Examples (generated, or the first N of a file)")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of the task generator")->capture_default_str();
  auto* batch_opt = cmd->add_option("--batch-size", a.batch_size,
                                    "Examples per pass (default 16); edge-pruning: per optimisation step (default 32)")
                        ->check(CLI::PositiveNumber);
  auto* acdc = cmd->add_option_group("ACDC (--method acdc)");
  acdc->add_option("--tau", a.taus,
                   "Threshold: an edge goes when ablating it moves the loss by less than tau; several values "
                   "(--tau 0.001,0.01) run a sweep")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->capture_default_str();
  acdc->add_option("--acdc-mode", a.acdc_mode,
                   "classic (one edge at a time, exact), group (recursive group testing), rollback (try many, "
                   "then roll back)")
      ->check(CLI::IsMember(enum_choices(kAcdcModeNames)))
      ->capture_default_str();
  acdc->add_option("--rollback-tau", a.rollback_tau, "rollback: threshold for edges removed together (default 40 tau)");
  acdc->add_flag("--abs", a.absolute, "Compare |loss change| with tau (an edge that helps is kept too)");
  acdc->add_option("--max-candidates", a.max_candidates, "Masks per batched pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  acdc->add_option("--trajectory", a.trajectory,
                   "CSV of every decision (edge, kept/removed, metric, evaluations); default: beside -o");
  auto* ck = cmd->add_option_group("Checkpoints (acdc, edge-pruning)");
  ck->add_option("--checkpoint", a.checkpoint,
                 "Checkpoint file (acdc: JSON at reader boundaries; edge-pruning: safetensors at step boundaries); "
                 "a sweep writes one per value");
  ck->add_option("--checkpoint-every", a.checkpoint_every, "Seconds between checkpoints")->capture_default_str();
  ck->add_flag("--resume", a.resume, "Continue from --checkpoint when it exists (a checkpoint of other settings is refused)");
  auto* ep = cmd->add_option_group("Edge Pruning (--method edge-pruning)");
  ep->add_option("--target", a.targets,
                 "Edge sparsity to reach (fraction of edges removed; > 1 pushes to the emptiest circuit); several "
                 "values (--target 0.99,0.995) run a sweep")
      ->delimiter(',')
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->capture_default_str();
  ep->add_flag("--node-masks", a.node_masks, "Also learn a mask per source node (head, MLP, input)");
  ep->add_option("--node-target", a.node_target, "Node sparsity target (with --node-masks)")->capture_default_str();
  ep->add_flag("--no-node-loss", a.no_node_loss, "Node masks without their sparsity term (the reference's sweep)");
  ep->add_flag("--keep-embedding-edges", a.keep_embedding_edges, "Never prune the input's edges");
  ep->add_option("--init-log-alpha", a.init_log_alpha, "Mean of the initial log-alphas (std --init-std)")
      ->capture_default_str();
  ep->add_option("--init-std", a.init_std, "Their standard deviation")->capture_default_str();
  ep->add_option("--lr", a.lr, "AdamW learning rate of the log-alphas")->capture_default_str();
  ep->add_option("--lambda-lr", a.lambda_lr, "Learning rate of the Lagrange multipliers (gradient ascent)")
      ->capture_default_str();
  ep->add_option("--weight-decay", a.weight_decay, "AdamW weight decay")->capture_default_str();
  ep->add_option("--max-grad-norm", a.max_grad_norm, "Clip the gradient norm (0: off)")->capture_default_str();
  ep->add_option("--warmup-steps", a.warmup_steps, "Learning-rate warm-up steps (then linear decay to 0)")
      ->capture_default_str();
  ep->add_option("--target-warmup-steps", a.target_warmup_steps, "Steps over which the target rises from 0")
      ->capture_default_str();
  ep->add_option("--validation-fraction", a.validation_fraction,
                 "Examples held out for validation when the data has no split field")
      ->capture_default_str();
  ep->add_option("--cache-mb", a.cache_mb, "Keep every example's ablated values when they fit in this many MiB")
      ->capture_default_str();
  auto* hp = cmd->add_option_group("HAP (--method hap; with the Edge Pruning options)");
  hp->add_option("--prefilter", a.hap.prefilter, "Attribution method whose best edges Edge Pruning may keep")
      ->check(CLI::IsMember(attribution_methods()))
      ->capture_default_str();
  hp->add_option("--keep-fraction", a.hap.keep_fraction, "Fraction of the graph's edges the prefilter keeps")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  ep->add_option("--train-log", a.train_log, "Training log CSV (step, loss, KL, sparsity, lambdas); default: beside -o");
  add_path_patching_options(cmd, a, false);
  cmd->footer(
      "Scores estimate M(edge ablated) - M(full model) (exact computes it). The circuit keeps the\n"
      "best-ranked edges, then drops edges on no input -> logits path. Example:\n"
      "  edgewise discover --task ioi --method eap-ig-inputs --edges 500 -o ioi.json --svg ioi.svg --curve ioi.csv\n"
      "ACDC removes edges greedily (logits first) while the loss moves by less than --tau; its scores\n"
      "are the metric change when each edge was tried. A sweep writes one circuit per tau and the\n"
      "size-vs-faithfulness curve:\n"
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
  cmd->callback([metric_opt, steps_opt, batch_opt] {
    a.metric_given = metric_opt->count() > 0;
    a.steps_given = steps_opt->count() > 0;
    a.batch_given = batch_opt->count() > 0;
    run_discover(a);
  });
}

}  // namespace edgewise::cli
