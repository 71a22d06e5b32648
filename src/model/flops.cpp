// Analytic FLOP counts (include/edgewise/flops.h): one multiply-add = one FLOP, matmuls only.
#include "edgewise/flops.h"

#include "edgewise/model.h"

namespace edgewise {

int64_t layer_flops(const ModelConfig& c, int64_t rows, int64_t tokens) {
  const int64_t n = rows * tokens;
  const int64_t qkv = n * c.d_model * (c.n_heads + 2 * c.n_kv_heads) * c.d_head;
  const int64_t out = n * c.n_heads * c.d_head * c.d_model;
  const int64_t attn = 2 * rows * c.n_heads * tokens * tokens * c.d_head;  // scores and pattern x values
  const int64_t mlp = n * c.d_model * c.d_mlp * (c.gated_mlp ? 3 : 2);
  return qkv + out + attn + mlp;
}

int64_t unembed_flops(const ModelConfig& c, int64_t rows, int64_t positions) {
  return rows * positions * c.d_model * c.vocab_size;
}

int64_t forward_flops(const ModelConfig& c, int64_t rows, int64_t tokens, int64_t from_layer, int64_t positions) {
  return (c.n_layers - from_layer) * layer_flops(c, rows, tokens) + unembed_flops(c, rows, positions);
}

}  // namespace edgewise
