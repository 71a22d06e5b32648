// Edge Pruning (Bhaskar et al. 2024, princeton-nlp/Edge-Pruning): learn the circuit as a
// hard-concrete (L0) mask per edge, with the model frozen.
//
// Each step samples one mask z per edge (hard_concrete.h; shared by the batch), runs the patched
// forward with it (an edge at z mixes the source's output with its ablated value: z o + (1 - z) õ
// in the reader's input) and minimises
//
//   KL(P_full || P_circuit) at the prediction positions (batch mean)
//   + lambda1 (s - t) + lambda2 (s - t)^2                     s = 1 - sum(z) / n_edges
//   [+ the same term over node masks with their own target, when node masks are on]
//
// over the log-alphas, while the lambdas are trained by gradient ascent on the same loss (the
// Lagrangian relaxation of "sparsity = t"). The target t rises linearly from 0 over
// `target_warmup_steps`; targets above 1 keep pushing towards the emptiest circuit, as in the
// reference. AdamW for both (our own implementation: the lambdas' ascent and an exactly
// reproducible state for checkpoints), linear warm-up then linear decay of the learning rate,
// gradient norm clipped over all parameters, as the reference's HF Trainer does.
//
// Node masks (optional) are writer masks: a source's output is z_n o + (1 - z_n) õ for every
// reader, which is the edge mask z_e z_n. The q/k/v inputs of a head are readers of the graph,
// never edges, so nothing inside a head is ever pruned. The `input` source's edges are
// prunable unless keep_embedding_edges (then their masks are 1 and they are not counted).
//
// The data: the clean logits and the ablated source values of every training example are
// computed once, before the first step (or once per batch when they exceed cache_mb), never
// again per step. Batches are drawn from a seeded permutation per epoch; the noise of step k is
// drawn from a generator seeded by (seed, k), so a resumed run redraws exactly what an
// uninterrupted one would.
//
// The circuit: the reference's deterministic mask (hard_concrete::deterministic); the trained
// sparsity 1 - mean(mask) fixes the edge count, and the circuit is exactly that many largest
// entries (the reference binary-searches a threshold to approach the same count).
//
// Not here: the command line (tools/edgewise), validation metrics beyond the function below.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "edgewise/graph.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/optim.h"
#include "edgewise/run.h"
#include "edgewise/tasks.h"

namespace edgewise {

struct EdgePruningOptions {
  double edge_target = 0.98;          ///< final edge sparsity t (fraction of edges removed; > 1 allowed)
  bool node_masks = false;            ///< learn a mask per source node too
  double node_target = 0.72;          ///< its final sparsity (the reference's sweep value)
  bool node_loss = true;              ///< include the node Lagrangian (the reference's sweep turns it off)
  bool keep_embedding_edges = false;  ///< the input's out-edges stay (mask 1, not counted)
  double init_mean = 10.0, init_std = 0.01;  ///< log-alpha ~ N(mean, std) (the reference's init)
  int64_t steps = 3000;
  int64_t batch_size = 32;
  int64_t warmup_steps = 200;          ///< learning-rate warm-up (linear from 0), then linear decay to 0
  int64_t target_warmup_steps = 2500;  ///< t rises linearly from 0 to its final value over these steps
  double lr = 0.8;                     ///< log-alphas (edges and nodes)
  double lambda_lr = 0.8;              ///< lambdas
  double weight_decay = 0.01;          ///< AdamW's, on every parameter (as the reference)
  double max_grad_norm = 1.0;          ///< clip the global gradient norm (0: off)
  uint64_t seed = 42;
  Ablation ablation = Ablation::Resample;
  /// The faithfulness term: KL from the full model's outputs (the reference's), or MSE (for
  /// numerical outputs, where a softmax over one output has no KL: Tracr's xproportion). Other
  /// metrics are refused.
  Metric loss = Metric::KL;
  int64_t cache_mb = 4096;  ///< keep every example's ablated values when they fit in this much
  /// [n_src, n_dst] bool: the only edges that may stay (a prefilter's survivors, HAP); the other
  /// prunable edges are ablated throughout and count as removed in the sparsity, and the
  /// target's warm-up starts from that share instead of 0. Undefined: every edge is a candidate
  /// (plain Edge Pruning).
  at::Tensor candidates;
  /// Checkpoint (safetensors, atomic, at step boundaries, and at the end), resume, stop (polled
  /// after each step) and progress (run.h): stage "steps", figures "loss", "kl",
  /// "edge sparsity", "target", "lambda1", "lambda2", with every log row.
  RunControl run;
  int64_t log_every = 10;      ///< a log row every this many steps (and the last)
};

/// One row of the training log.
struct EdgePruningLog {
  int64_t step = 0;  ///< steps done
  double loss = 0, kl = 0, edge_sparsity = 0, node_sparsity = 0, target = 0, node_target = 0;
  double lambda1 = 0, lambda2 = 0, lr = 0, seconds = 0;
};

struct EdgePruningResult {
  at::Tensor log_alpha;       ///< [n_src, n_dst] float32 (0 off the edges)
  at::Tensor node_log_alpha;  ///< [n_src] (undefined without node masks)
  at::Tensor mask;            ///< [n_src, n_dst] the deterministic mask (float, 0 off the edges)
  at::Tensor kept;            ///< [n_src, n_dst] bool: the discrete circuit (edge and its source node kept)
  double trained_sparsity = 0;  ///< 1 - mean deterministic edge mask over the prunable edges
  int64_t edges_kept = 0;       ///< edges in `kept`
  std::vector<EdgePruningLog> log;
  int64_t steps_done = 0;
  bool complete = false;
  double seconds = 0;  ///< training wall time, summed over resumed runs
};

/// Trains the masks on `train` (every example) and discretises. Fails with a clear message for
/// bad options, an empty dataset, or a checkpoint of another run. opt.run.progress with each
/// logged step.
EdgePruningResult edge_pruning(const Model& model, const Graph& graph, const Batch& train, const EdgePruningOptions& opt);

/// One step's objective, exposed for tests: the masks sampled from log-alphas with noise `u`
/// (same shape; node_u for nodes), the patched forward of `b` with ablated values `ablated`
/// and the clean logits `clean_last` [B, V] at b.clean_pos. Computes in the log-alphas' dtype
/// (double for checks). `edge_valid` [n_src, n_dst] bool: the edges whose masks are learned;
/// `edge_counted`: the edges the sparsity is measured over (undefined: edge_valid); counted
/// edges outside edge_valid are ablated (mask 0), real edges outside both stay (mask 1).
/// `kl` is the faithfulness term: the KL, or the MSE when `faithfulness` is Metric::MSE.
struct EdgePruningObjective {
  at::Tensor loss, kl, edge_sparsity, node_sparsity;
  at::Tensor penalty;  ///< the Lagrangian sparsity terms: loss = kl + penalty
};
EdgePruningObjective edge_pruning_objective(const Model& model, const Graph& graph, const Batch& b,
                                            const at::Tensor& ablated, const at::Tensor& clean_last,
                                            const at::Tensor& edge_valid, const at::Tensor& log_alpha,
                                            const at::Tensor& u, const at::Tensor& node_log_alpha,
                                            const at::Tensor& node_u, const at::Tensor& lambdas, double target,
                                            double node_target, bool keep_embedding_edges,
                                            const at::Tensor& edge_counted = {}, Metric faithfulness = Metric::KL);

// The optimiser (AdamW, seeded epoch order) is the shared module, include/edgewise/optim.h.

/// The prunable edges: every real edge, less the input's unless keep_embedding_edges.
at::Tensor edge_pruning_valid(const Graph& graph, bool keep_embedding_edges);

}  // namespace edgewise
