// The patched forward: the model run with every edge of the circuit graph weighted by a mask.
// For masks m [K, n_src, n_dst] in [0, 1] and ablated source values õ:
//
//   input of reader d = resid_d - sum_s (1 - m[s, d]) * (o_s - õ_s)
//
// where o_s is source s's output in this (patched) pass and resid_d the residual stream at d.
// Sources (see graph.h): input = token (+ position) embeddings; a{l}.h{h} = the head's output in
// residual space, z_h @ W_O_h^T, WITHOUT the o bias; m{l} = the MLP's output WITHOUT the bias
// of its down projection. Those biases stay in the residual and are never ablated (EAP-IG does
// the same with the attention bias): with zero ablation they remain. Each q/k/v reader of a head
// (or key/value head) gets its own input, normalised by ln1 on its own; k and v are never
// ungrouped. K circuits are folded into the batch; masks may be fractional and require grad.
// docs/PATCHING.md describes the computation and its memory cost.
//
// Padding: inputs are right-padded and attention is causal, so real tokens never see padding;
// means (Mean, MeanPerPosition) count real tokens only. A model with non-causal attention
// (Tracr) would see the padding: its batches must have no padding (check_batch_padding).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "edgewise/graph.h"
#include "edgewise/model.h"
#include "edgewise/names.h"

namespace edgewise {

/// What replaces an ablated source's output.
enum class Ablation {
  Resample,         ///< the paired corrupted prompt's run (default): õ [n_src, B, T, D]
  Mean,             ///< mean over the given prompts and positions: õ [n_src, 1, 1, D]
  MeanPerPosition,  ///< mean over the given prompts, per position: õ [n_src, 1, T, D]
  Zero,             ///< zero: õ [n_src, 1, 1, D]
};
inline constexpr EnumName<Ablation> kAblationNames[] = {{Ablation::Resample, "resample"},
                                                       {Ablation::Mean, "mean"},
                                                       {Ablation::MeanPerPosition, "mean-positional"},
                                                       {Ablation::Zero, "zero"}};
/// By kAblationNames; parse fails naming the text and the choices.
const char* ablation_name(Ablation a);
Ablation ablation_from_string(const std::string& s);
/// True for the ablations that patch position by position (resample, mean-positional): they
/// need clean and corrupted prompts of equal token counts.
inline bool ablation_needs_alignment(Ablation a) { return a == Ablation::Resample || a == Ablation::MeanPerPosition; }

/// The graph of this model (its layers, heads and key/value heads).
Graph model_graph(const Model& model, bool split_qkv);

struct Batch;
/// For a model with non-causal attention: every clean and corrupted prompt of the batch must
/// fill all its positions (padding would be attended to). Error naming `where`, the first short
/// example and both lengths. Nothing to check for causal models.
void check_batch_padding(const Model& model, const Batch& batch, const std::string& where);

/// Every source's output in a plain (unpatched) run of tokens [B, T]: [n_src, B, T, D] in the
/// model's dtype (or in `dtype`: kDouble computes in double, for checks), no grad. Row order is
/// the graph's source order.
at::Tensor source_outputs(const Model& model, const Graph& graph, const at::Tensor& tokens,
                          std::optional<at::ScalarType> dtype = std::nullopt);

/// The ablated values õ for one batch, computed once and reused by every patched pass over it.
/// Resample runs `corrupted` (same [B, T] as `clean`); Mean / MeanPerPosition average the
/// sources of `clean` over its real tokens: `lengths` [B] (token counts of right-padded rows;
/// undefined: every position is real). Positions no row reaches get zero (MeanPerPosition).
/// Zero needs neither. For a dataset's mean over several batches use dataset_mean.
at::Tensor ablated_values(const Model& model, const Graph& graph, Ablation how, const at::Tensor& clean,
                          const at::Tensor& corrupted, const at::Tensor& lengths = {});

/// Mean / MeanPerPosition over a whole dataset: tokens [N, T] right-padded, lengths [N], run in
/// batches of batch_size rows; each real token weighs the same (padding never counts).
/// `progress(rows_done)` is called after each batch when given.
at::Tensor dataset_mean(const Model& model, const Graph& graph, Ablation how, const at::Tensor& tokens,
                        const at::Tensor& lengths, int64_t batch_size,
                        const std::function<void(int64_t)>& progress = {});

/// The clean run's state, for downstream-only recompute: a patched pass whose first ablated
/// edge enters layer l starts at layer l from here. Model dtype; no grad.
struct CleanCache {
  at::Tensor resid;    ///< [L + 1, B, T, D] residual entering each layer; [L] = before the final norm
  at::Tensor sources;  ///< [n_src, B, T, D] every source's output
  at::Tensor tokens;   ///< [B, T] the tokens it belongs to (checked on use)
};
CleanCache clean_cache(const Model& model, const Graph& graph, const at::Tensor& tokens);

struct PatchOptions {
  /// Optional [B, P] int64 token positions: logits only there ([K, B, P, V]), saving the final
  /// norm and unembedding of the other positions. Undefined: all T positions.
  at::Tensor positions;
  /// Dense: every source's difference (o_s - õ_s) enters the per-layer matmul. Sparse: only
  /// the sources with an ablated out-edge (m < 1 on a real edge); equal to dense up to rounding,
  /// no gradients (a mask entry of 1 must still get its gradient). Auto: sparse when no gradient
  /// is needed and at most half the sources have an ablated edge.
  enum class Path { Auto, Dense, Sparse };
  Path path = Path::Auto;
  /// Downstream-only recompute: with a cache of these tokens' clean run and no gradient needed,
  /// layers before the first one with an ablated edge are not recomputed. Ignored with grad.
  const CleanCache* cache = nullptr;
  /// Dense path: the corrections of the readers of several consecutive layers from the sources
  /// before them come from one GEMM with about this many reader columns (docs/PATCHING.md).
  /// A speed knob only: any value >= 1 gives the same logits up to rounding (1 = per layer).
  int64_t chunk_columns = 64;
  /// K circuits are folded into the batch in groups of at most this many tokens (K_group * B *
  /// T; at least one circuit per group); groups run one after the other. A speed knob only
  /// (docs/BENCHMARKS.md has the measurements behind the default).
  int64_t fold_tokens = 256;
  /// Replaces the input embeddings (the `input` source's output: token plus position embedding)
  /// by this [B, T, D] tensor, differentiable. EAP-IG interpolates them between runs.
  at::Tensor embeddings;
  /// Differences (o_s - õ_s) [n_src, B or 1, T or 1, D] that every correction uses instead of
  /// this pass's own: attribution keeps the clean-vs-ablated differences fixed while the pass
  /// runs elsewhere (interpolated inputs, the corrupted prompt). No gradient flows into them;
  /// the mask gradient is then d f / d mask[s, d] = -fixed_diffs[s] . d f / d input_d.
  at::Tensor fixed_diffs;
  /// [n_src] bool: these sources' outputs pass no gradient back (their values are unchanged),
  /// as when a run replaces them by stored constants (EAP-IG's activation interpolation).
  at::Tensor detach_sources;
};

/// Logits [K, B, T, V] (or [K, B, P, V]) of tokens [B, T] under masks [K, n_src, n_dst]
/// (a [n_src, n_dst] mask is taken as K = 1), with ablated values `ablated` of shape
/// [n_src, B or 1, T or 1, D]. Entries of the mask that are not edges are ignored.
/// Differentiable w.r.t. masks (and ablated). fp32 masks compute in the model's dtype (fp32 out);
/// double masks compute in double (weights cast on the fly; for checks) and return double.
at::Tensor patched_forward(const Model& model, const Graph& graph, const at::Tensor& tokens,
                           const at::Tensor& ablated, const at::Tensor& masks,
                           const PatchOptions& opt = {});

/// Node masks [K, n_src] (or [n_src]) as edge masks [K, n_src, n_dst]: a node off switches off
/// all its out-edges (differentiable: the value is broadcast over the readers).
at::Tensor edge_mask_from_nodes(const Graph& graph, const at::Tensor& node_mask);

/// A mask [K, n_src, n_dst] of ones (every edge in), fp32 unless `dtype` says otherwise.
at::Tensor full_mask(const Graph& graph, int64_t K, at::ScalarType dtype = at::kFloat);

}  // namespace edgewise
