// Hyper-parameters: Hugging Face config.json (gpt2, llama, qwen2, gpt_neox, tracr; parsed torch-free by
// hf_config_parse in src/io/config_json.cpp) and GGUF metadata (llama, qwen2, gpt2) into one
// ModelConfig. Defaults are those of the transformers config classes (GPT2Config, LlamaConfig,
// Qwen2Config, GPTNeoXConfig) for keys a file leaves out.
// Not here: tensor names and shapes (arch.cpp), reading weights (load.cpp).
#include <cmath>
#include <fstream>
#include <sstream>

#include "edgewise/config_json.h"
#include "edgewise/error.h"
#include "edgewise/gguf.h"
#include "internal.h"

namespace edgewise {

using namespace model_detail;

namespace {

// The size checks of config.json (hf_config_validate, in edgewise_core) on a configuration read
// from anywhere (GGUF metadata).
void validate(const ModelConfig& c, const std::string& where) {
  HfConfig h;
  h.n_layers = c.n_layers;
  h.d_model = c.d_model;
  h.n_heads = c.n_heads;
  h.n_kv_heads = c.n_kv_heads;
  h.d_head = c.d_head;
  h.d_mlp = c.d_mlp;
  h.vocab_size = c.vocab_size;
  h.n_ctx = c.n_ctx;
  h.rope = c.rope;
  hf_config_validate(h, where);
}

// Gemma 3's block from GGUF metadata (llama.cpp's gemma3 keys). The file does not say the
// sliding-window layer pattern or the local rotary base: llama.cpp and transformers' GGUF loader
// both take Gemma 3's (every 6th layer global, base 10000) — so do we, unless the keys are there.
template <class Key>
void gemma3_from_gguf(const GgufFile& f, Key key, ModelConfig& c) {
  const std::string& path = f.path();
  c.act = Act::GeluNew;
  c.block.post_norms = c.block.qk_norm = true;
  c.block.embed_scale = std::sqrt(static_cast<double>(c.d_model));
  c.block.attn_scale = 1.0 / std::sqrt(static_cast<double>(c.d_head));  // query_pre_attn_scalar = head_dim
  c.block.sliding_window = f.has(key("attention.sliding_window")) ? f.get_int(key("attention.sliding_window")) : 4096;
  if (c.block.sliding_window <= 0) fail(path, "attention.sliding_window must be positive");
  const int64_t pattern =
      f.has(key("attention.sliding_window_pattern")) ? f.get_int(key("attention.sliding_window_pattern")) : 6;
  if (pattern <= 0) fail(path, "attention.sliding_window_pattern must be positive");
  c.block.sliding.assign(c.n_layers, false);
  for (int64_t l = 0; l < c.n_layers; ++l) c.block.sliding[l] = (l + 1) % pattern != 0;
  c.block.rope_theta_local = f.has(key("rope.local.freq_base")) ? f.get_float(key("rope.local.freq_base")) : 10000.0;
  if (f.has(key("final_logit_softcapping")) || f.has(key("attn_logit_softcapping")))
    fail(path, "logit soft-capping is not supported (Gemma 3 has none)");
}

}  // namespace

// The parsing is torch-free (hf_config_parse, src/io/config_json.cpp); here the file is read and
// the fields become a ModelConfig.
ModelConfig config_from_hf_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open config file");
  std::ostringstream text;
  text << in.rdbuf();
  const HfConfig h = hf_config_parse(path, text.str());
  ModelConfig c;
  c.hf_model_type = h.model_type;
  c.arch = arch_from_string(h.model_type, path);
  c.n_layers = h.n_layers;
  c.d_model = h.d_model;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.d_head = h.d_head;
  c.d_mlp = h.d_mlp;
  c.vocab_size = h.vocab_size;
  c.n_ctx = h.n_ctx;
  c.norm = h.no_norm ? Norm::None : h.layer_norm ? Norm::LayerNorm : Norm::RMSNorm;
  c.act = h.act == "gelu_new" ? Act::GeluNew : h.act == "gelu" ? Act::Gelu : h.act == "relu" ? Act::Relu : Act::Silu;
  c.causal = h.causal;
  c.n_outputs = h.n_outputs;
  c.norm_eps = h.norm_eps;
  c.positional_embedding = h.positional_embedding;
  c.rope = h.rope;
  c.rope_theta = h.rope_theta;
  c.rope_scaling.type = h.rope_scaling.type;
  c.rope_scaling.factor = h.rope_scaling.factor;
  c.rope_scaling.low_freq_factor = h.rope_scaling.low_freq_factor;
  c.rope_scaling.high_freq_factor = h.rope_scaling.high_freq_factor;
  c.rope_scaling.original_max_position_embeddings = h.rope_scaling.original_max_position_embeddings;
  c.gated_mlp = h.gated_mlp;
  c.qkv_bias = h.qkv_bias;
  c.o_bias = h.o_bias;
  c.mlp_bias = h.mlp_bias;
  c.tied_embeddings = h.tied_embeddings;
  c.block.parallel = h.parallel;
  c.block.rotary_dims = h.rotary_dims;
  c.block.post_norms = h.post_norms;
  c.block.qk_norm = h.qk_norm;
  c.block.embed_scale = h.embed_scale;
  c.block.attn_scale = h.attn_scale;
  c.block.sliding = h.sliding;
  c.block.sliding_window = h.sliding_window;
  c.block.rope_theta_local = h.rope_theta_local;
  c.bos_token_id = h.bos_token_id;
  c.eos_token_id = h.eos_token_id;
  return c;
}

namespace model_detail {

ModelConfig config_from_gguf(const GgufFile& f) {
  const std::string& path = f.path();
  if (!f.has("general.architecture")) fail(path, "missing metadata 'general.architecture'");
  const std::string a = f.get_string("general.architecture");
  ModelConfig c;
  c.arch = arch_from_string(a, path);
  c.hf_model_type = a;
  auto key = [&](const std::string& k) { return a + "." + k; };
  c.n_layers = f.get_int(key("block_count"));
  c.d_model = f.get_int(key("embedding_length"));
  c.d_mlp = f.get_int(key("feed_forward_length"));
  c.n_heads = f.get_int(key("attention.head_count"));
  c.n_kv_heads = f.has(key("attention.head_count_kv")) ? f.get_int(key("attention.head_count_kv"))
                                                       : c.n_heads;
  c.n_ctx = f.get_int(key("context_length"));
  if (f.has(key("attention.key_length"))) c.d_head = f.get_int(key("attention.key_length"));
  else if (c.n_heads > 0) c.d_head = c.d_model / c.n_heads;

  if (f.has(key("vocab_size"))) c.vocab_size = f.get_int(key("vocab_size"));
  else if (f.has("tokenizer.ggml.tokens")) c.vocab_size = f.get_string_array("tokenizer.ggml.tokens").size();
  else if (const auto* t = f.find_tensor("token_embd.weight"); t && t->shape.size() == 2)
    c.vocab_size = t->shape[1];

  if (f.has("tokenizer.ggml.bos_token_id"))
    c.bos_token_id = static_cast<int32_t>(f.get_int("tokenizer.ggml.bos_token_id"));
  if (f.has("tokenizer.ggml.eos_token_id"))
    c.eos_token_id = static_cast<int32_t>(f.get_int("tokenizer.ggml.eos_token_id"));

  auto has_t = [&](const std::string& n) { return f.find_tensor(n) != nullptr; };
  c.tied_embeddings = !has_t("output.weight");
  if (c.arch == Arch::Gpt2) {
    c.norm = Norm::LayerNorm;
    c.norm_eps = f.get_float(key("attention.layer_norm_epsilon"));
    c.act = Act::GeluNew;
    c.positional_embedding = true;
    c.rope = false;
    c.gated_mlp = false;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
  } else {
    c.norm = Norm::RMSNorm;
    c.norm_eps = f.get_float(key("attention.layer_norm_rms_epsilon"));
    c.act = Act::Silu;
    c.rope = true;
    c.rope_theta = f.has(key("rope.freq_base")) ? f.get_float(key("rope.freq_base")) : 10000.0;
    if (f.has(key("rope.dimension_count")) && f.get_int(key("rope.dimension_count")) != c.d_head)
      fail(path, "rope.dimension_count " + std::to_string(f.get_int(key("rope.dimension_count"))) +
                     " differs from the head width " + std::to_string(c.d_head) +
                     " (partial rotary is not supported)");
    if (f.has(key("rope.scaling.type"))) {
      const std::string t = f.get_string(key("rope.scaling.type"));
      if (t == "linear") {
        c.rope_scaling.type = "linear";
        c.rope_scaling.factor = f.get_float(key("rope.scaling.factor"));
      } else if (t != "none") {
        fail(path, "unsupported rope scaling type '" + t + "' (supported: none, linear)");
      }
    }
    c.gated_mlp = true;
    if (c.arch == Arch::Gemma3) gemma3_from_gguf(f, key, c);
    c.qkv_bias = c.arch == Arch::Qwen2 || has_t("blk.0.attn_q.bias");
    c.o_bias = has_t("blk.0.attn_output.bias");
    c.mlp_bias = has_t("blk.0.ffn_up.bias");
  }
  validate(c, path);
  return c;
}

}  // namespace model_detail
}  // namespace edgewise
