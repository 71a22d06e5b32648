// `edgewise discover`'s arguments and the pieces its methods share (cmd_discover.cpp: the
// attribution methods; cmd_acdc.cpp: ACDC).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "commands.h"
#include "edgewise/circuit.h"
#include "edgewise/discover.h"
#include "edgewise/evaluate.h"
#include "edgewise/plot.h"
#include "edgewise/graph.h"
#include "edgewise/model.h"
#include "edgewise/tasks.h"

namespace edgewise::cli {

struct DiscoverArgs {
  ModelArgs m;
  std::string task = "ioi", method = "eap-ig-inputs", ablation = "resample", metric = "logit-diff";
  std::string out = "circuit.json", svg, curve, candidates;
  int64_t n = 100, batch_size = 16, edges = -1, nodes = -1, steps = 5;
  uint64_t seed = 0;
  bool greedy = false, signed_scores = false, head_level = false;
  // ACDC
  std::vector<double> taus = {0.01};
  std::string acdc_mode = "classic", trajectory, checkpoint;
  double rollback_tau = -1, checkpoint_every = 60;
  int64_t max_candidates = 32;
  bool absolute = false, resume = false, metric_given = false;
  // Edge Pruning
  std::vector<double> targets = {0.98};
  bool node_masks = false, no_node_loss = false, keep_embedding_edges = false;
  double node_target = 0.72, init_log_alpha = 10.0, init_std = 0.01, lr = 0.8, lambda_lr = 0.8;
  double weight_decay = 0.01, max_grad_norm = 1.0, validation_fraction = 0.2;
  int64_t warmup_steps = 200, target_warmup_steps = 2500, cache_mb = 4096;
  std::string train_log;
  bool steps_given = false, batch_given = false;
  HapOptions hap;  ///< --method hap: the prefilter and the fraction it keeps (library defaults)
  // Path patching, FLAP, APP
  double importance_threshold = 2.0, min_value_threshold = 0.02;
  std::string threshold_mode = "linear", paths = "direct", pp_circuit;
  int64_t save_every = 5, max_masks = 64;
  bool calc_flops = false, flap_mlp = false;
  std::string flap_kind = "vanilla", pruning = "contrastive", flap_metric, cliff = "first", eval_ablation = "mean";
  double lowest = 0.60, highest = 0.98, step = 0.01, sparsity = 0.75;
};

/// The path without its extension ("dir/a.json" -> "dir/a"; dots in directory names are not one).
std::string path_stem(const std::string& path);
/// `discover --method acdc` (cmd_acdc.cpp).
void run_acdc(const DiscoverArgs& a);
/// `discover --method edge-pruning` (cmd_edge_pruning.cpp).
void run_edge_pruning(const DiscoverArgs& a);
/// `discover --method path-patching | flap | app` and `edgewise prune` (cmd_path_patching.cpp).
void run_path_patching(const DiscoverArgs& a);
void run_flap(const DiscoverArgs& a);
void run_app(const DiscoverArgs& a);
/// The path-patching / FLAP / APP options of `discover` and `prune` (cmd_path_patching.cpp).
void add_path_patching_options(CLI::App* cmd, DiscoverArgs& a, bool flap_only);
/// "dir/a.json" + ".t0.9" -> "dir/a.t0.9.json" (one output per sweep value).
std::string with_suffix(const std::string& path, const std::string& suffix);
/// %g of v.
std::string fmt_g(double v);
/// What identifies a discovery run in its checkpoint: model, data, seed, graph kind.
std::string run_fingerprint(const Model& model, const Dataset& ds, const DiscoverArgs& a);
/// A sweep's table (`csv`) at --curve or <stem>.sweep.csv, and its curve of (edge fraction,
/// faithfulness) points as the SVG beside it; prints where they went.
void write_sweep(const DiscoverArgs& a, const std::string& csv, std::vector<std::pair<double, double>> curve,
                 const std::string& title);

}  // namespace edgewise::cli
