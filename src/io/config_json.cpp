// Hugging Face config.json (gpt2, llama, qwen2, gpt_neox, gemma3_text, tracr) -> HfConfig; see
// include/edgewise/config_json.h. Defaults are those of the transformers config classes for keys
// a file leaves out. Every problem is an Error naming the file and the key.
// Not here: reading the file and the ModelConfig it becomes (src/model/config.cpp).
#include "edgewise/config_json.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>

#include "edgewise/error.h"

namespace edgewise {

using nlohmann::json;

namespace {

// The architectures config.json may name; the same names as kArchNames in edgewise/model.h
// (arch_from_string there maps the accepted name to its Arch).
constexpr const char* kModelTypes[] = {"gpt2", "llama", "qwen2", "gpt_neox", "gemma3_text", "tracr"};

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

// rope_scaling (transformers < 5) or rope_parameters (transformers >= 5).
void read_rope(const JsonReader& r, HfConfig& c) {
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

// Gemma 3's text model (transformers' Gemma3TextConfig): the Llama layout with post-norms, q/k
// norms, GeGLU, scaled embeddings and attention, and sliding-window layers with their own rotary
// base. Its rope_parameters are per layer type; older files say rope_theta and
// rope_local_base_freq.
void read_gemma3(const JsonReader& r, HfConfig& c) {
  c.d_model = r.get_int("hidden_size");
  c.n_layers = r.get_int("num_hidden_layers");
  c.n_heads = r.get_int("num_attention_heads");
  c.n_kv_heads = r.get_int("num_key_value_heads", c.n_heads);
  c.d_head = r.get_int("head_dim", 256);
  c.d_mlp = r.get_int("intermediate_size");
  c.n_ctx = r.get_int("max_position_embeddings", 131072);
  c.vocab_size = r.get_int("vocab_size", 262208);
  c.norm_eps = r.get_float("rms_norm_eps", 1e-6);
  const std::string act = r.get_string("hidden_activation", r.get_string("hidden_act", "gelu_pytorch_tanh"));
  if (act != "gelu_pytorch_tanh" && act != "gelu_new")
    fail(r.path, "unsupported hidden_activation '" + act + "' (Gemma 3: gelu_pytorch_tanh)");
  c.act = "gelu_new";  // the tanh approximation, in the gate of a GeGLU
  c.gated_mlp = true;
  c.rope = true;
  c.post_norms = c.qk_norm = true;
  c.embed_scale = std::sqrt(static_cast<double>(c.d_model));
  const double qs = r.get_float("query_pre_attn_scalar", 256);
  if (!(qs > 0)) fail(r.path, "query_pre_attn_scalar must be positive, found " + std::to_string(qs));
  c.attn_scale = 1.0 / std::sqrt(qs);
  for (const char* k : {"final_logit_softcapping", "attn_logit_softcapping"})
    if (r.has(k)) fail(r.path, std::string(k) + " is set; soft-capping is not supported (Gemma 3 has none)");
  if (r.get_bool("use_bidirectional_attention", false))
    fail(r.path, "use_bidirectional_attention = true is not supported (a causal language model is expected)");
  if (r.get_bool("attention_bias", false)) fail(r.path, "attention_bias = true is not supported for gemma3_text");
  c.qkv_bias = c.o_bias = c.mlp_bias = false;
  c.tied_embeddings = r.get_bool("tie_word_embeddings", true);
  c.sliding_window = r.get_int("sliding_window", 4096);
  if (c.sliding_window <= 0) fail(r.path, "sliding_window must be positive, found " + std::to_string(c.sliding_window));
  c.sliding.assign(c.n_layers, false);
  if (r.has("layer_types")) {
    const json& lt = r.j["layer_types"];
    if (!lt.is_array() || static_cast<int64_t>(lt.size()) != c.n_layers)
      fail(r.path, "layer_types must be a list of " + std::to_string(c.n_layers) + " entries, found " + lt.dump().substr(0, 200));
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string t = lt[l].is_string() ? lt[l].get<std::string>() : "";
      if (t != "sliding_attention" && t != "full_attention")
        fail(r.path, "layer_types[" + std::to_string(l) + "] is " + lt[l].dump() +
                         " (expected \"sliding_attention\" or \"full_attention\")");
      c.sliding[l] = t == "sliding_attention";
    }
  } else {
    const int64_t pattern = r.get_int("sliding_window_pattern", r.get_int("_sliding_window_pattern", 6));
    if (pattern <= 0) fail(r.path, "sliding_window_pattern must be positive");
    for (int64_t l = 0; l < c.n_layers; ++l) c.sliding[l] = (l + 1) % pattern != 0;
  }
  c.rope_theta = r.get_float("rope_theta", 1000000.0);
  c.rope_theta_local = r.get_float("rope_local_base_freq", 10000.0);
  if (r.has("rope_parameters") && r.j["rope_parameters"].is_object() && r.j["rope_parameters"].contains("full_attention")) {
    const json& rp = r.j["rope_parameters"];
    for (const char* kind : {"full_attention", "sliding_attention"}) {
      if (!rp.contains(kind)) continue;
      if (!rp[kind].is_object()) fail(r.path, std::string("rope_parameters.") + kind + " is not a JSON object");
      JsonReader s{rp[kind], r.path};
      const bool full = std::string(kind) == "full_attention";
      double& theta = full ? c.rope_theta : c.rope_theta_local;
      theta = s.get_float("rope_theta", theta);
      const std::string type = s.get_string("rope_type", "default");
      if (type == "default") continue;
      if (type != "linear" || !full)
        fail(r.path, std::string("rope_parameters.") + kind + ": unsupported rope_type '" + type +
                         "' (supported: default; linear for full_attention)");
      c.rope_scaling.type = "linear";
      c.rope_scaling.factor = s.get_float("factor", 1.0);
    }
  } else if (r.has("rope_scaling")) {
    HfConfig tmp;
    read_rope(r, tmp);
    if (tmp.rope_scaling.type == "llama3") fail(r.path, "llama3 rope scaling is not supported for gemma3_text");
    c.rope_scaling = tmp.rope_scaling;
  }
}

}  // namespace

void hf_config_validate(const HfConfig& c, const std::string& where) {
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

HfConfig hf_config_parse(const std::string& path, const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) fail(path, "not a JSON object");
  JsonReader r{j, path};
  if (!r.has("model_type")) fail(path, "missing key 'model_type' (supported: gpt2, llama, qwen2, gpt_neox, gemma3_text, tracr)");
  HfConfig c;
  c.model_type = r.get_string("model_type", "");
  bool known = false;
  std::string names;
  for (const char* t : kModelTypes) {
    known = known || c.model_type == t;
    names += (names.empty() ? "" : ", ") + std::string(t);
  }
  if (!known) fail("", "unsupported architecture '" + c.model_type + "' in " + path + " (supported: " + names + ")");
  c.bos_token_id = r.token_id("bos_token_id");
  c.eos_token_id = r.token_id("eos_token_id");

  if (c.model_type == "tracr") {
    // tools/tracr/export.py's config: sizes, the input vocabulary (BOS first), the output space.
    c.d_model = r.get_int("d_model");
    c.n_layers = r.get_int("n_layers");
    c.n_heads = c.n_kv_heads = r.get_int("n_heads");
    c.d_head = r.get_int("d_head");
    c.d_mlp = r.get_int("d_mlp");
    const int64_t max_len = r.get_int("max_seq_len");
    if (max_len <= 0 || max_len > (int64_t{1} << 30))
      fail(path, "max_seq_len must lie in [1, 2^30], found " + std::to_string(max_len));
    c.n_ctx = max_len + 1;  // BOS at position 0, then up to max_seq_len tokens
    auto list_size = [&](const char* k) -> int64_t {
      if (!r.has(k) || !r.j[k].is_array()) fail(path, std::string("missing list '") + k + "'");
      return static_cast<int64_t>(r.j[k].size());
    };
    c.vocab_size = list_size("input_vocab");
    const std::string out = r.get_string("output", "");
    if (out == "categorical") {
      c.n_outputs = list_size("output_values");
      if (c.n_outputs == 0) fail(path, "output_values is empty");
    }
    else if (out == "numerical") c.n_outputs = 1;
    else fail(path, "output must be \"categorical\" or \"numerical\", found \"" + out + "\"");
    if (r.get_string("activation", "relu") != "relu") fail(path, "tracr models use relu MLPs");
    if (r.get_string("norm", "none") != "none") fail(path, "tracr models have no norm");
    c.act = "relu";
    c.no_norm = true;
    c.causal = r.get_bool("causal", false);
    c.positional_embedding = true;
    c.rope = false;
    c.gated_mlp = false;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    c.tied_embeddings = false;
    c.bos_token_id = r.token_id("bos_id");
  } else if (c.model_type == "gpt2") {
    c.d_model = r.get_int("n_embd", 768);
    c.n_layers = r.get_int("n_layer", 12);
    c.n_heads = r.get_int("n_head", 12);
    c.n_kv_heads = c.n_heads;
    if (c.n_heads > 0) c.d_head = c.d_model / c.n_heads;
    if (c.n_heads > 0 && c.d_model % c.n_heads != 0)
      fail(path, "n_embd " + std::to_string(c.d_model) + " is not a multiple of n_head " +
                     std::to_string(c.n_heads));
    if (!r.has("n_inner") && (c.d_model > INT64_MAX / 4 || c.d_model < INT64_MIN / 4))
      fail(path, "n_embd " + std::to_string(c.d_model) + " is too large: the default n_inner, 4 x n_embd, overflows");
    c.d_mlp = r.has("n_inner") ? r.get_int("n_inner") : 4 * c.d_model;
    c.n_ctx = r.get_int("n_positions", 1024);
    c.vocab_size = r.get_int("vocab_size", 50257);
    c.layer_norm = true;
    c.norm_eps = r.get_float("layer_norm_epsilon", 1e-5);
    const std::string act = r.get_string("activation_function", "gelu_new");
    if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.act = "gelu_new";
    else if (act == "gelu") c.act = "gelu";
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
  } else if (c.model_type == "gpt_neox") {
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
    c.layer_norm = true;
    c.norm_eps = r.get_float("layer_norm_eps", 1e-5);
    const std::string act = r.get_string("hidden_act", "gelu");
    if (act == "gelu") c.act = "gelu";
    else if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.act = "gelu_new";
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
    c.rotary_dims = dr == c.d_head ? 0 : dr;
    c.parallel = r.get_bool("use_parallel_residual", true);
    c.gated_mlp = false;
    c.qkv_bias = c.o_bias = r.get_bool("attention_bias", true);
    c.mlp_bias = true;
    c.tied_embeddings = r.get_bool("tie_word_embeddings", false);
  } else if (c.model_type == "gemma3_text") {
    read_gemma3(r, c);
  } else {  // llama, qwen2
    const bool qwen2 = c.model_type == "qwen2";
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
    c.n_ctx = r.get_int("max_position_embeddings", qwen2 ? 32768 : 2048);
    c.vocab_size = r.get_int("vocab_size", qwen2 ? 151936 : 32000);
    c.layer_norm = false;
    c.norm_eps = r.get_float("rms_norm_eps", 1e-6);
    const std::string act = r.get_string("hidden_act", "silu");
    if (act != "silu") fail(path, "unsupported hidden_act '" + act + "' (supported: silu)");
    c.act = "silu";
    c.positional_embedding = false;
    c.rope = true;
    read_rope(r, c);
    c.gated_mlp = true;
    if (qwen2) {
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
  hf_config_validate(c, path);
  return c;
}

}  // namespace edgewise
