// `edgewise discover --method edge-pruning`: trains Edge Pruning's masks (include/edgewise/
// edge_pruning.h) for one edge-sparsity target or a sweep of them on the training split, then
// measures each circuit on the validation split (KL, logit difference, accuracy, exact match,
// normalised faithfulness) and writes per target the circuit, its training log (CSV) and, for a
// sweep, the size-vs-faithfulness curve (CSV + SVG).
//
// Train / validation: a dataset file's `split` fields when it has them; otherwise the last
// --validation-fraction of the examples (built-in tasks are seeded i.i.d. draws, so this is a
// seeded split).
//
// Not here: the training itself (src/discover/edge_pruning.cpp).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "discover.h"
#include "edgewise/attribution.h"
#include "edgewise/discover.h"
#include "edgewise/edge_pruning.h"
#include "edgewise/error.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "progress.h"

namespace edgewise::cli {

namespace {

void write_log(const EdgePruningResult& r, const std::string& path) {
  std::ostringstream s;
  s << "step,loss,kl,edge_sparsity,target,node_sparsity,node_target,lambda1,lambda2,lr,seconds\n";
  char line[320];
  for (const EdgePruningLog& l : r.log) {
    std::snprintf(line, sizeof line, "%lld,%.8g,%.8g,%.6f,%.6f,%.6f,%.6f,%.6g,%.6g,%.6g,%.2f\n", (long long)l.step, l.loss,
                  l.kl, l.edge_sparsity, l.target, l.node_sparsity, l.node_target, l.lambda1, l.lambda2, l.lr,
                  l.seconds);
    s << line;
  }
  write_file_atomic(path, s.str());
}

}  // namespace

void run_edge_pruning(const DiscoverArgs& a) {
  if (a.edges >= 0 || a.nodes >= 0)
    fail("discover", "--edges and --nodes do not apply to edge-pruning: --target sets the sparsity");
  if (a.targets.empty()) fail("discover", "--target needs at least one value");
  for (double t : a.targets)
    if (!(t > 0) || !std::isfinite(t)) fail("discover", "--target values must be positive numbers, got " + fmt_g(t));
  if (!(a.validation_fraction >= 0 && a.validation_fraction < 1))
    fail("discover", "--validation-fraction must lie in [0, 1)");
  Model model = load_model(a.m);
  const Ablation ablation = ablation_from_string(a.ablation);
  Graph graph = model_graph(model, !a.head_level);

  // The data and its split.
  Dataset ds = load_task(a.task, model.tokenizer(), a.n, a.seed);
  TrainValidation tv = split_train_validation(ds, a.validation_fraction, 0);
  const bool has_split = tv.from_file;
  Dataset& train_ds = tv.train;
  Dataset& val_ds = tv.validation;
  if (val_ds.examples.empty()) {
    std::fprintf(stderr, "edge-pruning: no validation examples (--validation-fraction 0): measuring on the training set\n");
    val_ds = train_ds;
  }
  BatchOptions bo;
  bo.require_aligned = ablation_needs_alignment(ablation);
  const Batch train = make_batch(train_ds, model.tokenizer(), bo), val = make_batch(val_ds, model.tokenizer(), bo);
  const int64_t steps = a.steps_given ? a.steps : 3000, batch = a.batch_given ? a.batch_size : 32;
  std::fprintf(stderr, "edge-pruning: %lld training / %lld validation examples (%s), %lld steps of batch %lld, %lld edges\n",
               (long long)train.size(), (long long)val.size(), has_split ? "the file's split" : "seeded split",
               (long long)steps, (long long)batch, (long long)graph.n_edges());

  // HAP: the prefilter's survivors, scored on the training split.
  at::Tensor candidates;
  if (a.method == "hap") {
    AttributionOptions ao;
    ao.ablation = ablation;
    ao.metric = parse_metric(a.metric);
    ao.batch_size = std::min<int64_t>(batch, 16);
    Progress pre("hap: " + a.hap.prefilter + " prefilter", 1);
    candidates = hap_candidates(model, graph, train, a.hap, ao);
    std::fprintf(stderr, "hap: %s keeps %lld of %lld edges (%g) in %.1f s\n", a.hap.prefilter.c_str(),
                 (long long)candidates.sum().item<int64_t>(), (long long)graph.n_edges(), a.hap.keep_fraction,
                 pre.seconds());
  }

  const bool sweep = a.targets.size() > 1;
  struct Done {
    double target;
    EdgePruningResult r;
    Circuit c;
    int64_t raw = 0;
  };
  std::vector<Done> runs;
  for (double target : a.targets) {
    EdgePruningOptions o;
    o.edge_target = target;
    o.node_masks = a.node_masks;
    o.node_target = a.node_target;
    o.node_loss = !a.no_node_loss;
    o.keep_embedding_edges = a.keep_embedding_edges;
    o.init_mean = a.init_log_alpha;
    o.init_std = a.init_std;
    o.steps = steps;
    o.batch_size = batch;
    o.warmup_steps = a.warmup_steps;
    o.target_warmup_steps = a.target_warmup_steps;
    o.lr = a.lr;
    o.lambda_lr = a.lambda_lr;
    o.weight_decay = a.weight_decay;
    o.max_grad_norm = a.max_grad_norm;
    o.seed = a.seed;
    o.ablation = ablation;
    o.cache_mb = a.cache_mb;
    o.checkpoint = a.checkpoint.empty() || !sweep ? a.checkpoint : with_suffix(a.checkpoint, ".t" + fmt_g(target));
    o.checkpoint_seconds = a.checkpoint_every;
    o.resume = a.resume;
    o.fingerprint = run_fingerprint(model, ds, a);
    o.log_every = 10;
    o.candidates = candidates;
    Progress prog("edge-pruning target=" + fmt_g(target) + " steps", steps);
    auto progress = [&](const EdgePruningLog& l) {
      char extra[240];
      std::snprintf(extra, sizeof extra, "loss %.4g, kl %.4g, sparsity %.4f (target now %.4f), lambdas %.3g %.3g",
                    l.loss, l.kl, l.edge_sparsity, l.target, l.lambda1, l.lambda2);
      prog.update(l.step, extra);
    };
    EdgePruningResult r = edge_pruning(model, graph, train, o, progress);
    Circuit c = circuit_from_scores(model, graph, r.mask, r.kept);
    const int64_t raw = c.n_edges_in();
    c.prune();
    runs.push_back({target, std::move(r), std::move(c), raw});
  }

  // Validation: the full model, every circuit, the empty circuit in one patched pass per batch.
  std::vector<at::Tensor> masks;
  for (const Done& d : runs) masks.push_back(circuit_mask(d.c));
  masks.push_back(at::zeros({graph.n_sources(), graph.n_readers()}));
  std::fprintf(stderr, "edge-pruning: measuring %zu circuits on %lld validation examples\n", masks.size(),
               (long long)val.size());
  EvaluateOptions eo;
  eo.ablation = ablation;
  eo.batch_size = std::min<int64_t>(batch, 32);
  const CircuitEvaluation ag = evaluate_circuits(model, graph, val, at::stack(masks), eo);
  const size_t E = runs.size() + 1;  // index of the empty circuit
  auto faith = [&](size_t i) { return normalized_faithfulness(ag.logit_diff[i], ag.logit_diff[E], ag.logit_diff[0]); };

  const std::string prefix =
      candidates.defined() ? "hap: " + a.hap.prefilter + " keeps " + fmt_g(a.hap.keep_fraction) + " of the edges, then " : "";
  std::printf("model      %s\ntask       %s (%lld train, %lld validation)\nmethod     %sedge-pruning (ablation %s, "
              "%lld steps, batch %lld%s)\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)train.size(), (long long)val.size(),
              prefix.c_str(), ablation_name(ablation), (long long)steps, (long long)batch,
              a.node_masks ? ", node masks" : "");
  std::printf("%-8s %9s %7s %7s %6s %9s %10s %8s %8s %8s %8s\n", "target", "sparsity", "edges", "pruned", "nodes",
              "val KL", "logit diff", "faithful", "accuracy", "exact", "seconds");
  std::ostringstream csv;
  csv << "target,trained_sparsity,edges,edges_after_prune,nodes,kl,logit_diff,faithfulness,accuracy,exact_match,seconds\n";
  std::vector<std::pair<double, double>> curve;
  for (size_t i = 0; i < runs.size(); ++i) {
    Done& d = runs[i];
    const std::vector<uint8_t> nodes_in = d.c.nodes_in_graph();
    const int64_t n_nodes = std::count(nodes_in.begin(), nodes_in.end(), 1);
    const double f = faith(i + 1);
    d.c.meta = {{"model", model.source().origin}, {"task", ds.name}, {"examples", train.size()},
                {"method", a.method}, {"ablation", a.ablation}, {"seed", a.seed},
                {"edge_pruning", {{"target", d.target}, {"trained_sparsity", d.r.trained_sparsity},
                                  {"steps", d.r.steps_done}, {"batch_size", batch}, {"lr", a.lr},
                                  {"lambda_lr", a.lambda_lr}, {"node_masks", a.node_masks},
                                  {"keep_embedding_edges", a.keep_embedding_edges},
                                  {"edges_before_prune", d.raw}, {"seconds", d.r.seconds}, {"complete", d.r.complete}}},
                {"validation", {{"examples", val.size()}, {"kl", ag.kl[i + 1]}, {"logit_diff", ag.logit_diff[i + 1]},
                                {"accuracy", ag.accuracy[i + 1]}, {"exact_match", ag.exact_match[i + 1]},
                                {"logit_diff_model", ag.logit_diff[0]}, {"logit_diff_empty", ag.logit_diff[E]},
                                {"kl_empty", ag.kl[E]}, {"faithfulness", f}}},
                {"score_sign", "score = the deterministic mask value (0..1) of the trained log-alpha"}};
    if (candidates.defined())
      d.c.meta["prefilter"] = {{"method", a.hap.prefilter}, {"keep_fraction", a.hap.keep_fraction},
                               {"candidates", candidates.sum().item<int64_t>()}};
    const std::string out = sweep ? with_suffix(a.out, ".t" + fmt_g(d.target)) : a.out;
    circuit_write(d.c, out);
    const std::string log = a.train_log.empty() ? path_stem(out) + ".log.csv"
                                                : (sweep ? with_suffix(a.train_log, ".t" + fmt_g(d.target)) : a.train_log);
    write_log(d.r, log);
    if (!a.svg.empty()) circuit_draw_svg(d.c, sweep ? with_suffix(a.svg, ".t" + fmt_g(d.target)) : a.svg);
    std::printf("%-8g %9.5f %7lld %7lld %6lld %9.4g %10.4g %8.4f %8.3f %8.3f %8.1f%s\n", d.target, d.r.trained_sparsity,
                (long long)d.raw, (long long)d.c.n_edges_in(), (long long)n_nodes, ag.kl[i + 1], ag.logit_diff[i + 1], f,
                ag.accuracy[i + 1], ag.exact_match[i + 1], d.r.seconds, d.r.complete ? "" : " (stopped)");
    char line[320];
    std::snprintf(line, sizeof line, "%g,%.8g,%lld,%lld,%lld,%.8g,%.8g,%.6g,%.6g,%.6g,%.2f\n", d.target,
                  d.r.trained_sparsity, (long long)d.raw, (long long)d.c.n_edges_in(), (long long)n_nodes, ag.kl[i + 1],
                  ag.logit_diff[i + 1], f, ag.accuracy[i + 1], ag.exact_match[i + 1], d.r.seconds);
    csv << line;
    if (d.c.n_edges_in() > 0) curve.push_back({static_cast<double>(d.c.n_edges_in()) / graph.n_edges(), f});
    std::fprintf(stderr, "wrote %s and %s\n", out.c_str(), log.c_str());
  }
  std::printf("\nfull model: logit diff %.4g, accuracy %.3f; empty circuit: logit diff %.4g, KL %.4g (of %lld edges)\n",
              ag.logit_diff[0], ag.accuracy[0], ag.logit_diff[E], ag.kl[E], (long long)graph.n_edges());
  if (sweep || !a.curve.empty())
    write_sweep(a, csv.str(), curve, "edge-pruning target sweep on " + ds.name + " (logit difference)");
}

}  // namespace edgewise::cli
