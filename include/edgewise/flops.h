// Analytic FLOP counts of the model's forward pass, for path patching's and APP's --calc-flops.
// Convention (APP's, which counts with fvcore): one multiply-add is one FLOP; only matrix
// products count (q/k/v/o projections, attention scores and the weighted sum of values, the MLP's
// projections, the unembedding); norms, activations, softmax, rotary and the patched forward's
// element-wise corrections do not. Attention products are counted over the full T x T square per
// head, as fvcore counts the batched matmul (causality does not reduce it).
// Torch-free.
#pragma once
#include <cstdint>

namespace edgewise {

struct ModelConfig;

/// FLOPs of one decoder layer over `rows` sequences of `tokens` tokens.
int64_t layer_flops(const ModelConfig& c, int64_t rows, int64_t tokens);
/// The unembedding of `positions` positions per sequence (all tokens, or the prediction positions).
int64_t unembed_flops(const ModelConfig& c, int64_t rows, int64_t positions);
/// A pass that recomputes layers [from_layer, n_layers) and unembeds `positions` per sequence:
/// (n_layers - from_layer) x layer_flops + unembed_flops. A plain forward is from_layer = 0,
/// positions = tokens.
int64_t forward_flops(const ModelConfig& c, int64_t rows, int64_t tokens, int64_t from_layer, int64_t positions);

}  // namespace edgewise
