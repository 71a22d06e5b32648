// Private to src/model: the canonical tensor set, the per-architecture name tables, GGUF
// hyper-parameters and the rotary tables. Nothing here is part of the public API.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "block.h"
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
  AttnQNorm, AttnKNorm, AttnPostNorm, FfnPostNorm,  // Gemma 3 (BlockShape::qk_norm, post_norms)
};

/// How a checkpoint tensor becomes a canonical one.
enum RowFlag : unsigned {
  kOptional = 1u << 0,    ///< may be absent from the checkpoint (see kTied)
  kTransposed = 1u << 1,  ///< stored [in, out] (GPT-2 Conv1D); transposed at load
  kTied = 1u << 2,        ///< absent or tied: share token_embd.weight
  kFusedQkv = 1u << 3,    ///< one [q; k; v] tensor (rows after any transpose) split at load
  kRotaryPermuted = 1u << 4,  ///< llama.cpp's interleaved-rotary row order; un-permuted at load
  /// One fused q/k/v tensor grouped by head (GPT-NeoX's query_key_value: rows [H, 3, Dh], head
  /// h's q, k, v consecutive), split at load and interleaved back at save.
  kFusedQkvHeads = 1u << 5,
  /// A norm weight stored as w where the model multiplies by 1 + w (Gemma's checkpoints); the
  /// canonical tensor is the multiplier, 1 is added at load and taken away at save.
  kPlusOne = 1u << 6,
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

std::string shape_str(const std::vector<int64_t>& s);

/// An index list as an int64 tensor on device `d` (the device of the tensor it will index).
at::Tensor index_tensor(const std::vector<int64_t>& v, const c10::Device& d);
/// [B, T] in dtype `dt` on `d`: 1 where position t holds a real token (t < lengths[b]), 0 on
/// padding; all ones when `lengths` is undefined. Callers validate `lengths` where it is input.
at::Tensor real_token_mask(const at::Tensor& lengths, int64_t B, int64_t T, at::ScalarType dt, const c10::Device& d);

// Pipeline links (layers split over ranks, edgewise/distributed.h), for gradients across stages;
// the plain forward and the patched one (src/graph/patch.cpp) both use them. `anchors` (what
// requires grad) only put the links on every backward's path; they get no gradient from them.
// On a stage that received the residual x and store rows (rows may be empty) from stage `from`:
// the two, whose backward sends their gradients back there (messages tagged `tag`).
std::vector<at::Tensor> pipeline_received(const std::vector<at::Tensor>& anchors, const at::Tensor& x,
                                          const at::Tensor& rows, int from, int tag);
// On a stage that sent x and the store rows held by `blocks` (in order; none: no store gradient)
// to stage `to`: the broadcast `logits`, whose backward receives the gradients of what was sent.
at::Tensor pipeline_sent(const std::vector<at::Tensor>& anchors, const at::Tensor& logits, const at::Tensor& x,
                         const std::vector<at::Tensor>& blocks, int to, int tag);

}  // namespace model_detail
}  // namespace edgewise
