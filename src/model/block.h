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

/// One block's weights (undefined where the architecture has none). qn / kn: the per-head q / k
/// norms (BlockShape::qk_norm); pan / pfn: the post-attention and post-MLP norms (post_norms).
struct LayerWeights {
  at::Tensor an_w, an_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
  at::Tensor fn_w, fn_b, gate_w, gate_b, up_w, up_b, down_w, down_b;
  at::Tensor qn_w, kn_w, pan_w, pfn_w;
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

/// Which keys a layer's queries see and how its logits are scaled.
struct AttnSpec {
  bool causal = true;   ///< false: every query sees every key (Tracr's non-causal models)
  int64_t window = 0;   ///< > 0: query i sees keys i - window < j <= i (a sliding-window layer)
  double scale = 0;     ///< logits scale; 0: 1/sqrt(Dh)
};
AttnSpec attn_spec(const ModelConfig& c, int64_t layer);

/// Attention through scaled_dot_product_attention: q [N, H, T, Dh], k and v [N, H or G, T, Dh]
/// (after rotary) -> z [N, H, T, Dh]; causal, windowed and scaled as `a` says.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttnSpec& a);
/// Attention of one query per row: q [N, m, 1, Dh] at position pos[b] (pos [B], N = K * B, rows
/// ordered circuit-major), k and v [N, m, T, Dh]: the query sees keys 0 .. pos[b] (within the
/// window; not causal: every key) -> [N, m, 1, Dh].
at::Tensor attention_at(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& pos,
                        const AttnSpec& a);
/// The keys [T] query position i may see under `a` as a [T, T] boolean mask (true: attend).
at::Tensor attention_mask(const AttnSpec& a, int64_t T, const c10::Device& d);

/// The per-head q and k norms (BlockShape::qk_norm; no-op without): q [.., H, .., Dh] etc. are
/// normalised over their last dim. Call after the projection, before the rotary embedding.
at::Tensor head_norm(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w);

/// Token embeddings of tokens [..] in dtype dt, scaled by BlockShape::embed_scale (Gemma), plus
/// the learned positions for T = tokens.size(-1) (GPT-2).
at::Tensor embed_tokens(const ModelConfig& c, const std::map<std::string, at::Tensor>& w, const at::Tensor& tokens,
                        at::ScalarType dt);

/// A sublayer's output through its post-norm (BlockShape::post_norms; `w` undefined: unchanged).
at::Tensor post_norm(const ModelConfig& c, const at::Tensor& out, const at::Tensor& w);
/// Post-norms: the attention's per-head outputs `heads` [H, .., D] as their shares of the normed
/// attention output: heads * rsqrt(mean(total^2) + eps) * w, with `total` [.., D] the sum of
/// every head of the layer (the rows broadcast against heads' trailing dims). Summed over the
/// layer's heads they give post_norm(total). Without post-norms: heads unchanged.
at::Tensor post_norm_shares(const ModelConfig& c, const at::Tensor& heads, const at::Tensor& total,
                            const at::Tensor& w);

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
