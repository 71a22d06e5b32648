// The sub-commands of the `edgewise` command line. Each registers its options on a CLI11
// sub-command and runs by calling the library; no computation lives here.
#pragma once
#include <CLI/CLI.hpp>

namespace edgewise::cli {

/// Options every sub-command that loads a model shares.
struct ModelArgs {
  std::string model;         ///< positional MODEL; "" = the default model
  std::string dtype = "f32";
  std::string device = "auto";  ///< cpu, cuda, cuda:N, auto (a GPU when libtorch has CUDA)
  int threads = 0;           ///< 0 = libtorch's default (all cores)
};

void add_model_args(CLI::App* cmd, ModelArgs& a);

}  // namespace edgewise::cli
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/tasks.h"
namespace edgewise::cli {
/// --skip-bad-lines on a sub-command that reads a task.
void add_skip_bad_lines(CLI::App* cmd, bool& skip_bad);
/// A built-in task's own ablation and metric (tasks.h's task_defaults) for the options the command
/// line left unset (`*_given` false; a null value pointer: the command has no such option);
/// says on stderr which it applied.
void apply_task_defaults(const std::string& task, bool ablation_given, std::string* ablation, bool metric_given,
                         std::string* metric);
/// The task's examples for `model` (tasks.h's load_task); prints to stderr what was skipped
/// (--skip-bad-lines) and the data's warnings (multi-token answers).
Dataset load_data(const Model& model, const std::string& task, int64_t n, uint64_t seed, bool skip_bad);
/// The task's batch for `model` (load_data, then make_batch): clean and corrupted prompts must
/// align when the ablation patches position by position.
inline TaskBatch task_batch(const Model& model, const std::string& task, int64_t n, uint64_t seed, Ablation ablation,
                            bool skip_bad) {
  TaskBatch t;
  t.dataset = load_data(model, task, n, seed, skip_bad);
  BatchOptions bo;
  bo.require_aligned = ablation_needs_alignment(ablation);
  t.batch = make_batch(t.dataset, model.tokenizer(), bo);
  return t;
}
/// The LoadOptions of --dtype and --device.
LoadOptions load_options(const ModelArgs& a, bool tokenizer = true);
/// Applies --threads and loads the model with --dtype and --device.
Model load_model(const ModelArgs& a);

void register_model_commands(CLI::App& app);    // info, run, generate, tokenize
void register_circuit_commands(CLI::App& app);  // draw
void register_evaluate_command(CLI::App& app);  // evaluate
void register_discover_command(CLI::App& app);  // discover
void register_tune_command(CLI::App& app);      // tune
void register_prune_command(CLI::App& app);     // prune (FLAP)

}  // namespace edgewise::cli
