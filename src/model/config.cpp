// Hyper-parameters: Hugging Face config.json (gpt2, llama, qwen2, gpt_neox) and GGUF metadata
// (llama, qwen2, gpt2) into one ModelConfig. Defaults are those of the transformers config
// classes (GPT2Config, LlamaConfig, Qwen2Config, GPTNeoXConfig) for keys a file leaves out.
// Not here: tensor names and shapes (arch.cpp), reading weights (load.cpp).
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "edgewise/error.h"
#include "edgewise/gguf.h"
#include "internal.h"

namespace edgewise {

using nlohmann::json;
using namespace model_detail;

namespace {

struct JsonReader {
  const json& j;
  std::string path;

  bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
  int64_t get_int(const char* k) const {
    if (!has(k)) fail(path, std::string("missing key '") + k + "'");
    return int_of(k, j[k]);
  }
  int64_t get_int(const char* k, int64_t def) const { return has(k) ? int_of(k, j[k]) : def; }
  double get_float(const char* k, double def) const {
    if (!has(k)) return def;
    if (!j[k].is_number()) fail(path, std::string("key '") + k + "' is not a number: " + j[k].dump());
    return j[k].get<double>();
  }
  bool get_bool(const char* k, bool def) const {
    if (!has(k)) return def;
    if (!j[k].is_boolean()) fail(path, std::string("key '") + k + "' is not a boolean: " + j[k].dump());
    return j[k].get<bool>();
  }
  std::string get_string(const char* k, const std::string& def) const {
    if (!has(k)) return def;
    if (!j[k].is_string()) fail(path, std::string("key '") + k + "' is not a string: " + j[k].dump());
    return j[k].get<std::string>();
  }
  int64_t int_of(const std::string& k, const json& v) const {
    if (!v.is_number_integer()) fail(path, "key '" + k + "' is not an integer: " + v.dump());
    return v.get<int64_t>();
  }
  // bos/eos ids may be an int, a list of ints (first is used) or null.
  std::optional<int32_t> token_id(const char* k) const {
    if (!has(k)) return std::nullopt;
    const json& v = j[k];
    if (v.is_array()) {
      if (v.empty()) return std::nullopt;
      return static_cast<int32_t>(int_of(k, v[0]));
    }
    return static_cast<int32_t>(int_of(k, v));
  }
};

void positive(const std::string& where, const char* what, int64_t v) {
  if (v <= 0) fail(where, std::string(what) + " must be positive, found " + std::to_string(v));
}

// Shared sanity checks: the sizes must describe a buildable model.
void validate(const ModelConfig& c, const std::string& where) {
  positive(where, "number of layers", c.n_layers);
  positive(where, "model width", c.d_model);
  positive(where, "number of attention heads", c.n_heads);
  positive(where, "number of key/value heads", c.n_kv_heads);
  positive(where, "head width", c.d_head);
  positive(where, "MLP width", c.d_mlp);
  positive(where, "vocabulary size", c.vocab_size);
  positive(where, "context length", c.n_ctx);
  if (c.n_heads % c.n_kv_heads != 0)
    fail(where, "number of attention heads (" + std::to_string(c.n_heads) +
                    ") is not a multiple of the number of key/value heads (" +
                    std::to_string(c.n_kv_heads) + ")");
  if (c.rope && c.d_head % 2 != 0)
    fail(where, "rotary embeddings need an even head width, found " + std::to_string(c.d_head));
}

// rope_scaling (transformers < 5) or rope_parameters (transformers >= 5).
void read_rope(const JsonReader& r, ModelConfig& c) {
  c.rope_theta = r.get_float("rope_theta", 10000.0);
  const json* rs = nullptr;
  if (r.has("rope_parameters")) rs = &r.j["rope_parameters"];
  else if (r.has("rope_scaling")) rs = &r.j["rope_scaling"];
  if (!rs) return;
  if (!rs->is_object()) fail(r.path, "rope scaling is not a JSON object: " + rs->dump());
  JsonReader s{*rs, r.path};
  if (s.has("rope_theta")) c.rope_theta = s.get_float("rope_theta", c.rope_theta);
  std::string type = s.get_string("rope_type", s.get_string("type", "default"));
  if (type == "default") return;
  if (type != "llama3" && type != "linear")
    fail(r.path, "unsupported rope scaling type '" + type + "' (supported: default, linear, llama3)");
  c.rope_scaling.type = type;
  c.rope_scaling.factor = s.get_float("factor", 1.0);
  if (type == "llama3") {
    c.rope_scaling.low_freq_factor = s.get_float("low_freq_factor", 1.0);
    c.rope_scaling.high_freq_factor = s.get_float("high_freq_factor", 4.0);
    c.rope_scaling.original_max_position_embeddings =
        s.get_int("original_max_position_embeddings", c.n_ctx);
    if (c.rope_scaling.high_freq_factor == c.rope_scaling.low_freq_factor)
      fail(r.path, "llama3 rope scaling needs high_freq_factor != low_freq_factor");
  }
}

}  // namespace

ModelConfig config_from_hf_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open config file");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) fail(path, "not a JSON object");
  JsonReader r{j, path};
  if (!r.has("model_type")) fail(path, "missing key 'model_type' (supported: gpt2, llama, qwen2, gpt_neox)");
  ModelConfig c;
  c.hf_model_type = r.get_string("model_type", "");
  c.arch = arch_from_string(c.hf_model_type, path);
  c.bos_token_id = r.token_id("bos_token_id");
  c.eos_token_id = r.token_id("eos_token_id");

  if (c.arch == Arch::Gpt2) {
    c.d_model = r.get_int("n_embd", 768);
    c.n_layers = r.get_int("n_layer", 12);
    c.n_heads = r.get_int("n_head", 12);
    c.n_kv_heads = c.n_heads;
    if (c.n_heads > 0) c.d_head = c.d_model / c.n_heads;
    if (c.n_heads > 0 && c.d_model % c.n_heads != 0)
      fail(path, "n_embd " + std::to_string(c.d_model) + " is not a multiple of n_head " +
                     std::to_string(c.n_heads));
    c.d_mlp = r.get_int("n_inner", 4 * c.d_model);
    c.n_ctx = r.get_int("n_positions", 1024);
    c.vocab_size = r.get_int("vocab_size", 50257);
    c.norm = Norm::LayerNorm;
    c.norm_eps = r.get_float("layer_norm_epsilon", 1e-5);
    const std::string act = r.get_string("activation_function", "gelu_new");
    if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.act = Act::GeluNew;
    else if (act == "gelu") c.act = Act::Gelu;
    else fail(path, "unsupported activation_function '" + act + "' (supported: gelu_new, gelu_pytorch_tanh, gelu)");
    if (!r.get_bool("scale_attn_weights", true))
      fail(path, "scale_attn_weights = false is not supported");
    if (r.get_bool("scale_attn_by_inverse_layer_idx", false))
      fail(path, "scale_attn_by_inverse_layer_idx = true is not supported");
    c.positional_embedding = true;
    c.rope = false;
    c.gated_mlp = false;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    c.tied_embeddings = r.get_bool("tie_word_embeddings", true);
  } else if (c.arch == Arch::GptNeox) {
    // GPTNeoXConfig (Pythia): LayerNorm, parallel residual by default, partial rotary, fused
    // per-head q/k/v (arch.cpp), biases everywhere, an untied output.
    c.d_model = r.get_int("hidden_size", 6144);
    c.n_layers = r.get_int("num_hidden_layers", 44);
    c.n_heads = r.get_int("num_attention_heads", 64);
    c.n_kv_heads = c.n_heads;
    if (c.n_heads > 0 && c.d_model % c.n_heads != 0)
      fail(path, "hidden_size " + std::to_string(c.d_model) + " is not a multiple of num_attention_heads " +
                     std::to_string(c.n_heads));
    if (c.n_heads > 0) c.d_head = c.d_model / c.n_heads;
    c.d_mlp = r.get_int("intermediate_size", 24576);
    c.n_ctx = r.get_int("max_position_embeddings", 2048);
    c.vocab_size = r.get_int("vocab_size", 50432);
    c.norm = Norm::LayerNorm;
    c.norm_eps = r.get_float("layer_norm_eps", 1e-5);
    const std::string act = r.get_string("hidden_act", "gelu");
    if (act == "gelu") c.act = Act::Gelu;
    else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.act = Act::GeluNew;
    else fail(path, "unsupported hidden_act '" + act + "' (supported: gelu, gelu_new, gelu_pytorch_tanh)");
    c.positional_embedding = false;
    c.rope = true;
    // transformers < 5 writes rotary_emb_base / rotary_pct; 5 writes rope_parameters
    // {rope_theta, partial_rotary_factor}, read by read_rope.
    double pct = r.get_float("rotary_pct", r.get_float("partial_rotary_factor", 0.25));
    read_rope(r, c);
    if (!r.has("rope_parameters") && !r.has("rope_theta")) c.rope_theta = r.get_float("rotary_emb_base", 10000.0);
    if (r.has("rope_parameters") && r.j["rope_parameters"].is_object()) {
      JsonReader s{r.j["rope_parameters"], path};
      pct = s.get_float("partial_rotary_factor", pct);
    }
    if (!(pct > 0.0 && pct <= 1.0)) fail(path, "rotary_pct must lie in (0, 1], found " + std::to_string(pct));
    const int64_t dr = static_cast<int64_t>(static_cast<double>(c.d_head) * pct);  // int(), as transformers
    if (dr < 2 || dr % 2 != 0)
      fail(path, "rotary_pct " + std::to_string(pct) + " of head width " + std::to_string(c.d_head) + " gives " +
                     std::to_string(dr) + " rotated dims; an even number >= 2 is needed");
    c.block.rotary_dims = dr == c.d_head ? 0 : dr;
    c.block.parallel = r.get_bool("use_parallel_residual", true);
    c.gated_mlp = false;
    c.qkv_bias = c.o_bias = r.get_bool("attention_bias", true);
    c.mlp_bias = true;
    c.tied_embeddings = r.get_bool("tie_word_embeddings", false);
  } else {
    c.d_model = r.get_int("hidden_size");
    c.n_layers = r.get_int("num_hidden_layers");
    c.n_heads = r.get_int("num_attention_heads");
    c.n_kv_heads = r.get_int("num_key_value_heads", c.n_heads);
    if (r.has("head_dim")) c.d_head = r.get_int("head_dim");
    else if (c.n_heads > 0) {
      if (c.d_model % c.n_heads != 0)
        fail(path, "hidden_size " + std::to_string(c.d_model) +
                       " is not a multiple of num_attention_heads " + std::to_string(c.n_heads));
      c.d_head = c.d_model / c.n_heads;
    }
    c.d_mlp = r.get_int("intermediate_size");
    c.n_ctx = r.get_int("max_position_embeddings", c.arch == Arch::Qwen2 ? 32768 : 2048);
    c.vocab_size = r.get_int("vocab_size", c.arch == Arch::Qwen2 ? 151936 : 32000);
    c.norm = Norm::RMSNorm;
    c.norm_eps = r.get_float("rms_norm_eps", 1e-6);
    const std::string act = r.get_string("hidden_act", "silu");
    if (act != "silu") fail(path, "unsupported hidden_act '" + act + "' (supported: silu)");
    c.act = Act::Silu;
    c.positional_embedding = false;
    c.rope = true;
    read_rope(r, c);
    c.gated_mlp = true;
    if (c.arch == Arch::Qwen2) {
      c.qkv_bias = true;  // Qwen2Attention: q/k/v always biased, o never
      c.o_bias = false;
      c.mlp_bias = false;
      if (r.get_bool("use_sliding_window", false))
        fail(path, "use_sliding_window = true is not supported");
    } else {
      c.qkv_bias = c.o_bias = r.get_bool("attention_bias", false);
      c.mlp_bias = r.get_bool("mlp_bias", false);
    }
    c.tied_embeddings = r.get_bool("tie_word_embeddings", false);
    if (r.get_float("partial_rotary_factor", 1.0) != 1.0)
      fail(path, "partial_rotary_factor != 1 is not supported");
  }
  validate(c, path);
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
    c.qkv_bias = c.arch == Arch::Qwen2 || has_t("blk.0.attn_q.bias");
    c.o_bias = has_t("blk.0.attn_output.bias");
    c.mlp_bias = has_t("blk.0.ffn_up.bias");
  }
  validate(c, path);
  return c;
}

}  // namespace model_detail
}  // namespace edgewise
