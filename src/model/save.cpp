// Saving: a model (e.g. a fine-tuned copy) as a Hugging Face directory that transformers and
// edgewise both load: config.json written from the ModelConfig, model.safetensors in the HF
// checkpoint names and layouts (arch.cpp's tables run backwards: GPT-2's Conv1D weights
// transposed back to [in, out], its q/k/v fused into c_attn), and the tokenizer.
// Not here: reading (load.cpp, config.cpp), the safetensors format itself (io/safetensors.cpp).
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

#include "edgewise/circuit.h"
#include "edgewise/error.h"
#include "edgewise/safetensors.h"
#include "internal.h"

namespace edgewise {

using nlohmann::json;
using namespace model_detail;
namespace fs = std::filesystem;

std::string hf_config_json(const ModelConfig& c) {
  json j;
  auto ids = [&] {
    if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
    if (c.eos_token_id) j["eos_token_id"] = *c.eos_token_id;
  };
  // The sizes Llama, Qwen2 and Gemma 3 configs write under the same keys.
  auto llama_sizes = [&] {
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.d_mlp;
    j["num_hidden_layers"] = c.n_layers;
    j["num_attention_heads"] = c.n_heads;
    j["num_key_value_heads"] = c.n_kv_heads;
    j["head_dim"] = c.d_head;
    j["max_position_embeddings"] = c.n_ctx;
    j["rms_norm_eps"] = c.norm_eps;
  };
  if (c.arch == Arch::Tracr) fail("save", "tracr models are written by tools/tracr/export.py; config.json cannot express them");
  if (c.arch == Arch::Gpt2) {
    j["architectures"] = {"GPT2LMHeadModel"};
    j["model_type"] = "gpt2";
    j["n_embd"] = c.d_model;
    j["n_layer"] = c.n_layers;
    j["n_head"] = c.n_heads;
    j["n_inner"] = c.d_mlp;
    j["n_positions"] = c.n_ctx;
    j["n_ctx"] = c.n_ctx;
    j["vocab_size"] = c.vocab_size;
    j["layer_norm_epsilon"] = c.norm_eps;
    j["activation_function"] = c.act == Act::Gelu ? "gelu" : "gelu_new";
    j["tie_word_embeddings"] = c.tied_embeddings;
    ids();
  } else if (c.arch == Arch::GptNeox) {
    if (c.qkv_bias != c.o_bias || !c.mlp_bias)
      fail("config.json", "GPT-NeoX's attention_bias covers q/k/v and o together and its MLP is always biased");
    j["architectures"] = {"GPTNeoXForCausalLM"};
    j["model_type"] = "gpt_neox";
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.d_mlp;
    j["num_hidden_layers"] = c.n_layers;
    j["num_attention_heads"] = c.n_heads;
    j["hidden_act"] = c.act == Act::Gelu ? "gelu" : "gelu_new";
    j["max_position_embeddings"] = c.n_ctx;
    j["layer_norm_eps"] = c.norm_eps;
    j["use_parallel_residual"] = c.block.parallel;
    j["attention_bias"] = c.qkv_bias;
    const double pct = static_cast<double>(rotary_dims(c)) / static_cast<double>(c.d_head);
    j["rotary_pct"] = pct;  // transformers < 5
    j["rotary_emb_base"] = c.rope_theta;
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}, {"partial_rotary_factor", pct}};
    j["tie_word_embeddings"] = c.tied_embeddings;
    j["vocab_size"] = c.vocab_size;
    ids();
  } else if (c.arch == Arch::Gemma3) {
    if (c.qkv_bias || c.o_bias || c.mlp_bias) fail("config.json", "a Gemma 3 model has no biases");
    j["architectures"] = {"Gemma3ForCausalLM"};
    j["model_type"] = "gemma3_text";
    llama_sizes();
    j["hidden_activation"] = "gelu_pytorch_tanh";
    // attn_scale = query_pre_attn_scalar^-0.5; written back as the scalar (rounded to an integer
    // where it is one, as Gemma's configs write it).
    const double qs = c.block.attn_scale > 0 ? 1.0 / (c.block.attn_scale * c.block.attn_scale) : c.d_head;
    j["query_pre_attn_scalar"] = std::abs(qs - std::round(qs)) < 1e-6 ? json(std::llround(qs)) : json(qs);
    j["sliding_window"] = c.block.sliding_window;
    json types = json::array();
    for (int64_t l = 0; l < c.n_layers; ++l) types.push_back(c.block.is_sliding(l) ? "sliding_attention" : "full_attention");
    j["layer_types"] = types;
    json full = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
    if (c.rope_scaling.type == "linear") full = {{"rope_type", "linear"}, {"rope_theta", c.rope_theta}, {"factor", c.rope_scaling.factor}};
    else if (!c.rope_scaling.type.empty()) fail("config.json", "Gemma 3 supports linear rope scaling only");
    j["rope_parameters"] = {{"full_attention", full},
                            {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", c.block.rope_theta_local}}}};
    j["final_logit_softcapping"] = nullptr;
    j["attn_logit_softcapping"] = nullptr;
    j["tie_word_embeddings"] = c.tied_embeddings;
    j["vocab_size"] = c.vocab_size;
    ids();
  } else {
    const bool qwen = c.arch == Arch::Qwen2;
    if (qwen && (!c.qkv_bias || c.o_bias || c.mlp_bias))
      fail("config.json", "a Qwen2 model needs q/k/v biases and no o / MLP biases to be saved as Qwen2");
    if (!qwen && c.qkv_bias != c.o_bias)
      fail("config.json", "Llama's attention_bias covers q/k/v and o together; this model has " +
                              std::string(c.qkv_bias ? "q/k/v" : "o") + " biases only");
    j["architectures"] = {qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
    j["model_type"] = qwen ? "qwen2" : "llama";
    llama_sizes();
    j["hidden_act"] = "silu";
    j["rope_theta"] = c.rope_theta;
    if (c.rope_scaling.type.empty()) {
      j["rope_scaling"] = nullptr;
    } else {
      json rs = {{"rope_type", c.rope_scaling.type}, {"factor", c.rope_scaling.factor}};
      if (c.rope_scaling.type == "llama3") {
        rs["low_freq_factor"] = c.rope_scaling.low_freq_factor;
        rs["high_freq_factor"] = c.rope_scaling.high_freq_factor;
        rs["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
      }
      j["rope_scaling"] = rs;
    }
    if (qwen) {
      j["use_sliding_window"] = false;
    } else {
      j["attention_bias"] = c.qkv_bias;
      j["mlp_bias"] = c.mlp_bias;
    }
    j["tie_word_embeddings"] = c.tied_embeddings;
    j["vocab_size"] = c.vocab_size;
    ids();
  }
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

namespace {

std::string first_alternative(const char* pattern) {
  std::string s(pattern);
  return s.substr(0, s.find('|'));
}

// The HF checkpoint tensors of a model: name -> contiguous tensor in checkpoint layout.
std::vector<std::pair<std::string, at::Tensor>> hf_tensors(const Model& model) {
  const ModelConfig& c = model.config();
  const auto used_list = canonical_used(c);
  const std::set<CTensor> used(used_list.begin(), used_list.end());
  std::vector<std::pair<std::string, at::Tensor>> out;
  std::set<std::string> done;
  for (const ArchRow& row : arch_rows_hf(c.arch)) {
    if (!used.count(row.tensor)) continue;
    if ((row.flags & kTied) && c.tied_embeddings) continue;  // lm_head shares the embedding
    const int64_t n_layers = canonical_per_layer(row.tensor) ? c.n_layers : 1;
    for (int64_t l = 0; l < n_layers; ++l) {
      const std::string name = expand_layer(first_alternative(row.checkpoint), l);
      if (!done.insert(name).second) continue;  // GPT-2's fused q/k/v: three rows, one tensor
      at::Tensor t;
      if (row.flags & kFusedQkvHeads) {  // back to [H, 3, Dh, ...] grouped by head
        const bool bias = row.tensor == CTensor::AttnQB || row.tensor == CTensor::AttnKB ||
                          row.tensor == CTensor::AttnVB;
        std::vector<at::Tensor> parts;
        for (CTensor p : bias ? std::vector<CTensor>{CTensor::AttnQB, CTensor::AttnKB, CTensor::AttnVB}
                              : std::vector<CTensor>{CTensor::AttnQ, CTensor::AttnK, CTensor::AttnV}) {
          const at::Tensor& w = model.weight(canonical_name(p, l));
          std::vector<int64_t> per_head = {c.n_heads, c.d_head};
          if (w.dim() == 2) per_head.push_back(w.size(1));
          parts.push_back(w.reshape(per_head));
        }
        t = at::stack(parts, 1).reshape({3 * c.n_heads * c.d_head, -1});
        if (bias) t = t.view({-1});
      } else if (row.flags & kFusedQkv) {
        const bool bias = row.tensor == CTensor::AttnQB || row.tensor == CTensor::AttnKB ||
                          row.tensor == CTensor::AttnVB;
        const CTensor q = bias ? CTensor::AttnQB : CTensor::AttnQ, k = bias ? CTensor::AttnKB : CTensor::AttnK,
                      v = bias ? CTensor::AttnVB : CTensor::AttnV;
        t = at::cat({model.weight(canonical_name(q, l)), model.weight(canonical_name(k, l)),
                     model.weight(canonical_name(v, l))}, 0);
      } else {
        t = model.weight(canonical_name(row.tensor, l));
      }
      if (row.flags & kTransposed) t = t.t();
      if (row.flags & kPlusOne) t = (t.to(at::kFloat) - 1).to(t.scalar_type());  // the checkpoint stores w of 1 + w
      out.emplace_back(name, t.detach().to(at::kCPU).contiguous());  // written from host memory
    }
  }
  return out;
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream o(p, std::ios::binary);
  o << s;
  if (!o.flush()) fail(p.string(), "write failed (disk full?)");
}

json tokenizer_config(const Model& model) {
  const Tokenizer& tok = model.tokenizer();
  json j;
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  j["clean_up_tokenization_spaces"] = false;
  j["model_max_length"] = model.config().n_ctx;
  j["add_bos_token"] = tok.add_bos();
  if (tok.bos_id()) j["bos_token"] = tok.piece(*tok.bos_id());
  if (tok.eos_id()) j["eos_token"] = tok.piece(*tok.eos_id());
  return j;
}

}  // namespace

void save_hf_model(const Model& model, const std::string& dir, const std::map<std::string, std::string>& extra_files) {
  const ModelConfig& c = model.config();
  for (const auto& n : model.load_notes())
    if (n.find("rope_freqs") != std::string::npos)
      fail(dir, "the model's rotary frequencies come from a GGUF rope_freqs tensor, which config.json cannot "
                "express; save from the Hugging Face checkpoint instead");
  // A Tracr model's config.json (tools/tracr/export.py's: sizes, vocabularies, output space) is
  // not what hf_config_json writes; weights change, the configuration does not: it is copied.
  std::string config;
  if (c.arch == Arch::Tracr) {
    std::ifstream in(model.source().config, std::ios::binary);
    if (!in) fail(dir, "cannot save this Tracr model: its config.json (" + model.source().config + ") is not readable");
    std::ostringstream ss;
    ss << in.rdbuf();
    config = ss.str();
  } else {
    config = hf_config_json(c);
  }
  fs::path target(dir);
  if (target.filename().empty()) target = target.parent_path();
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  if (!fs::is_directory(parent)) fail(dir, "cannot write: directory " + parent.string() + " does not exist");
  if (fs::exists(target) && !fs::is_directory(target)) fail(dir, "exists and is not a directory");

  const fs::path tmp = parent / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec)) fail(tmp.string(), "cannot create directory: " + ec.message());
  try {
    write_text(tmp / "config.json", config);

    const auto tensors = hf_tensors(model);
    std::vector<StWriteTensor> st;
    for (const auto& [name, t] : tensors) {
      StDType dt;
      if (t.scalar_type() == at::kFloat) dt = StDType::F32;
      else if (t.scalar_type() == at::kBFloat16) dt = StDType::BF16;
      else fail(dir, "tensor '" + name + "' has a dtype the saver does not write (fp32 / bf16)");
      st.push_back({name, dt, t.sizes().vec(), t.data_ptr(), static_cast<uint64_t>(t.nbytes())});
    }
    safetensors_write((tmp / "model.safetensors").string(), st, {{"format", "pt"}});

    const ModelSource& src = model.source();
    bool copied = false;
    if (src.kind == ModelSource::Kind::HfDir) {
      for (const std::string& f : {src.tokenizer_json, src.vocab_json, src.merges_txt, src.tokenizer_config}) {
        if (f.empty()) continue;
        fs::copy_file(f, tmp / fs::path(f).filename(), fs::copy_options::overwrite_existing);
        copied = true;
      }
      const fs::path stm = fs::path(src.dir) / "special_tokens_map.json";
      if (copied && fs::exists(stm)) fs::copy_file(stm, tmp / "special_tokens_map.json");
    }
    // A word-level vocabulary (Tracr) lives in config.json: no tokenizer files.
    const bool tokenizer_files = model.has_tokenizer() && !model.tokenizer().word_level();
    if (!copied && tokenizer_files) write_text(tmp / "tokenizer.json", model.tokenizer().to_hf_json());
    if (!fs::exists(tmp / "tokenizer_config.json") && tokenizer_files)
      write_text(tmp / "tokenizer_config.json", tokenizer_config(model).dump(2) + "\n");
    json gen;
    if (c.bos_token_id) gen["bos_token_id"] = *c.bos_token_id;
    if (c.eos_token_id) gen["eos_token_id"] = *c.eos_token_id;
    write_text(tmp / "generation_config.json", gen.dump(2) + "\n");
    for (const auto& [name, content] : extra_files) write_text(tmp / name, content);

    // Replace: the old directory (if any) is moved aside, the new one renamed in, the old removed.
    const fs::path old = parent / ("." + target.filename().string() + ".old." + std::to_string(::getpid()));
    const bool had = fs::exists(target);
    if (had) fs::rename(target, old);
    fs::rename(tmp, target);
    if (had) fs::remove_all(old, ec);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    fail(dir, std::string("cannot write the model directory: ") + e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace edgewise
