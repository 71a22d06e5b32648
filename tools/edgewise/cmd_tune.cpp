// `edgewise tune`: circuit-tuning (include/edgewise/circuit_tuning.h) of a model on a task,
// optionally next to full fine-tuning with the same steps (--baseline), and a report: the task
// metric (logit difference, accuracy, answer loss) on held-out examples before and after,
// perplexity on general text before and after, the fraction of parameters updated, time per
// step. The tuned model is saved as a Hugging Face directory (transformers and edgewise load it).
//
// Not here: the training (src/discover/circuit_tuning.cpp), saving (src/model/save.cpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "edgewise/circuit.h"
#include "edgewise/circuit_tuning.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/metrics.h"
#include "edgewise/outputs.h"
#include "progress.h"

namespace edgewise::cli {

namespace {

constexpr const char* kDefaultGeneralText = "/usr/share/common-licenses/GPL-3";

struct TuneArgs {
  ModelArgs m;
  std::string task = "sva";
  int64_t n = 400;
  uint64_t seed = 0;
  double validation_fraction = 0.25;
  int64_t nodes = 30, edges = -1, mlp_heads = 1, discovery_examples = 32;
  std::string ablation = "mean", metric = "logit-diff";
  bool train_embeddings = false, train_norms = false, full = false, baseline = false;
  bool skip_bad = false;
  std::string optimizer = "sgd";
  double lr = 1e-3, momentum = 0.9, weight_decay = 1e-4, max_grad_norm = 0;
  int64_t rounds = 5, steps_per_round = 20, batch_size = 16, warmup_steps = 0;
  std::string out = "tuned", baseline_out, report, log, general_text;
  int64_t ppl_context = 128;
  std::string checkpoint;
  double checkpoint_every = 60;
  bool resume = false;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open the general text file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Outcome {
  std::string name;
  TuneResult r;
  TaskScore after;
  double ppl_after = NAN;
};

std::string log_csv(const TuneResult& r) {
  std::ostringstream s;
  s << "round,step,loss,lr,params_trained,seconds\n";
  char line[200];
  for (const TuneLog& l : r.log) {
    std::snprintf(line, sizeof line, "%lld,%lld,%.8g,%.6g,%lld,%.3f\n", (long long)l.round, (long long)l.step, l.loss,
                  l.lr, (long long)l.params_trained, l.seconds);
    s << line;
  }
  return s.str();
}

void run_tune(const TuneArgs& a) {
  if (!(a.validation_fraction > 0 && a.validation_fraction < 1))
    fail("tune", "--validation-fraction must lie in (0, 1): the report measures held-out examples");
  if (a.full && a.baseline) fail("tune", "--full trains every parameter; --baseline adds that run next to circuit-tuning: choose one");
  // Every output checked before the model loads; all published together once training is done.
  OutputFiles files;
  files.add(a.out, "the tuned model (-o)", true);
  if (a.baseline && !a.baseline_out.empty()) files.add(a.baseline_out, "the full fine-tuning model (--baseline-out)", true);
  if (!a.report.empty()) files.add(a.report, "the report (--report)");
  if (!a.log.empty()) files.add(a.log, "the training log (--log)");
  if (a.baseline && !a.log.empty()) files.add(a.log + ".full.csv", "the full fine-tuning log");
  if (!a.checkpoint.empty()) check_output_path(a.checkpoint, "the checkpoint (--checkpoint)");
  Model model = load_model(a.m);
  const Ablation ablation = ablation_from_string(a.ablation);

  Dataset ds = load_data(model, a.task, a.n, a.seed, a.skip_bad);
  const TrainValidation tv = split_train_validation(ds, a.validation_fraction, 1);
  const bool has_split = tv.from_file;
  const Dataset& train_ds = tv.train;
  const Dataset& val_ds = tv.validation;
  if (val_ds.examples.empty()) fail(ds.name, "no validation examples (the file's split has none)");
  BatchOptions bo;
  bo.require_aligned = ablation_needs_alignment(ablation);
  const Batch train = make_batch(train_ds, model.tokenizer(), bo), val = make_batch(val_ds, model.tokenizer(), bo);

  std::string general;
  std::string general_path = a.general_text;
  if (general_path.empty() && std::filesystem::exists(kDefaultGeneralText)) general_path = kDefaultGeneralText;
  if (!model.tokenizer().output_labels().empty()) {
    // A model whose outputs are not its input tokens (Tracr) has no perplexity on text.
    std::fprintf(stderr, "tune: perplexity is not measured: this model's outputs are not tokens of its input\n");
    general_path.clear();
  }
  if (!general_path.empty()) general = read_text(general_path);
  else if (model.tokenizer().output_labels().empty())
    std::fprintf(stderr, "tune: no general text (--general-text FILE): perplexity is not measured\n");

  std::fprintf(stderr, "tune: %lld training / %lld validation examples (%s); measuring the model before tuning\n",
               (long long)train.size(), (long long)val.size(), has_split ? "the file's split" : "seeded split");
  const TaskScore before = task_score(model, val);
  // Perplexity windows longer than the model's context cannot be scored: shorten them, saying so.
  const int64_t ppl_context = std::min(a.ppl_context, model.config().n_ctx);
  if (!general.empty() && ppl_context < a.ppl_context)
    std::fprintf(stderr, "tune: perplexity windows of %lld tokens, the model's context (--ppl-context %lld is longer)\n",
                 (long long)ppl_context, (long long)a.ppl_context);
  const double ppl_before = general.empty() ? NAN : perplexity(model, general, ppl_context);

  TuneOptions o;
  o.nodes = a.nodes, o.edges = a.edges, o.mlp_heads = a.mlp_heads, o.ablation = ablation;
  o.metric = parse_metric(a.metric);
  o.discovery_examples = a.discovery_examples;
  o.train_embeddings = a.train_embeddings, o.train_norms = a.train_norms;
  o.optimizer = a.optimizer, o.lr = a.lr, o.momentum = a.momentum, o.weight_decay = a.weight_decay;
  o.rounds = a.rounds, o.steps_per_round = a.steps_per_round, o.batch_size = a.batch_size;
  o.warmup_steps = a.warmup_steps, o.max_grad_norm = a.max_grad_norm, o.seed = a.seed;
  o.run.checkpoint_seconds = a.checkpoint_every, o.run.resume = a.resume;
  o.run.fingerprint = model.source().origin + " | " + ds.name + " | n=" + std::to_string(a.n) + " | seed=" + std::to_string(a.seed);

  std::vector<Outcome> runs;
  std::vector<bool> kinds;  // full?
  if (a.baseline) kinds = {false, true};
  else kinds = {a.full};
  for (bool full : kinds) {
    TuneOptions oo = o;
    oo.full = full;
    const std::string name = full ? "full fine-tuning" : "circuit-tuning";
    oo.run.checkpoint = a.checkpoint.empty() ? "" : (full && a.baseline ? a.checkpoint + ".full" : a.checkpoint);
    oo.run.progress = progress_printer("tune (" + name + ")");
    Outcome out;
    out.name = name;
    out.r = circuit_tune(model, train, oo);
    if (!out.r.complete) fail("tune", "stopped before the last step; run again with --resume");
    const Model tuned = model.with_weights(out.r.weights);
    out.after = task_score(tuned, val);
    if (!general.empty()) out.ppl_after = perplexity(tuned, general, ppl_context);
    runs.push_back(std::move(out));
  }

  // Report.
  nlohmann::json rep;
  rep["model"] = model.source().origin;
  rep["task"] = ds.name;
  rep["train_examples"] = train.size();
  rep["validation_examples"] = val.size();
  rep["general_text"] = general_path;
  rep["before"] = {{"logit_diff", before.logit_diff}, {"accuracy", before.accuracy}, {"answer_loss", before.loss},
                   {"perplexity", std::isnan(ppl_before) ? nlohmann::json() : nlohmann::json(ppl_before)}};
  rep["options"] = {{"nodes", a.edges > 0 ? -1 : a.nodes}, {"edges", a.edges}, {"mlp_heads", a.mlp_heads},
                    {"ablation", a.ablation}, {"metric", a.metric}, {"discovery_examples", a.discovery_examples},
                    {"train_embeddings", a.train_embeddings}, {"train_norms", a.train_norms},
                    {"optimizer", a.optimizer}, {"lr", a.lr}, {"momentum", a.momentum},
                    {"weight_decay", a.weight_decay}, {"rounds", a.rounds}, {"steps_per_round", a.steps_per_round},
                    {"batch_size", a.batch_size}, {"warmup_steps", a.warmup_steps}, {"seed", a.seed}};
  std::printf("model      %s\ntask       %s (%lld train, %lld validation)\ntraining   %s, lr %g, %lld rounds x %lld "
              "steps, batch %lld\n\n",
              model.source().origin.c_str(), ds.name.c_str(), (long long)train.size(), (long long)val.size(),
              a.optimizer.c_str(), a.lr, (long long)a.rounds, (long long)a.steps_per_round, (long long)a.batch_size);
  std::printf("%-18s %10s %9s %11s %11s %10s %9s\n", "", "logit diff", "accuracy", "answer loss", "perplexity",
              "updated", "s / step");
  std::printf("%-18s %10.4f %9.3f %11.4f %11.4f %10s %9s\n", "before", before.logit_diff, before.accuracy, before.loss,
              ppl_before, "", "");
  for (const Outcome& o2 : runs) {
    const double frac = static_cast<double>(o2.r.params_updated) / o2.r.params_total;
    const double sps = o2.r.seconds / std::max<int64_t>(1, o2.r.steps_done);
    std::printf("%-18s %10.4f %9.3f %11.4f %11.4f %9.3f%% %9.3f\n", o2.name.c_str(), o2.after.logit_diff,
                o2.after.accuracy, o2.after.loss, o2.ppl_after, 100 * frac, sps);
    nlohmann::json rounds = nlohmann::json::array();
    for (const TuneRound& r : o2.r.rounds) {
      nlohmann::json nodes = nlohmann::json::array(), parts = nlohmann::json::array();
      for (const TuneNode& n : r.nodes) nodes.push_back({{"node", tune_node_name(n, a.mlp_heads)}, {"score", n.score}});
      for (const ParamPart& p : r.parts) parts.push_back(part_name(p));
      rounds.push_back({{"round", r.round}, {"nodes", nodes}, {"parts", parts}, {"params", r.params},
                        {"discovery_seconds", r.discovery_seconds}});
    }
    rep[o2.name == "circuit-tuning" ? "circuit_tuning" : "full_fine_tuning"] = {
        {"logit_diff", o2.after.logit_diff}, {"accuracy", o2.after.accuracy}, {"answer_loss", o2.after.loss},
        {"perplexity", std::isnan(o2.ppl_after) ? nlohmann::json() : nlohmann::json(o2.ppl_after)},
        {"params_updated", o2.r.params_updated}, {"params_total", o2.r.params_total}, {"fraction_updated", frac},
        {"steps", o2.r.steps_done}, {"seconds", o2.r.seconds}, {"seconds_per_step", sps}, {"rounds", rounds}};
  }
  std::printf("\n(updated: parameters inside the circuit of at least one round; perplexity on %s)\n",
              general_path.empty() ? "-" : general_path.c_str());

  const std::string report = rep.dump(1) + "\n";
  const Outcome& main_run = runs.front();
  // In a pipeline every stage sends its layers to be written whole (gathered()).
  save_hf_model(model.with_weights(main_run.r.weights).gathered(), files.staged(a.out), {{"tuning_report.json", report}});
  std::fprintf(stderr, "wrote %s (Hugging Face directory)\n", a.out.c_str());
  if (a.baseline && !a.baseline_out.empty()) {
    save_hf_model(model.with_weights(runs[1].r.weights).gathered(), files.staged(a.baseline_out),
                  {{"tuning_report.json", report}});
    std::fprintf(stderr, "wrote %s (full fine-tuning)\n", a.baseline_out.c_str());
  }
  if (!a.report.empty()) write_file_atomic(files.staged(a.report), report);
  if (!a.log.empty()) write_file_atomic(files.staged(a.log), log_csv(main_run.r));
  if (a.baseline && !a.log.empty()) write_file_atomic(files.staged(a.log + ".full.csv"), log_csv(runs[1].r));
  files.commit();
}

}  // namespace

void register_tune_command(CLI::App& app) {
  static TuneArgs a;
  auto* cmd = app.add_subcommand("tune", "Circuit-tuning: fine-tune only the parameters inside the task's circuit");
  cmd->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  add_model_args(cmd, a.m);
  cmd->add_option("--task,-t", a.task, "Built-in task (sva, ioi, greater-than, ...) or a dataset file (JSONL / CSV)")
      ->capture_default_str();
  cmd->add_option("-n,--examples", a.n, "Examples (generated, or the first N of a file)")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Seed of the task generator, the batches and the discovery samples")->capture_default_str();
  add_skip_bad_lines(cmd, a.skip_bad);
  cmd->add_option("--validation-fraction", a.validation_fraction,
                  "Examples held out for the report when the data has no split field")->capture_default_str();
  cmd->add_option("-o,--out", a.out, "Directory for the tuned model (Hugging Face layout, replaced if it exists)")
      ->capture_default_str();
  cmd->add_option("--report", a.report, "Also write the report (JSON) here (it is always saved in the model directory)");
  cmd->add_option("--log", a.log, "Training log CSV (round, step, loss, lr, parameters trained, seconds)");
  auto* d = cmd->add_option_group("Discovery (EAP on the current weights, every round)");
  d->add_option("--nodes", a.nodes, "Top-n nodes (heads, MLPs or MLP heads) by |EAP node score|")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  d->add_option("--edges", a.edges, "Top-n edges by |EAP edge score| instead of nodes")->check(CLI::PositiveNumber);
  d->add_option("--mlp-heads", a.mlp_heads, "Split each MLP into this many neuron groups ('MLP heads'; 1 = whole MLP)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  auto* ablation_opt = d->add_option("--ablation,-a", a.ablation, "What replaces an ablated node's output (a Tracr task's default: zero)")
      ->check(CLI::IsMember(enum_choices(kAblationNames)))->capture_default_str();
  d->add_option("--metric,-m", a.metric, "Metric EAP attributes")
      ->check(CLI::IsMember({"logit-diff", "prob-diff"}))->capture_default_str();
  d->add_option("--discovery-examples", a.discovery_examples, "Training examples EAP scores each round")
      ->check(CLI::PositiveNumber)->capture_default_str();
  auto* t = cmd->add_option_group("Training");
  t->add_flag("--train-embeddings", a.train_embeddings, "Also train the embeddings (and an untied output matrix)");
  t->add_flag("--train-norms", a.train_norms, "Also train every norm");
  t->add_flag("--full", a.full, "Full fine-tuning instead: every parameter, no discovery");
  t->add_flag("--baseline", a.baseline, "Also run full fine-tuning with the same steps and report both");
  t->add_option("--baseline-out", a.baseline_out, "Save the full fine-tuning model here too (with --baseline)");
  t->add_option("--optimizer", a.optimizer, "sgd or adamw")->check(CLI::IsMember({"sgd", "adamw"}))->capture_default_str();
  t->add_option("--lr", a.lr, "Learning rate")->capture_default_str();
  t->add_option("--momentum", a.momentum, "SGD momentum")->capture_default_str();
  t->add_option("--weight-decay", a.weight_decay, "Weight decay (SGD: L2 in the gradient; AdamW: decoupled)")
      ->capture_default_str();
  t->add_option("--rounds", a.rounds, "Rounds of discover-then-train")->check(CLI::PositiveNumber)->capture_default_str();
  t->add_option("--steps-per-round", a.steps_per_round, "Optimiser steps per round (1: rediscover every step)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  t->add_option("--batch-size", a.batch_size, "Examples per step")->check(CLI::PositiveNumber)->capture_default_str();
  t->add_option("--warmup-steps", a.warmup_steps, "Linear learning-rate warm-up steps")->check(CLI::NonNegativeNumber)->capture_default_str();
  t->add_option("--max-grad-norm", a.max_grad_norm, "Clip the gradient norm (0: off)")->capture_default_str();
  auto* r = cmd->add_option_group("Report and long runs");
  r->add_option("--general-text", a.general_text,
                std::string("Plain text for perplexity before / after (default: ") + kDefaultGeneralText + " when present)")
      ->check(CLI::ExistingFile);
  r->add_option("--ppl-context", a.ppl_context, "Tokens per perplexity window")->check(CLI::Range(2, 1 << 20))
      ->capture_default_str();
  r->add_option("--checkpoint", a.checkpoint, "Checkpoint file (safetensors; --baseline adds .full)");
  r->add_option("--checkpoint-every", a.checkpoint_every, "Seconds between checkpoints")->capture_default_str();
  r->add_flag("--resume", a.resume, "Continue from --checkpoint when it exists");
  cmd->footer(
      "Each round scores heads and MLPs with EAP on the current weights, keeps the top --nodes (or\n"
      "--edges), and trains only their parameters (a head: its q/k/v rows and o-projection columns;\n"
      "an MLP or MLP head: its neurons' input rows and output columns) on the answer tokens'\n"
      "cross-entropy. Everything else stays bit-identical. Example, with full fine-tuning beside it:\n"
      "  edgewise tune --task sva -n 400 --nodes 30 --rounds 5 --steps-per-round 20 --baseline -o sva-tuned\n"
      "The output directory loads in transformers (AutoModelForCausalLM.from_pretrained) and edgewise.");
  cmd->callback([ablation_opt] {
    apply_task_defaults(a.task, ablation_opt->count() > 0, &a.ablation, true, nullptr);
    run_tune(a);
  });
}

}  // namespace edgewise::cli
