// The sub-commands of the `edgewise` command line. Each registers its options on a CLI11
// sub-command and runs by calling the library; no computation lives here.
#pragma once
#include <CLI/CLI.hpp>

namespace edgewise::cli {

/// Options every sub-command that loads a model shares.
struct ModelArgs {
  std::string model;         ///< positional MODEL; "" = the default model
  std::string dtype = "f32";
  int threads = 0;           ///< 0 = libtorch's default (all cores)
};

void add_model_args(CLI::App* cmd, ModelArgs& a);

void register_model_commands(CLI::App& app);    // info, run, generate, tokenize
void register_circuit_commands(CLI::App& app);  // draw
void register_evaluate_command(CLI::App& app);  // evaluate

}  // namespace edgewise::cli
