// Circuit-tuning (Wang et al. 2025, "Circuit-tuning: A Mechanistic Approach for Identifying
// Redundant Parameters and Fine-tuning Neural Networks"; Siriuslala/circuit-tuning): alternate
// (1) discovering the circuit of a task with EAP on the current weights and (2) training only
// the parameters inside it, everything else frozen. docs/CIRCUIT_TUNING.md has the details and
// how this differs from the reference (docs/notes/circuit-tuning-reference.md).
//
// A circuit is a set of parameter parts:
//   Q(l, h)  head h's rows of W_q (and of b_q)          K(l, g), V(l, g)  key/value head g's rows
//   O(l, h)  head h's columns of W_o (b_o when any O of layer l is in)
//   MlpIn(l, j), MlpOut(l, j)  neuron group j's rows of W_gate / W_up (W_fc for GPT-2, with
//            their biases) and columns of W_down (b_down when any MlpOut of layer l is in);
//            group j of G = mlp_heads groups is neurons [j F / G, (j + 1) F / G).
// From nodes (default): the top-n nodes by |EAP node score| among heads and MLPs (or MLP
// heads); a head brings Q, K and V of its key/value head, and O; an MLP (head) brings MlpIn and
// MlpOut. From edges: the top-n edges by |EAP edge score|; an edge brings its source's output
// part (O, or MlpOut of every group) and its reader's input part (Q, K or V; MlpIn). Embeddings
// (and an untied output matrix) and norms stay frozen unless asked.
//
// Training: cross-entropy of the first correct answer token at each example's prediction
// position; SGD (momentum, weight decay: torch.optim.SGD's rule) or AdamW (torch.optim.AdamW's
// rule). Updates are masked element by element: an entry outside the round's circuit keeps its
// value bit for bit and its optimiser state is left as it was (as torch skips a parameter
// without a gradient), so weight decay and momentum never move frozen entries.
//
// Not here: the command line and its report (tools/edgewise/cmd_tune.cpp), saving
// (model.h: save_hf_model).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/run.h"
#include "edgewise/tasks.h"

namespace edgewise {

/// One part of a circuit's parameters (see the header comment).
struct ParamPart {
  enum Kind { Q, K, V, O, MlpIn, MlpOut } kind = Q;
  int64_t layer = 0;
  int64_t index = 0;  ///< head (Q, O), key/value head (K, V) or neuron group (MlpIn, MlpOut)
  auto operator<=>(const ParamPart&) const = default;
};
/// "a3.h2.q", "a3.kv1.k", "m5.g7.in" ...
std::string part_name(const ParamPart& p);

/// A node of circuit-tuning's selection: a head or an MLP (head).
struct TuneNode {
  bool mlp = false;
  int64_t layer = 0;
  int64_t index = 0;  ///< head, or neuron group (0 when the MLP is whole)
  double score = 0;
};
/// "a3.h2", "m5" (whole MLP) or "m5.g7".
std::string tune_node_name(const TuneNode& n, int64_t mlp_heads);

struct TuneOptions {
  // --- discovery (EAP) ---
  int64_t nodes = 30;        ///< top-n nodes; used when edges <= 0
  int64_t edges = -1;        ///< top-n edges instead of nodes (> 0)
  int64_t mlp_heads = 1;     ///< neuron groups per MLP (1: the MLP is one node)
  Ablation ablation = Ablation::Mean;
  Metric metric = Metric::LogitDiff;
  int64_t discovery_examples = 32;  ///< training examples EAP scores each round (drawn at random)
  bool train_embeddings = false;    ///< token (and position) embeddings and an untied output, always in
  bool train_norms = false;         ///< every norm's weight and bias, always in
  bool full = false;                ///< full fine-tuning: every parameter, no discovery (the baseline)
  std::vector<ParamPart> parts;     ///< a fixed circuit: these parts every round, no discovery
  // --- training ---
  std::string optimizer = "sgd";  ///< "sgd" or "adamw"
  double lr = 1e-3;
  double momentum = 0.9;          ///< SGD
  double weight_decay = 1e-4;
  int64_t rounds = 5;
  int64_t steps_per_round = 20;   ///< 1 recomputes the circuit every step, as the reference
  int64_t batch_size = 16;
  int64_t warmup_steps = 0;       ///< linear warm-up of the learning rate from 0, then constant
  double max_grad_norm = 0;       ///< clip the norm of the masked gradient (0: off)
  uint64_t seed = 0;
  // --- long runs ---
  /// Checkpoint (safetensors, atomic, between steps), resume, stop (polled after each step) and
  /// progress (run.h): stage "steps", figures "round", "loss", "lr", "parameters trained".
  RunControl run;
};

struct TuneLog {
  int64_t round = 0, step = 0;  ///< step: optimiser steps done in all
  double loss = 0, lr = 0, seconds = 0;
  int64_t params_trained = 0;   ///< entries inside this round's circuit
};

struct TuneRound {
  int64_t round = 0;
  std::vector<TuneNode> nodes;      ///< the round's nodes (node selection), best first
  std::vector<ParamPart> parts;     ///< the round's parameter parts
  int64_t params = 0;               ///< entries inside the circuit
  double discovery_seconds = 0;
};

struct TuneResult {
  std::map<std::string, at::Tensor> weights;  ///< the tuned canonical weights (no grad); Model::with_weights
  std::vector<TuneRound> rounds;
  std::vector<TuneLog> log;
  int64_t params_total = 0;    ///< the model's parameters
  int64_t params_updated = 0;  ///< entries inside the circuit of at least one round
  int64_t steps_done = 0;
  bool complete = false;
  double seconds = 0;
};

/// Circuit-tuning (or, with opt.full, full fine-tuning) of `model` on `train`. Fails clearly for
/// bad options, an empty dataset or a checkpoint of another run. opt.run.progress after every step.
TuneResult circuit_tune(const Model& model, const Batch& train, const TuneOptions& opt);

/// EAP node scores on `data`: one per head [L, H] and per MLP neuron group [L, mlp_heads], the
/// estimated change of the metric's batch mean when the node's output is ablated
/// ((ablated - clean) output . dM/d output, summed over tokens). For heads and whole MLPs these
/// equal attribute("eap", node_level) (tests check it).
struct NodeScores {
  at::Tensor heads, mlps;  ///< float64
};
NodeScores tune_node_scores(const Model& model, const Batch& data, Ablation ablation, Metric metric,
                            int64_t mlp_heads, int64_t batch_size = 16);

/// The parameter parts of nodes (head: Q, K, V of its key/value head, O; MLP group: MlpIn, MlpOut).
std::vector<ParamPart> parts_of_nodes(const ModelConfig& c, const std::vector<TuneNode>& nodes);

/// 0/1 masks (canonical name -> tensor shaped like the weight, the weight's dtype) of the
/// parts, plus whole tensors for embeddings / norms when asked. Weights without any trainable
/// entry are absent.
std::map<std::string, at::Tensor> parameter_masks(const Model& model, const std::vector<ParamPart>& parts,
                                                  int64_t mlp_heads, bool embeddings, bool norms);

}  // namespace edgewise
