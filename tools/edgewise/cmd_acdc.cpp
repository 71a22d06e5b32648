// `edgewise discover --method acdc`: runs ACDC (include/edgewise/acdc.h) for one tau or a sweep
// of them, measures each circuit with the standard evaluation (the patched forward of the pruned
// circuit over the task, as `evaluate` does), and writes per tau the circuit, its trajectory
// (every decision, CSV) and, for a sweep, the size-vs-faithfulness curve (CSV + SVG).
//
// Not here: the search itself (src/discover/acdc.cpp).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "discover.h"
#include "edgewise/acdc.h"
#include "edgewise/attribution.h"
#include "edgewise/error.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "progress.h"

namespace edgewise::cli {

void run_acdc(const DiscoverArgs& a) {
  if (a.edges >= 0 || a.nodes >= 0) fail("discover", "--edges and --nodes do not apply to acdc: --tau sets the size");
  if (a.taus.empty()) fail("discover", "--tau needs at least one value");
  for (double t : a.taus)
    if (!(t > 0) || !std::isfinite(t)) fail("discover", "--tau values must be positive numbers, got " + fmt_g(t));
  Model model = load_model(a.m);
  const Metric metric = a.metric_given ? parse_metric(a.metric) : Metric::KL;
  const Ablation ablation = ablation_from_string(a.ablation);
  Graph graph = model_graph(model, !a.head_level);
  Dataset ds;
  Batch b = task_batch(model, a.task, a.n, a.seed, ablation, &ds);
  const bool sweep = a.taus.size() > 1;
  const int64_t state_mb =
      (graph.n_sources() + graph.n_readers()) * b.size() * b.clean.size(1) * model.config().d_model * 4 / (1 << 20);
  std::fprintf(stderr, "acdc: %lld prompts x %lld tokens in one batch; the circuit's state takes ~%lld MiB\n",
               (long long)b.size(), (long long)b.clean.size(1), (long long)state_mb);

  struct Done {
    double tau;
    AcdcResult r;
    Circuit c;
    int64_t raw = 0;
  };
  std::vector<Done> runs;
  for (double tau : a.taus) {
    AcdcOptions o;
    o.tau = tau;
    o.ablation = ablation;
    o.metric = metric;
    o.mode = acdc_mode_from_string(a.acdc_mode);
    o.rollback_tau = a.rollback_tau;
    o.absolute = a.absolute;
    o.max_candidates = a.max_candidates;
    o.checkpoint = a.checkpoint.empty() || !sweep ? a.checkpoint : with_suffix(a.checkpoint, ".tau" + fmt_g(tau));
    o.checkpoint_seconds = a.checkpoint_every;
    o.resume = a.resume;
    o.fingerprint = run_fingerprint(model, ds, a);
    Progress prog("acdc tau=" + fmt_g(tau) + " readers", graph.n_readers());
    o.progress = [&](int64_t done, int64_t total, int64_t kept, int64_t evals, double cur) {
      (void)total;
      char extra[160];
      std::snprintf(extra, sizeof extra, "%lld edges kept, %lld evaluations, %s %.5g", (long long)kept,
                    (long long)evals, metric_name(metric), cur);
      prog.update(done, extra);
    };
    AcdcResult r = acdc(model, graph, b, o);
    Circuit c = circuit_from_scores(model, graph, r.scores, r.kept);
    const int64_t raw = c.n_edges_in();
    c.prune();
    runs.push_back({tau, std::move(r), std::move(c), raw});
  }

  // The full model, every circuit and the empty circuit: one patched pass per batch.
  std::vector<at::Tensor> masks;
  for (const Done& d : runs) masks.push_back(circuit_mask(d.c));
  masks.push_back(at::zeros({graph.n_sources(), graph.n_readers()}));
  Progress eval("discover: evaluating " + std::to_string(masks.size()) + " circuits", b.size());
  const std::vector<double> f = circuit_metrics(model, graph, b, at::stack(masks), ablation, metric, a.batch_size,
                                                [&](int64_t done) { eval.update(done); });
  const double f_model = f[0], f_empty = f[runs.size() + 1];

  std::printf("model      %s\ntask       %s (%lld examples)\nmethod     acdc %s (ablation %s, metric %s%s)\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)b.size(), a.acdc_mode.c_str(),
              ablation_name(ablation), metric_name(metric), a.absolute ? ", |change|" : "");
  std::printf("%-9s %7s %7s %6s %12s %12s %8s %11s %7s %8s\n", "tau", "edges", "pruned", "nodes", "acdc metric",
              metric_name(metric), "faithful", "evaluations", "passes", "seconds");
  std::ostringstream csv;
  csv << "tau,edges,edges_after_prune,nodes,acdc_metric,metric,faithfulness,evaluations,passes,skipped,seconds\n";
  std::vector<std::pair<double, double>> curve;  // (fraction of edges, faithfulness)
  for (size_t i = 0; i < runs.size(); ++i) {
    Done& d = runs[i];
    const double fc = f[i + 1], faith = normalized_faithfulness(fc, f_empty, f_model);
    const std::vector<uint8_t> nodes_in = d.c.nodes_in_graph();
    const int64_t n_nodes = std::count(nodes_in.begin(), nodes_in.end(), 1);
    d.c.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", b.size()}, {"method", "acdc"},
                {"ablation", a.ablation}, {"metric", metric_name(metric)}, {"seed", a.seed},
                {"acdc", {{"tau", d.tau}, {"mode", a.acdc_mode}, {"absolute", a.absolute},
                          {"rollback_tau", a.rollback_tau}, {"evaluations", d.r.evaluations},
                          {"passes", d.r.passes}, {"skipped", d.r.skipped}, {"edges_before_prune", d.raw},
                          {"metric_running", d.r.metric_final}, {"seconds", d.r.seconds},
                          {"complete", d.r.complete}}},
                {"metric_model", f_model}, {"metric_circuit", fc}, {"metric_empty", f_empty},
                {"faithfulness", faith}, {"score_sign", "score = M(edge ablated) - M(circuit) when ACDC tried it"}};
    const std::string out = sweep ? with_suffix(a.out, ".tau" + fmt_g(d.tau)) : a.out;
    circuit_write(d.c, out);
    const std::string traj = a.trajectory.empty() ? path_stem(out) + ".trajectory.csv"
                                                   : (sweep ? with_suffix(a.trajectory, ".tau" + fmt_g(d.tau)) : a.trajectory);
    acdc_write_trajectory(d.r, graph, traj);
    if (!a.svg.empty()) circuit_draw_svg(d.c, sweep ? with_suffix(a.svg, ".tau" + fmt_g(d.tau)) : a.svg);
    std::printf("%-9g %7lld %7lld %6lld %12.5g %12.5g %8.4f %11lld %7lld %8.1f%s\n", d.tau, (long long)d.raw,
                (long long)d.c.n_edges_in(), (long long)n_nodes, d.r.metric_final, fc, faith,
                (long long)d.r.evaluations, (long long)d.r.passes, d.r.seconds, d.r.complete ? "" : " (stopped)");
    char line[256];
    std::snprintf(line, sizeof line, "%g,%lld,%lld,%lld,%.8g,%.8g,%.6g,%lld,%lld,%lld,%.2f\n", d.tau, (long long)d.raw,
                  (long long)d.c.n_edges_in(), (long long)n_nodes, d.r.metric_final, fc, faith,
                  (long long)d.r.evaluations, (long long)d.r.passes, (long long)d.r.skipped, d.r.seconds);
    csv << line;
    if (d.c.n_edges_in() > 0) curve.push_back({static_cast<double>(d.c.n_edges_in()) / graph.n_edges(), faith});
    std::fprintf(stderr, "wrote %s and %s\n", out.c_str(), traj.c_str());
  }
  std::printf("\nmodel %s %.5g, empty circuit %.5g (of %lld edges)\n", metric_name(metric), f_model, f_empty,
              (long long)graph.n_edges());
  if (sweep || !a.curve.empty())
    write_sweep(a, csv.str(), curve, "acdc tau sweep on " + ds.name + " (" + metric_name(metric) + ")");
}

}  // namespace edgewise::cli
