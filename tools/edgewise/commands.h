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
/// A built-in task by name (n examples, seeded) or the first n examples of a dataset file.
Dataset load_task(const std::string& task, const Tokenizer& tok, int64_t n, uint64_t seed);
/// Train / validation examples: a dataset file's `split` fields when any example has one,
/// otherwise the last round(fraction N) examples (at least min_validation, at most N - 1; built-in
/// tasks are seeded i.i.d. draws, so this is a seeded split). Fails when no training example is left.
struct TrainValidation {
  Dataset train, validation;
  bool from_file = false;  ///< the file's split fields were used
};
TrainValidation split_train_validation(const Dataset& ds, double fraction, int64_t min_validation);
/// load_task tokenized for `model`; clean and corrupted prompts must align (equal token counts)
/// when the ablation patches position by position (resample, mean-positional).
Batch task_batch(const Model& model, const std::string& task, int64_t n, uint64_t seed, Ablation ablation,
                 Dataset* dataset = nullptr);
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
