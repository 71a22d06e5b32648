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
/// The task's batch for `model` (tasks.h's task_batch): clean and corrupted prompts must align
/// when the ablation patches position by position.
inline TaskBatch task_batch(const Model& model, const std::string& task, int64_t n, uint64_t seed, Ablation ablation) {
  return edgewise::task_batch(model.tokenizer(), task, n, seed, ablation_needs_alignment(ablation));
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
