// One hookable decoder-only transformer for GPT-2, GPT-NeoX / Pythia, the Llama family
// (Llama 2/3, CodeLlama, Qwen2/2.5, SmolLM2) and Gemma 3. Architectures are data (src/model/arch.cpp): a table per architecture
// maps checkpoint tensor names to canonical ones with flags (optional, transposed, tied).
// Weights are loaded once, read-only; the forward pass names every intermediate with its
// TransformerLens hook name, and a Hooks object may read or replace any of them.
//
// Dimension letters: B batch, T tokens, D model width, H query heads, G key/value heads,
// Dh head width, F MLP width, V vocabulary.
//
// This header deliberately includes only ATen's Tensor type, not torch/torch.h.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "edgewise/hf.h"
#include "edgewise/names.h"
#include "edgewise/tokenizer.h"

namespace edgewise {

/// Tracr: a transformer compiled from a RASP program (tools/tracr/export.py writes its files):
/// no norm, ReLU MLPs, non-causal attention unless compiled causal, its own word-level vocabulary
/// (Tokenizer::from_tracr_config) and output space (output.weight: [outputs, D]).
/// Gemma 3 (text): the Llama layout plus the BlockShape fields post_norms, qk_norm, embed_scale,
/// attn_scale and sliding-window layers; GeGLU MLPs; norm weights stored as their multiplier
/// (the checkpoint's 1 + w; a GGUF's as written).
enum class Arch { Gpt2, Llama, Qwen2, GptNeox, Tracr, Gemma3 };
inline constexpr EnumName<Arch> kArchNames[] = {{Arch::Gpt2, "gpt2"},
                                                {Arch::Llama, "llama"},
                                                {Arch::Qwen2, "qwen2"},
                                                {Arch::GptNeox, "gpt_neox"},
                                                {Arch::Tracr, "tracr"},
                                                {Arch::Gemma3, "gemma3"}};
const char* arch_name(Arch a);

enum class Norm { LayerNorm, RMSNorm, None };  ///< None: no norm at all (Tracr)
/// The MLP's activation; in a gated MLP the gate's (Silu: SwiGLU; GeluNew, the tanh approximation:
/// GeGLU).
enum class Act { GeluNew, Gelu, Silu, Relu };

struct RopeScaling {
  std::string type;  ///< "" (none), "llama3", "linear"
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

/// The block's shape: what the engines (plain forward, patched forward, ACDC's evaluator) read
/// to arrange one block's primitives (src/model/block.h), and what the circuit graph's topology
/// follows. Pre-norm blocks with a norm before attention, one before the MLP and one before the
/// unembedding are what every supported architecture has; the fields say where they differ.
struct BlockShape {
  /// Attention and MLP both read the block's input and both add to it (GPT-NeoX's
  /// use_parallel_residual, GPT-J): x + attn(ln1(x)) + mlp(ln2(x)). The graph then has no edge
  /// from a layer's heads to its own MLP. False: x' = x + attn(ln1(x)); x' + mlp(ln2(x')).
  bool parallel = false;
  /// The leading dims of each head the rotary embedding turns; 0 = all of d_head. GPT-NeoX's
  /// rotary_pct (Pythia: 0.25) gives d_head * rotary_pct.
  int64_t rotary_dims = 0;
  /// Gemma 2/3: a norm on each sublayer's output before the residual add (post_attention_norm,
  /// post_ffw_norm): x' = x + post(attn(ln1(x))); x' + post2(mlp(ln2(x'))). A head's output is
  /// then its share of the normed attention output (docs/PATCHING.md, "Post-norms").
  bool post_norms = false;
  /// RMSNorm of each head's query and key over Dh (attn_q_norm / attn_k_norm) before the rotary
  /// embedding (Gemma 3, Qwen3).
  bool qk_norm = false;
  /// Token embeddings multiplied by this in the compute dtype (Gemma: sqrt(d_model)); 0: not.
  double embed_scale = 0;
  /// Scale of the attention logits; 0: 1/sqrt(d_head) (Gemma: query_pre_attn_scalar^-0.5).
  double attn_scale = 0;
  /// Sliding-window attention: sliding[l] set means layer l's query at position i sees only keys
  /// i - sliding_window < j <= i, and turns q / k with the rotary base rope_theta_local. Empty: no
  /// such layers.
  std::vector<bool> sliding;
  int64_t sliding_window = 0;
  double rope_theta_local = 10000.0;

  bool is_sliding(int64_t layer) const {
    return layer >= 0 && static_cast<size_t>(layer) < sliding.size() && sliding[layer];
  }
};

/// Hyper-parameters. Read from config.json or GGUF metadata.
struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string hf_model_type;  ///< "gpt2", "llama", "qwen2", "gpt_neox", ...
  int64_t n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, d_head = 0, d_mlp = 0;
  int64_t vocab_size = 0, n_ctx = 0;
  Norm norm = Norm::RMSNorm;
  Act act = Act::Silu;
  double norm_eps = 1e-5;
  bool positional_embedding = false;  ///< learned absolute positions (GPT-2)
  bool rope = true;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool gated_mlp = true;   ///< SwiGLU (gate, up, down) vs GPT-2's (fc, proj)
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  bool tied_embeddings = false;
  /// Causal attention (every language model); false: every position attends to every other
  /// (Tracr's default). The patched forward and the methods need causal attention.
  bool causal = true;
  /// Rows of output.weight when they are not vocabulary rows (Tracr's output space); 0: vocab_size.
  int64_t n_outputs = 0;
  BlockShape block;
  std::optional<int32_t> bos_token_id, eos_token_id;
};

enum class DType { F32, BF16 };

struct LoadOptions {
  /// Compute dtype of the weights. fp32 by default; bf16 halves memory.
  DType dtype = DType::F32;
  /// Load the tokenizer too (info/tokenize need it; tests of weights alone may skip it).
  bool load_tokenizer = true;
  /// Where the weights live and every pass computes: "cpu", "cuda", "cuda:N", or "auto" (the
  /// first GPU when libtorch has CUDA and one is visible, else the CPU). A GPU asked for that
  /// is not there is an error saying so. Inputs given on another device are moved.
  std::string device = "cpu";
  /// The layers [first, end) to hold; the others' tensors are checked but not read, and only the
  /// pipeline's stage-by-stage passes run on such a model. Unset: every layer, or, when the layers
  /// are split over ranks (dist::stages() > 1), this rank's stage's (dist::stage_range).
  std::optional<std::pair<int64_t, int64_t>> layers;
};

/// The device a LoadOptions::device string names (resolving "auto"); errors name the string
/// and what was expected.
c10::Device parse_device(const std::string& s);

/// Names and replaces intermediates of the forward pass.
/// `fn(t, name)` is called with the tensor computed at each requested hook point and its name
/// ("blocks.3.hook_resid_post"), as TransformerLens calls fn(activation, hook): it returns the
/// replacement (a tensor of the same shape) or an undefined tensor to leave the value as it is.
/// The argument must not be modified in place.
/// Per-head values (attn.hook_q/k/v/z/pattern/attn_scores/result) are only computed when their
/// names are requested.
class Hooks {
 public:
  using Fn = std::function<at::Tensor(const at::Tensor& t, const std::string& name)>;
  Hooks() = default;
  /// Calls fn at every hook whose name is in `names`.
  Hooks(std::set<std::string> names, Fn fn) : names_(std::move(names)), fn_(std::move(fn)) {}
  /// Calls fn at every hook point (per-head ones included: costly).
  static Hooks all(Fn fn);
  /// Records the requested hooks into a map (clones nothing; tensors are not modified).
  static Hooks capture(std::set<std::string> names, std::map<std::string, at::Tensor>* out);

  bool wants(const std::string& name) const { return all_ || names_.count(name) > 0; }
  /// True when any wanted hook name starts with `prefix` ("blocks.3."); always with all().
  bool wants_any_prefix(const std::string& prefix) const;
  /// Runs the hook at `name` on t, replacing t by what it returns (when defined).
  void call(const std::string& name, at::Tensor& t) const {
    if (!fn_ || !wants(name)) return;
    at::Tensor r = fn_(t, name);
    if (r.defined()) t = std::move(r);
  }

 private:
  std::set<std::string> names_;
  Fn fn_;
  bool all_ = false;
};

/// A loaded model: hyper-parameters, canonical weights, tokenizer, provenance.
class Model {
 public:
  /// Loads from a resolved source (see resolve_model). Errors name the file and tensor.
  static Model load(const ModelSource& src, const LoadOptions& opt = {});
  /// Convenience: resolve_model(spec) then load.
  static Model load(const std::string& spec, const LoadOptions& opt = {});
  /// A model over tensors already in memory, named as in the checkpoint (a transformers
  /// model's state_dict, from Python): `src.config` is its config.json, `src.tokenizer_json` or
  /// `src.vocab_json` + `src.merges_txt` its tokenizer (none: a model without one). The weights
  /// are the given tensors, not copies, wherever they are in `opt.dtype` (views: transposed,
  /// split q/k/v; a tensor in another dtype is converted, a copy, said in load_notes()); they
  /// must all be on one device, which becomes the model's (`opt.device` is not used). They must
  /// not change while the model is used. q/k/v are not packed into one buffer, so the forward
  /// runs one matmul per projection.
  static Model from_tensors(const ModelSource& src, const std::map<std::string, at::Tensor>& tensors,
                            const LoadOptions& opt = {});

  const ModelConfig& config() const { return cfg_; }
  const ModelSource& source() const { return src_; }
  const Tokenizer& tokenizer() const;
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  DType dtype() const { return dtype_; }
  /// The device of the weights: where forward and the patched forward compute and what their
  /// results are on.
  c10::Device device() const;
  /// Canonical weights (name -> tensor), e.g. "blk.0.attn_q.weight".
  const std::map<std::string, at::Tensor>& weights() const { return weights_; }
  /// The layers [first, end) whose weights this model holds (LoadOptions::layers).
  std::pair<int64_t, int64_t> held_layers() const { return held_; }
  /// In a pipeline (dist::stages() > 1, every stage calling it): the model with every layer's
  /// weights, each broadcast by the stage holding it (to write a whole model; as much memory as
  /// the whole model). Otherwise the model itself.
  Model gathered() const;
  const at::Tensor& weight(const std::string& canonical) const;
  int64_t n_params() const;
  /// Notes gathered while loading (dequantised types, tied output, permuted q/k...).
  const std::vector<std::string>& load_notes() const { return notes_; }

  /// Logits [B, T, V] (fp32) for tokens [B, T] (int64). Prompts shorter than T must be
  /// right-padded: causal attention keeps the padding from affecting earlier positions.
  at::Tensor forward(const at::Tensor& tokens, const Hooks* hooks = nullptr) const;

  /// This model with other weights: same configuration, tokenizer, source and rotary tables.
  /// `w` must hold exactly the canonical names of weights() with the same shapes (errors name
  /// the first mismatch). The tensors are used as given (no copy): they may require grad, which
  /// is how circuit-tuning trains them (q/k/v and gate/up given as row views of one buffer keep
  /// the forward's one-matmul path; see fused_weight_groups).
  Model with_weights(std::map<std::string, at::Tensor> w) const;

  /// Rotary tables [n_positions, Dr] (Dr: the rotated dims, model_detail::rotary_dims) in the weights' dtype (undefined without rotary
  /// embeddings); read by the patched forward (graph/patch.cpp).
  const at::Tensor& rope_cos() const { return rope_cos_; }
  const at::Tensor& rope_sin() const { return rope_sin_; }
  /// The tables layer l turns q and k with: a sliding-window layer's own (BlockShape::
  /// rope_theta_local) when the model has them, else rope_cos() / rope_sin().
  const at::Tensor& rope_cos(int64_t layer) const {
    return cfg_.block.is_sliding(layer) && rope_cos_local_.defined() ? rope_cos_local_ : rope_cos_;
  }
  const at::Tensor& rope_sin(int64_t layer) const {
    return cfg_.block.is_sliding(layer) && rope_sin_local_.defined() ? rope_sin_local_ : rope_sin_;
  }

 private:
  ModelConfig cfg_;
  ModelSource src_;
  DType dtype_ = DType::F32;
  std::map<std::string, at::Tensor> weights_;
  std::pair<int64_t, int64_t> held_{0, 0};
  std::shared_ptr<Tokenizer> tokenizer_;
  std::vector<std::string> notes_;
  at::Tensor rope_cos_, rope_sin_;  // [n_ctx, Dh]
  at::Tensor rope_cos_local_, rope_sin_local_;  // sliding-window layers' (undefined: none)
};

/// Reads config.json into a ModelConfig. Unsupported model_type -> Error naming the file.
ModelConfig config_from_hf_json(const std::string& path);

/// The canonical weights the loader packs into one buffer per group, consecutive rows in this
/// order (per layer: q/k/v weights, q/k/v biases, gate/up weights, gate/up biases; groups whose
/// tensors the configuration lacks are left out). The forward runs one matmul per group.
std::vector<std::vector<std::string>> fused_weight_groups(const ModelConfig& c);

/// config.json text for a configuration (transformers' GPT2Config / LlamaConfig / Qwen2Config
/// keys; config_from_hf_json reads it back to the same ModelConfig). Fails for what config.json
/// cannot express (a GGUF's rope_freqs factors, Llama q/k/v bias without o bias).
std::string hf_config_json(const ModelConfig& c);

/// Writes `model` as a Hugging Face directory `dir`: config.json, model.safetensors (the weights
/// in the checkpoint names and layouts of arch.cpp's HF tables, in the model's dtype; a tied
/// output is left out), the tokenizer (the source directory's tokenizer files copied when it has
/// them, otherwise tokenizer.json exported from the loaded tokenizer, e.g. a GGUF vocabulary),
/// tokenizer_config.json and generation_config.json (no tokenizer files for a model loaded without its
/// tokenizer). Written into a temporary sibling directory
/// and renamed over `dir` (an existing `dir` is replaced), so no half-written model is left.
/// `extra_files` (name -> content) are added, e.g. a training report.
void save_hf_model(const Model& model, const std::string& dir,
                   const std::map<std::string, std::string>& extra_files = {});

}  // namespace edgewise
