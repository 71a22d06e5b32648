// Private to src/model: the canonical tensor set, the per-architecture name tables, GGUF
// hyper-parameters and the rotary tables. Nothing here is part of the public API.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "edgewise/model.h"

namespace edgewise {

class GgufFile;

namespace model_detail {

/// Canonical tensors, named as in llama.cpp ("blk.{l}.attn_q.weight").
enum class CTensor {
  TokenEmbd, PosEmbd,
  AttnNorm, AttnNormB,
  AttnQ, AttnQB, AttnK, AttnKB, AttnV, AttnVB, AttnO, AttnOB,
  FfnNorm, FfnNormB,
  FfnGate, FfnGateB, FfnUp, FfnUpB, FfnDown, FfnDownB,
  OutNorm, OutNormB, Output,
};

/// How a checkpoint tensor becomes a canonical one.
enum RowFlag : unsigned {
  kOptional = 1u << 0,    ///< may be absent from the checkpoint (see kTied)
  kTransposed = 1u << 1,  ///< stored [in, out] (GPT-2 Conv1D); transposed at load
  kTied = 1u << 2,        ///< absent or tied: share token_embd.weight
  kFusedQkv = 1u << 3,    ///< one [q; k; v] tensor (rows after any transpose) split at load
  kRotaryPermuted = 1u << 4,  ///< llama.cpp's interleaved-rotary row order; un-permuted at load
};

/// One row of an architecture table. `checkpoint` may list alternatives separated by '|'
/// ("transformer.wte.weight|wte.weight"); "{l}" stands for the layer index.
struct ArchRow {
  CTensor tensor;
  const char* checkpoint;
  unsigned flags;
};

/// Canonical name of a tensor ("blk.3.attn_q.weight"); layer is ignored for global tensors.
std::string canonical_name(CTensor t, int64_t layer);
bool canonical_per_layer(CTensor t);
/// Every canonical tensor this configuration uses, in table order.
std::vector<CTensor> canonical_used(const ModelConfig& c);
/// Expected torch-order shape of a canonical tensor under this configuration.
std::vector<int64_t> canonical_shape(CTensor t, const ModelConfig& c);

/// Table rows for a checkpoint format. Fails for a pair we do not support.
const std::vector<ArchRow>& arch_rows_hf(Arch a);
const std::vector<ArchRow>& arch_rows_gguf(Arch a);
/// Replaces "{l}" by the layer index.
std::string expand_layer(const std::string& pattern, int64_t layer);

/// Hyper-parameters from GGUF metadata (general.architecture = llama, qwen2 or gpt2).
ModelConfig config_from_gguf(const GgufFile& f);
/// Arch from an HF model_type or GGUF architecture string; fails naming `where`.
Arch arch_from_string(const std::string& s, const std::string& where);

/// Rotary inverse frequencies [Dh/2] (fp32) computed as transformers does, including
/// Llama-3 scaling; `freq_factors` (GGUF rope_freqs.weight) divides them when defined.
at::Tensor rope_inv_freq(const ModelConfig& c, const at::Tensor& freq_factors);
/// cos and sin tables [T, Dh] (fp32) for positions 0..T-1 (HF: cat(freqs, freqs)).
void rope_tables(const at::Tensor& inv_freq, int64_t T, at::Tensor* cos, at::Tensor* sin);

/// The block's norm as transformers computes it: RMSNorm normalises in fp32 (in double when x is
/// double), casts back, then applies the weight; LayerNorm otherwise. Shared by the plain and
/// the patched forward so the two cannot drift apart.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps);
at::Tensor norm(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
/// HF apply_rotary_pos_emb (rotate_half) on x [..., Dh], cos/sin broadcastable to x.
at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

std::string shape_str(const std::vector<int64_t>& s);

/// An index list as an int64 tensor on device `d` (the device of the tensor it will index).
at::Tensor index_tensor(const std::vector<int64_t>& v, const c10::Device& d);
/// [B, T] in dtype `dt` on `d`: 1 where position t holds a real token (t < lengths[b]), 0 on
/// padding; all ones when `lengths` is undefined. Callers validate `lengths` where it is input.
at::Tensor real_token_mask(const at::Tensor& lengths, int64_t B, int64_t T, at::ScalarType dt, const c10::Device& d);

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

/// Called at named points inside a computation (hook name relative to the block); may replace t.
using HookFn = std::function<void(const char* name, at::Tensor& t)>;
/// The MLP's activation before its down projection, [.., F], from its normalised input xn;
/// `hook` (may be null) sees mlp.hook_pre, mlp.hook_pre_linear (gated) and mlp.hook_post.
at::Tensor mlp_hidden(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xn, const HookFn* hook);
/// Causal attention through scaled_dot_product_attention: q [N, H, T, Dh], k and v
/// [N, H or G, T, Dh] (after rotary) -> z [N, H, T, Dh].
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace model_detail
}  // namespace edgewise
