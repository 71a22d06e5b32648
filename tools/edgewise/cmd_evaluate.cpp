// `edgewise evaluate`: the task metric of the full model, of a circuit, and of the empty
// circuit, and the normalised faithfulness. The three are one patched pass per batch
// (circuit_metrics, evaluate.h).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "edgewise/attribution.h"
#include "edgewise/circuit.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/tasks.h"
#include "progress.h"

namespace edgewise::cli {

namespace {

struct EvalArgs {
  ModelArgs m;
  std::string task, circuit, ablation = "resample", metric = "logit-diff";
  int64_t n = 100, batch_size = 16;
  uint64_t seed = 0;
  bool skip_bad = false;
};

}  // namespace

LoadOptions load_options(const ModelArgs& a, bool tokenizer) {
  LoadOptions o;
  if (a.dtype == "bf16") o.dtype = DType::BF16;
  o.device = a.device;
  o.load_tokenizer = tokenizer;
  return o;
}

void add_skip_bad_lines(CLI::App* cmd, bool& skip_bad) {
  cmd->add_flag("--skip-bad-lines", skip_bad,
                "Skip the dataset file's bad lines and examples (each is listed, with the count) instead of "
                "stopping; without it every bad line is reported at once and nothing runs");
}

void apply_task_defaults(const std::string& task, bool ablation_given, std::string* ablation, bool metric_given,
                         std::string* metric) {
  const TaskDefaults d = task_defaults(task);
  std::string applied;
  if (ablation && !ablation_given && !d.ablation.empty() && *ablation != d.ablation) {
    *ablation = d.ablation;
    applied += "ablation " + d.ablation;
  }
  if (metric && !metric_given && !d.metric.empty() && *metric != d.metric) {
    *metric = d.metric;
    applied += (applied.empty() ? "metric " : ", metric ") + d.metric;
  }
  if (!applied.empty())
    std::fprintf(stderr, "task %s: %s (the task's defaults; --ablation / --metric choose others)\n", task.c_str(),
                 applied.c_str());
}

Dataset load_data(const Model& model, const std::string& task, int64_t n, uint64_t seed, bool skip_bad) {
  LoadDataOptions o;
  o.skip_bad = skip_bad;
  Dataset ds = load_task(task, model.tokenizer(), n, seed, o);
  if (ds.skipped > 0) {
    std::fprintf(stderr, "data: skipped %lld bad line%s or example%s of %s (--skip-bad-lines):\n",
                 (long long)ds.skipped, ds.skipped == 1 ? "" : "s", ds.skipped == 1 ? "" : "s", ds.name.c_str());
    for (const std::string& s : ds.skip_notes) std::fprintf(stderr, "  %s\n", s.c_str());
  }
  for (const std::string& w : ds.warnings) std::fprintf(stderr, "warning: %s: %s\n", ds.name.c_str(), w.c_str());
  return ds;
}

Model load_model(const ModelArgs& a) {
  if (a.threads > 0) at::set_num_threads(a.threads);
  return Model::load(a.model, load_options(a));
}

namespace {

void run_evaluate(const EvalArgs& a) {
  Model model = load_model(a.m);
  const Metric metric = parse_metric(a.metric);
  const Ablation ablation = ablation_from_string(a.ablation);
  Circuit c = circuit_read(a.circuit);
  const auto& cfg = model.config();
  Graph graph = model_graph(model, c.split_qkv);
  if (!(c.shape == graph.shape()))
    fail(a.circuit, "circuit graph (" + std::to_string(c.shape.n_layers) + " layers, " +
                        std::to_string(c.shape.n_heads) + " heads, " + std::to_string(c.shape.n_kv_heads) +
                        " kv heads" + (c.shape.parallel ? ", parallel blocks" : "") + ") does not match the model (" +
                        std::to_string(cfg.n_layers) + ", " + std::to_string(cfg.n_heads) + ", " +
                        std::to_string(cfg.n_kv_heads) + (cfg.block.parallel ? ", parallel blocks" : "") + ")");
  const auto [ds, b] = task_batch(model, a.task, a.n, a.seed, ablation, a.skip_bad);
  const int64_t N = b.size(), S = graph.n_sources(), R = graph.n_readers();

  // One patched pass per batch: the full model, the circuit, the empty circuit.
  Progress clock("evaluate", 1);
  const std::vector<double> f = circuit_metrics(model, graph, b, at::stack({circuit_mask(c), at::zeros({S, R})}),
                                                ablation, metric, a.batch_size, progress_printer("evaluate:"));
  const double f_model = f[0], f_circ = f[1], f_empty = f[2];
  const double faith = normalized_faithfulness(f_circ, f_empty, f_model);
  std::printf("model      %s\n", model.source().origin.c_str());
  std::printf("task       %s (%lld examples)%s\n", ds.name.c_str(), (long long)N,
              ds.description.empty() ? "" : (" - " + ds.description).c_str());
  std::printf("circuit    %s: %lld of %lld edges\n", a.circuit.c_str(), (long long)c.n_edges_in(),
              (long long)graph.n_edges());
  std::printf("ablation   %s\nmetric     %s\n\n", ablation_name(ablation), metric_name(metric));
  std::printf("%-10s %12s\n", "", metric_name(metric));
  std::printf("%-10s %12.4f\n%-10s %12.4f\n%-10s %12.4f\n", "model", f_model, "circuit", f_circ, "empty", f_empty);
  std::printf("\nnormalised faithfulness (F(C) - F(empty)) / (F(model) - F(empty)) = %.4f\n", faith);
  std::printf("time %.1f s\n", clock.seconds());
}

}  // namespace

void register_evaluate_command(CLI::App& app) {
  static EvalArgs a;
  auto* cmd = app.add_subcommand("evaluate", "Metric of the full model, a circuit and the empty circuit, and faithfulness");
  add_model_args(cmd, a.m);
  cmd->add_option("--task,-t", a.task,
                  "Built-in task (ioi, greater-than, induction, gendered-pronouns, docstring, sva; tracr-reverse, "
                  "tracr-xproportion on the Tracr models) or a dataset "
                  "file (.jsonl, .csv)")
      ->required();
  cmd->add_option("--circuit,-c", a.circuit, "Circuit JSON (edgewise or EAP-IG format)")->required()->check(CLI::ExistingFile);
  auto* ablation_opt = cmd->add_option("--ablation,-a", a.ablation, "What replaces an ablated edge's source (a Tracr task's default: zero)")
      ->check(CLI::IsMember(enum_choices(kAblationNames)))
      ->capture_default_str();
  auto* metric_opt = cmd->add_option("--metric,-m", a.metric, "Task metric (the Tracr tasks': mse)")
      ->check(CLI::IsMember(enum_choices(kMetricNames)))
      ->capture_default_str();
  cmd->add_option("-n,--examples", a.n, "Examples (generated, or the first N of a file)")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of the task generator")->capture_default_str();
  add_skip_bad_lines(cmd, a.skip_bad);
  cmd->add_option("--batch-size", a.batch_size, "Examples per patched pass")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->footer(
      "The circuit's edges keep their clean values; every other edge carries the ablated value\n"
      "(resample: the paired corrupted prompt). One patched pass evaluates the full model, the\n"
      "circuit and the empty circuit together.");
  cmd->callback([ablation_opt, metric_opt] {
    apply_task_defaults(a.task, ablation_opt->count() > 0, &a.ablation, metric_opt->count() > 0, &a.metric);
    run_evaluate(a);
  });
}

}  // namespace edgewise::cli
