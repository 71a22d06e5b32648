// `edgewise discover` and `edgewise prune`: what the command line takes beyond the library's
// option structs, which its options fill directly (DiscoverCli::opt, so the library's defaults
// are the command line's), and the writers (cmd_discover.cpp: every edge method through
// discover() / discover_sweep(); cmd_path_patching.cpp: the head-set methods).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "commands.h"
#include "edgewise/discover.h"
#include "edgewise/model.h"
#include "edgewise/tasks.h"

namespace edgewise::cli {

struct DiscoverCli {
  ModelArgs m;
  std::string task = "ioi", method = "eap-ig-inputs";
  int64_t n = 100;
  uint64_t seed = 0;  ///< the task generator's, and Edge Pruning's / HAP's
  bool head_level = false;
  bool skip_bad = false;  ///< --skip-bad-lines
  // Shared by the methods that take them; copied into each method's struct. Not given: each
  // method's library default (acdc's metric is KL, the others' the logit difference; batch
  // sizes and steps differ by method).
  Ablation ablation = Ablation::Resample;
  Metric metric = Metric::LogitDiff;
  int64_t steps = 0, batch_size = 0;
  bool metric_given = false, steps_given = false, batch_given = false;
  // Outputs.
  std::string out = "circuit.json", svg, curve;
  std::string table;  ///< --trajectory (acdc) / --train-log (edge-pruning, hap); default beside -o
  // An attribution method's circuit.
  int64_t edges = -1, nodes = -1;
  bool greedy = false, signed_scores = false;
  std::string candidates;  ///< exact: a circuit file whose edges alone are scored
  // Sweeps and training.
  std::vector<double> taus = {AcdcOptions{}.tau}, targets = {EdgePruningOptions{}.edge_target};
  double validation_fraction = 0.2;
  // Run control (acdc, edge-pruning, hap, path-patching, app).
  std::string checkpoint;
  double checkpoint_every = RunControl{}.checkpoint_seconds;
  bool resume = false;
  // Head-set methods.
  std::string pp_circuit;
  bool calc_flops = false;
  DiscoverOptions opt;  ///< every method's own options, as its option group sets them
};

/// The library options of `a`'s method with the shared options applied: ablation, metric,
/// steps, batch size, seed and run control (checkpoint, interval, resume, fingerprint of model
/// and data, progress lines on stderr).
DiscoverOptions method_options(const DiscoverCli& a, const Model& model, const Dataset& ds);
/// `discover --method path-patching | flap | app` and `edgewise prune` (cmd_path_patching.cpp).
void run_head_set(const DiscoverCli& a);
/// The path-patching / FLAP / APP options of `discover` and `prune` (cmd_path_patching.cpp).
void add_path_patching_options(CLI::App* cmd, DiscoverCli& a, bool flap_only);
/// Binds an enum option to its {value, name} table (names.h): the choices, the check, the help.
template <class E, size_t N>
CLI::Option* add_enum_option(CLI::App* cmd, const std::string& name, E& value, const EnumName<E> (&t)[N],
                             const std::string& help) {
  std::vector<std::pair<std::string, E>> map;
  for (const auto& e : t) map.emplace_back(e.name, e.value);
  return cmd->add_option(name, value, help + " (" + enum_choices_text(t) + "; default " + enum_name(t, value) + ")")
      ->transform(CLI::CheckedTransformer(map, CLI::ignore_case).description(""))
      ->option_text("ENUM");
}

}  // namespace edgewise::cli
