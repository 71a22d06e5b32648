// Private to edgewise: the transformer block's primitives, the one place where its arithmetic
// is written. Three engines run a block — the plain forward (src/model/forward.cpp), the patched
// forward (src/graph/patch.cpp, one input per reader) and ACDC's incremental evaluator
// (src/discover/acdc.cpp, one node at a time) — and they differ only in how they batch readers
// and positions; every operation on the numbers (norms, q/k/v projections, rotary, attention,
// the per-head output projection, the MLP) comes from here, as llama.cpp's graphs are built from
// build_norm / build_attn / build_ffn and TransformerLens has one configurable block.
//
// The block's shape is data (ModelConfig::block): whether attention and MLP run in parallel on
// the block's input or in sequence, and how much of each head the rotary embedding turns. The
// circuit graph follows it (graph.h: a parallel block has no same-layer attention -> MLP edges).
//
// Dimension letters: N rows of a batch (circuits x prompts), T tokens, D width, H query heads,
// G key/value heads, Dh head width, F MLP width, m readers (heads) handled together.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>

#include "edgewise/model.h"

namespace edgewise::model_detail {

/// The block's norm as transformers computes it: RMSNorm normalises in fp32 (in double when x is
/// double), casts back, then applies the weight; LayerNorm otherwise.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps);
at::Tensor norm(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

/// The leading dims of each head the rotary embedding turns: d_head unless the block says fewer
/// (GPT-NeoX's rotary_pct); the rotary tables are this wide.
int64_t rotary_dims(const ModelConfig& c);
/// HF apply_rotary_pos_emb (rotate_half) on x [..., Dh], cos/sin [..., Dr] broadcastable to x:
/// the first Dr dims turn, the rest pass through (partial rotary when Dr < Dh).
at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

/// One block's weights (undefined where the architecture has none).
struct LayerWeights {
  at::Tensor an_w, an_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
  at::Tensor fn_w, fn_b, gate_w, gate_b, up_w, up_b, down_w, down_b;
};
LayerWeights layer_weights(const std::map<std::string, at::Tensor>& w, int64_t l);
/// The same weights in dtype dt (no copy where they already are).
LayerWeights layer_weights_as(const LayerWeights& w, at::ScalarType dt);

/// The tensors `parts` as one [sum of rows, ...] tensor when they are consecutive rows of one
/// buffer (load.cpp packs q/k/v and gate/up that way); undefined otherwise. All-undefined parts
/// (absent biases) give an undefined tensor too.
at::Tensor fused_rows(std::initializer_list<const at::Tensor*> parts);
/// The q, k and v weights as one [(H + 2G) * Dh, D] matrix (and bias, undefined if none): a
/// view of the packed buffer when there is one, a copy otherwise.
at::Tensor qkv_weight(const LayerWeights& w);
at::Tensor qkv_bias(const LayerWeights& w);
/// q, k, v projections of xn [.., D] as one [.., (H + 2G) * Dh] tensor (one matmul when packed).
at::Tensor qkv_linear(const LayerWeights& w, const at::Tensor& xn);
/// Per-head projections of per-head inputs: xn [m, N, D], w [m, Dh, D], b [m, Dh] (undefined:
/// none) -> [m, N, Dh]. How the patched forward and ACDC project readers with their own inputs.
at::Tensor project_heads(const at::Tensor& xn, const at::Tensor& w, const at::Tensor& b);

/// Causal attention through scaled_dot_product_attention: q [N, H, T, Dh], k and v
/// [N, H or G, T, Dh] (after rotary) -> z [N, H, T, Dh].
/// `causal` false: every query attends to every key (Tracr's non-causal models).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal = true);
/// Attention of one query per row: q [N, m, 1, Dh] at position pos[b] (pos [B], N = K * B, rows
/// ordered circuit-major), k and v [N, m, T, Dh]: the query sees keys 0 .. pos[b] (`causal` false:
/// every key) -> [N, m, 1, Dh].
at::Tensor attention_at(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& pos,
                        bool causal = true);

/// The tensor `name` of `w` (in `dtype` when given), or an undefined tensor when the model has
/// none (the final norm's bias; every norm tensor of a model without norms).
at::Tensor opt_weight(const std::map<std::string, at::Tensor>& w, const std::string& name,
                      std::optional<at::ScalarType> dtype = std::nullopt);

/// The output projection split by head: W_O as [H, Dh, D] (a view).
at::Tensor out_proj_heads(const ModelConfig& c, const LayerWeights& w);
/// Per-head outputs in the residual space (no o bias): zh [m, M, Dh] with wo [m, Dh, D] -> [m, M, D].
at::Tensor head_results(const at::Tensor& zh, const at::Tensor& wo);

/// Called at named points inside a computation (hook name relative to the block); may replace t.
using HookFn = std::function<void(const char* name, at::Tensor& t)>;
/// The MLP's activation before its down projection, [.., F], from its normalised input xn;
/// `hook` (may be null) sees mlp.hook_pre, mlp.hook_pre_linear (gated) and mlp.hook_post.
at::Tensor mlp_hidden(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xn, const HookFn* hook);
/// The MLP's output [.., D] from its normalised input: mlp_hidden then the down projection, with
/// its bias when `bias` (a source's output in the graph has none).
at::Tensor mlp_output(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xn, const HookFn* hook, bool bias);

/// Whether the MLP of a block reads the block's input (parallel attention + MLP: GPT-NeoX's
/// use_parallel_residual, GPT-J) rather than the residual after attention.
inline bool mlp_reads_block_input(const ModelConfig& c) { return c.block.parallel; }

}  // namespace edgewise::model_detail
