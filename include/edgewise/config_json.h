// Hugging Face config.json -> hyper-parameters, torch-free (in edgewise_core) so the parser can
// be fuzzed without libtorch (fuzz/fuzz_config.cpp). HfConfig holds what ModelConfig
// (edgewise/model.h) holds, in plain types; config_from_hf_json (src/model/config.cpp) reads the
// file, calls hf_config_parse and copies the fields across. Defaults are those of the
// transformers config classes (GPT2Config, LlamaConfig, Qwen2Config, GPTNeoXConfig).
// Not here: GGUF metadata (src/model/config.cpp), tensor names and shapes (src/model/arch.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edgewise {

/// config.json's hyper-parameters; each field is the ModelConfig field of the same name.
struct HfConfig {
  std::string model_type;  ///< "gpt2", "llama", "qwen2", "gpt_neox", "gemma3_text" or "tracr" (others are refused)
  int64_t n_layers = 0, d_model = 0, n_heads = 0, n_kv_heads = 0, d_head = 0, d_mlp = 0;
  int64_t vocab_size = 0, n_ctx = 0;
  bool layer_norm = false;  ///< LayerNorm (gpt2, gpt_neox); RMSNorm otherwise
  bool no_norm = false;     ///< no norm at all (tracr)
  std::string act;          ///< "gelu_new", "gelu", "silu" or "relu" (ModelConfig::act)
  double norm_eps = 1e-5;
  bool positional_embedding = false;
  bool rope = true;
  double rope_theta = 10000.0;
  struct RopeScaling {
    std::string type;  ///< "" (none), "llama3", "linear"
    double factor = 1.0;
    double low_freq_factor = 1.0, high_freq_factor = 4.0;
    int64_t original_max_position_embeddings = 8192;
  } rope_scaling;
  bool gated_mlp = true;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  bool tied_embeddings = false;
  bool causal = true;        ///< ModelConfig::causal
  int64_t n_outputs = 0;     ///< ModelConfig::n_outputs
  bool parallel = false;     ///< ModelConfig::block.parallel
  int64_t rotary_dims = 0;   ///< ModelConfig::block.rotary_dims
  // ModelConfig::block's Gemma 3 fields (gemma3_text).
  bool post_norms = false, qk_norm = false;
  double embed_scale = 0, attn_scale = 0;
  std::vector<bool> sliding;
  int64_t sliding_window = 0;
  double rope_theta_local = 10000.0;
  std::optional<int32_t> bos_token_id, eos_token_id;
};

/// Parses the text of a config.json (`path` names it in messages) and checks the sizes
/// (hf_config_validate). Every problem is an Error naming `path`.
HfConfig hf_config_parse(const std::string& path, const std::string& text);

/// The checks every configuration passes, from config.json or GGUF metadata: positive sizes,
/// heads a multiple of key/value heads, an even head width under rotary embeddings. Fails
/// naming `where`. Reads n_layers, d_model, n_heads, n_kv_heads, d_head, d_mlp, vocab_size,
/// n_ctx and rope only.
void hf_config_validate(const HfConfig& c, const std::string& where);

}  // namespace edgewise
