// Architectures as data: the canonical tensor set (llama.cpp names, torch [out, in] order) and,
// per architecture and checkpoint format, a table from checkpoint names to canonical names with
// flags (optional, transposed, tied, fused q/k/v, rotary-permuted). Adding an architecture
// means adding rows here, its hyper-parameters in config.cpp and, where its block differs, a
// field of BlockShape (model.h) read by the block primitives (block.h); see docs/ADDING.md.
// Not here: reading files (load.cpp), hyper-parameters (config.cpp).
#include "internal.h"

#include "edgewise/error.h"

namespace edgewise {

const char* arch_name(Arch a) { return enum_name(kArchNames, a); }

namespace model_detail {

namespace {

struct CanonicalInfo {
  CTensor t;
  const char* name;  // "{l}" = layer
};

constexpr CanonicalInfo kCanonical[] = {
    {CTensor::TokenEmbd, "token_embd.weight"},
    {CTensor::PosEmbd, "position_embd.weight"},
    {CTensor::AttnNorm, "blk.{l}.attn_norm.weight"},
    {CTensor::AttnNormB, "blk.{l}.attn_norm.bias"},
    {CTensor::AttnQ, "blk.{l}.attn_q.weight"},
    {CTensor::AttnQB, "blk.{l}.attn_q.bias"},
    {CTensor::AttnK, "blk.{l}.attn_k.weight"},
    {CTensor::AttnKB, "blk.{l}.attn_k.bias"},
    {CTensor::AttnV, "blk.{l}.attn_v.weight"},
    {CTensor::AttnVB, "blk.{l}.attn_v.bias"},
    {CTensor::AttnO, "blk.{l}.attn_output.weight"},
    {CTensor::AttnOB, "blk.{l}.attn_output.bias"},
    {CTensor::FfnNorm, "blk.{l}.ffn_norm.weight"},
    {CTensor::FfnNormB, "blk.{l}.ffn_norm.bias"},
    {CTensor::FfnGate, "blk.{l}.ffn_gate.weight"},
    {CTensor::FfnGateB, "blk.{l}.ffn_gate.bias"},
    {CTensor::FfnUp, "blk.{l}.ffn_up.weight"},
    {CTensor::FfnUpB, "blk.{l}.ffn_up.bias"},
    {CTensor::FfnDown, "blk.{l}.ffn_down.weight"},
    {CTensor::FfnDownB, "blk.{l}.ffn_down.bias"},
    {CTensor::OutNorm, "output_norm.weight"},
    {CTensor::OutNormB, "output_norm.bias"},
    {CTensor::Output, "output.weight"},
    {CTensor::AttnQNorm, "blk.{l}.attn_q_norm.weight"},
    {CTensor::AttnKNorm, "blk.{l}.attn_k_norm.weight"},
    {CTensor::AttnPostNorm, "blk.{l}.post_attention_norm.weight"},
    {CTensor::FfnPostNorm, "blk.{l}.post_ffw_norm.weight"},
};

const CanonicalInfo& info(CTensor t) { return kCanonical[static_cast<int>(t)]; }

using C = CTensor;

// Tracr (tools/tracr/export.py): the canonical names themselves, [out, in]; no norms.
const std::vector<ArchRow> kHfTracr = {
    {C::TokenEmbd, "token_embd.weight", 0},
    {C::PosEmbd, "position_embd.weight", 0},
    {C::AttnQ, "blk.{l}.attn_q.weight", 0},
    {C::AttnQB, "blk.{l}.attn_q.bias", 0},
    {C::AttnK, "blk.{l}.attn_k.weight", 0},
    {C::AttnKB, "blk.{l}.attn_k.bias", 0},
    {C::AttnV, "blk.{l}.attn_v.weight", 0},
    {C::AttnVB, "blk.{l}.attn_v.bias", 0},
    {C::AttnO, "blk.{l}.attn_output.weight", 0},
    {C::AttnOB, "blk.{l}.attn_output.bias", 0},
    {C::FfnUp, "blk.{l}.ffn_up.weight", 0},
    {C::FfnUpB, "blk.{l}.ffn_up.bias", 0},
    {C::FfnDown, "blk.{l}.ffn_down.weight", 0},
    {C::FfnDownB, "blk.{l}.ffn_down.bias", 0},
    {C::Output, "output.weight", 0},
};

// Hugging Face GPT-2 (GPT2LMHeadModel). Conv1D weights are [in, out]; c_attn is [D, 3D] = q|k|v
// along the output axis. Hub checkpoints of the original GPT-2 lack the "transformer." prefix.
const std::vector<ArchRow> kHfGpt2 = {
    {C::TokenEmbd, "transformer.wte.weight|wte.weight", 0},
    {C::PosEmbd, "transformer.wpe.weight|wpe.weight", 0},
    {C::AttnNorm, "transformer.h.{l}.ln_1.weight|h.{l}.ln_1.weight", 0},
    {C::AttnNormB, "transformer.h.{l}.ln_1.bias|h.{l}.ln_1.bias", 0},
    {C::AttnQ, "transformer.h.{l}.attn.c_attn.weight|h.{l}.attn.c_attn.weight", kTransposed | kFusedQkv},
    {C::AttnK, "transformer.h.{l}.attn.c_attn.weight|h.{l}.attn.c_attn.weight", kTransposed | kFusedQkv},
    {C::AttnV, "transformer.h.{l}.attn.c_attn.weight|h.{l}.attn.c_attn.weight", kTransposed | kFusedQkv},
    {C::AttnQB, "transformer.h.{l}.attn.c_attn.bias|h.{l}.attn.c_attn.bias", kFusedQkv},
    {C::AttnKB, "transformer.h.{l}.attn.c_attn.bias|h.{l}.attn.c_attn.bias", kFusedQkv},
    {C::AttnVB, "transformer.h.{l}.attn.c_attn.bias|h.{l}.attn.c_attn.bias", kFusedQkv},
    {C::AttnO, "transformer.h.{l}.attn.c_proj.weight|h.{l}.attn.c_proj.weight", kTransposed},
    {C::AttnOB, "transformer.h.{l}.attn.c_proj.bias|h.{l}.attn.c_proj.bias", 0},
    {C::FfnNorm, "transformer.h.{l}.ln_2.weight|h.{l}.ln_2.weight", 0},
    {C::FfnNormB, "transformer.h.{l}.ln_2.bias|h.{l}.ln_2.bias", 0},
    {C::FfnUp, "transformer.h.{l}.mlp.c_fc.weight|h.{l}.mlp.c_fc.weight", kTransposed},
    {C::FfnUpB, "transformer.h.{l}.mlp.c_fc.bias|h.{l}.mlp.c_fc.bias", 0},
    {C::FfnDown, "transformer.h.{l}.mlp.c_proj.weight|h.{l}.mlp.c_proj.weight", kTransposed},
    {C::FfnDownB, "transformer.h.{l}.mlp.c_proj.bias|h.{l}.mlp.c_proj.bias", 0},
    {C::OutNorm, "transformer.ln_f.weight|ln_f.weight", 0},
    {C::OutNormB, "transformer.ln_f.bias|ln_f.bias", 0},
    {C::Output, "lm_head.weight", kOptional | kTied},
};

// Hugging Face Llama / Qwen2 (LlamaForCausalLM, Qwen2ForCausalLM): nn.Linear [out, in].
const std::vector<ArchRow> kHfLlama = {
    {C::TokenEmbd, "model.embed_tokens.weight", 0},
    {C::AttnNorm, "model.layers.{l}.input_layernorm.weight", 0},
    {C::AttnQ, "model.layers.{l}.self_attn.q_proj.weight", 0},
    {C::AttnQB, "model.layers.{l}.self_attn.q_proj.bias", 0},
    {C::AttnK, "model.layers.{l}.self_attn.k_proj.weight", 0},
    {C::AttnKB, "model.layers.{l}.self_attn.k_proj.bias", 0},
    {C::AttnV, "model.layers.{l}.self_attn.v_proj.weight", 0},
    {C::AttnVB, "model.layers.{l}.self_attn.v_proj.bias", 0},
    {C::AttnO, "model.layers.{l}.self_attn.o_proj.weight", 0},
    {C::AttnOB, "model.layers.{l}.self_attn.o_proj.bias", 0},
    {C::FfnNorm, "model.layers.{l}.post_attention_layernorm.weight", 0},
    {C::FfnGate, "model.layers.{l}.mlp.gate_proj.weight", 0},
    {C::FfnGateB, "model.layers.{l}.mlp.gate_proj.bias", 0},
    {C::FfnUp, "model.layers.{l}.mlp.up_proj.weight", 0},
    {C::FfnUpB, "model.layers.{l}.mlp.up_proj.bias", 0},
    {C::FfnDown, "model.layers.{l}.mlp.down_proj.weight", 0},
    {C::FfnDownB, "model.layers.{l}.mlp.down_proj.bias", 0},
    {C::OutNorm, "model.norm.weight", 0},
    {C::Output, "lm_head.weight", kOptional | kTied},
};

// Hugging Face GPT-NeoX (GPTNeoXForCausalLM; Pythia): nn.Linear [out, in]; query_key_value is
// [H * 3 * Dh, D] grouped by head (kFusedQkvHeads); the output is untied by default.
const std::vector<ArchRow> kHfGptNeox = {
    {C::TokenEmbd, "gpt_neox.embed_in.weight", 0},
    {C::AttnNorm, "gpt_neox.layers.{l}.input_layernorm.weight", 0},
    {C::AttnNormB, "gpt_neox.layers.{l}.input_layernorm.bias", 0},
    {C::AttnQ, "gpt_neox.layers.{l}.attention.query_key_value.weight", kFusedQkvHeads},
    {C::AttnK, "gpt_neox.layers.{l}.attention.query_key_value.weight", kFusedQkvHeads},
    {C::AttnV, "gpt_neox.layers.{l}.attention.query_key_value.weight", kFusedQkvHeads},
    {C::AttnQB, "gpt_neox.layers.{l}.attention.query_key_value.bias", kFusedQkvHeads},
    {C::AttnKB, "gpt_neox.layers.{l}.attention.query_key_value.bias", kFusedQkvHeads},
    {C::AttnVB, "gpt_neox.layers.{l}.attention.query_key_value.bias", kFusedQkvHeads},
    {C::AttnO, "gpt_neox.layers.{l}.attention.dense.weight", 0},
    {C::AttnOB, "gpt_neox.layers.{l}.attention.dense.bias", 0},
    {C::FfnNorm, "gpt_neox.layers.{l}.post_attention_layernorm.weight", 0},
    {C::FfnNormB, "gpt_neox.layers.{l}.post_attention_layernorm.bias", 0},
    {C::FfnUp, "gpt_neox.layers.{l}.mlp.dense_h_to_4h.weight", 0},
    {C::FfnUpB, "gpt_neox.layers.{l}.mlp.dense_h_to_4h.bias", 0},
    {C::FfnDown, "gpt_neox.layers.{l}.mlp.dense_4h_to_h.weight", 0},
    {C::FfnDownB, "gpt_neox.layers.{l}.mlp.dense_4h_to_h.bias", 0},
    {C::OutNorm, "gpt_neox.final_layer_norm.weight", 0},
    {C::OutNormB, "gpt_neox.final_layer_norm.bias", 0},
    {C::Output, "embed_out.weight", kOptional | kTied},
};

// GGUF llama (llama.cpp convert_hf_to_gguf.py LlamaModel): shapes reversed into torch order at
// load; Q and K rows permuted for llama.cpp's interleaved rotary layout.
const std::vector<ArchRow> kGgufLlama = {
    {C::TokenEmbd, "token_embd.weight", 0},
    {C::AttnNorm, "blk.{l}.attn_norm.weight", 0},
    {C::AttnQ, "blk.{l}.attn_q.weight", kRotaryPermuted},
    {C::AttnQB, "blk.{l}.attn_q.bias", kRotaryPermuted},
    {C::AttnK, "blk.{l}.attn_k.weight", kRotaryPermuted},
    {C::AttnKB, "blk.{l}.attn_k.bias", kRotaryPermuted},
    {C::AttnV, "blk.{l}.attn_v.weight", 0},
    {C::AttnVB, "blk.{l}.attn_v.bias", 0},
    {C::AttnO, "blk.{l}.attn_output.weight", 0},
    {C::AttnOB, "blk.{l}.attn_output.bias", 0},
    {C::FfnNorm, "blk.{l}.ffn_norm.weight", 0},
    {C::FfnGate, "blk.{l}.ffn_gate.weight", 0},
    {C::FfnGateB, "blk.{l}.ffn_gate.bias", 0},
    {C::FfnUp, "blk.{l}.ffn_up.weight", 0},
    {C::FfnUpB, "blk.{l}.ffn_up.bias", 0},
    {C::FfnDown, "blk.{l}.ffn_down.weight", 0},
    {C::FfnDownB, "blk.{l}.ffn_down.bias", 0},
    {C::OutNorm, "output_norm.weight", 0},
    {C::Output, "output.weight", kOptional | kTied},
};

// GGUF qwen2: the llama names, but llama.cpp runs Qwen2 with NeoX rotary (HF's rotate_half), so
// the converter does not permute Q and K.
const std::vector<ArchRow> kGgufQwen2 = [] {
  std::vector<ArchRow> r = kGgufLlama;
  for (auto& row : r) row.flags &= ~kRotaryPermuted;
  return r;
}();

// GGUF gpt2 (convert_hf_to_gguf.py GPT2Model): Conv1D weights already transposed to [out, in];
// fused attn_qkv kept.
const std::vector<ArchRow> kGgufGpt2 = {
    {C::TokenEmbd, "token_embd.weight", 0},
    {C::PosEmbd, "position_embd.weight", 0},
    {C::AttnNorm, "blk.{l}.attn_norm.weight", 0},
    {C::AttnNormB, "blk.{l}.attn_norm.bias", 0},
    {C::AttnQ, "blk.{l}.attn_qkv.weight", kFusedQkv},
    {C::AttnK, "blk.{l}.attn_qkv.weight", kFusedQkv},
    {C::AttnV, "blk.{l}.attn_qkv.weight", kFusedQkv},
    {C::AttnQB, "blk.{l}.attn_qkv.bias", kFusedQkv},
    {C::AttnKB, "blk.{l}.attn_qkv.bias", kFusedQkv},
    {C::AttnVB, "blk.{l}.attn_qkv.bias", kFusedQkv},
    {C::AttnO, "blk.{l}.attn_output.weight", 0},
    {C::AttnOB, "blk.{l}.attn_output.bias", 0},
    {C::FfnNorm, "blk.{l}.ffn_norm.weight", 0},
    {C::FfnNormB, "blk.{l}.ffn_norm.bias", 0},
    {C::FfnUp, "blk.{l}.ffn_up.weight", 0},
    {C::FfnUpB, "blk.{l}.ffn_up.bias", 0},
    {C::FfnDown, "blk.{l}.ffn_down.weight", 0},
    {C::FfnDownB, "blk.{l}.ffn_down.bias", 0},
    {C::OutNorm, "output_norm.weight", 0},
    {C::OutNormB, "output_norm.bias", 0},
    {C::Output, "output.weight", kOptional | kTied},
};

// Hugging Face Gemma 3 text models (Gemma3ForCausalLM, model_type gemma3_text): nn.Linear
// [out, in]; every norm multiplies by 1 + weight (kPlusOne); Gemma's post_attention_layernorm is
// the post-norm of attention, its pre_feedforward_layernorm the MLP's input norm.
const std::vector<ArchRow> kHfGemma3 = {
    {C::TokenEmbd, "model.embed_tokens.weight", 0},
    {C::AttnNorm, "model.layers.{l}.input_layernorm.weight", kPlusOne},
    {C::AttnQ, "model.layers.{l}.self_attn.q_proj.weight", 0},
    {C::AttnK, "model.layers.{l}.self_attn.k_proj.weight", 0},
    {C::AttnV, "model.layers.{l}.self_attn.v_proj.weight", 0},
    {C::AttnO, "model.layers.{l}.self_attn.o_proj.weight", 0},
    {C::AttnQNorm, "model.layers.{l}.self_attn.q_norm.weight", kPlusOne},
    {C::AttnKNorm, "model.layers.{l}.self_attn.k_norm.weight", kPlusOne},
    {C::AttnPostNorm, "model.layers.{l}.post_attention_layernorm.weight", kPlusOne},
    {C::FfnNorm, "model.layers.{l}.pre_feedforward_layernorm.weight", kPlusOne},
    {C::FfnGate, "model.layers.{l}.mlp.gate_proj.weight", 0},
    {C::FfnUp, "model.layers.{l}.mlp.up_proj.weight", 0},
    {C::FfnDown, "model.layers.{l}.mlp.down_proj.weight", 0},
    {C::FfnPostNorm, "model.layers.{l}.post_feedforward_layernorm.weight", kPlusOne},
    {C::OutNorm, "model.norm.weight", kPlusOne},
    {C::Output, "lm_head.weight", kOptional | kTied},
};

// GGUF gemma3 (llama.cpp convert_hf_to_gguf.py Gemma3Model): the converter writes each norm's
// 1 + weight, the multiplier itself; q / k not permuted (llama.cpp turns Gemma with NeoX rotary).
const std::vector<ArchRow> kGgufGemma3 = {
    {C::TokenEmbd, "token_embd.weight", 0},
    {C::AttnNorm, "blk.{l}.attn_norm.weight", 0},
    {C::AttnQ, "blk.{l}.attn_q.weight", 0},
    {C::AttnK, "blk.{l}.attn_k.weight", 0},
    {C::AttnV, "blk.{l}.attn_v.weight", 0},
    {C::AttnO, "blk.{l}.attn_output.weight", 0},
    {C::AttnQNorm, "blk.{l}.attn_q_norm.weight", 0},
    {C::AttnKNorm, "blk.{l}.attn_k_norm.weight", 0},
    {C::AttnPostNorm, "blk.{l}.post_attention_norm.weight", 0},
    {C::FfnNorm, "blk.{l}.ffn_norm.weight", 0},
    {C::FfnGate, "blk.{l}.ffn_gate.weight", 0},
    {C::FfnUp, "blk.{l}.ffn_up.weight", 0},
    {C::FfnDown, "blk.{l}.ffn_down.weight", 0},
    {C::FfnPostNorm, "blk.{l}.post_ffw_norm.weight", 0},
    {C::OutNorm, "output_norm.weight", 0},
    {C::Output, "output.weight", kOptional | kTied},
};

}  // namespace

std::string expand_layer(const std::string& pattern, int64_t layer) {
  std::string r = pattern;
  const std::string key = "{l}";
  for (size_t p = r.find(key); p != std::string::npos; p = r.find(key, p))
    r.replace(p, key.size(), std::to_string(layer));
  return r;
}

std::string canonical_name(CTensor t, int64_t layer) { return expand_layer(info(t).name, layer); }

bool canonical_per_layer(CTensor t) {
  return std::string(info(t).name).find("{l}") != std::string::npos;
}

std::vector<CTensor> canonical_used(const ModelConfig& c) {
  const bool ln = c.norm == Norm::LayerNorm, no_norm = c.norm == Norm::None;
  std::vector<CTensor> r;
  for (const auto& ci : kCanonical) {
    bool use = true;
    switch (ci.t) {
      case C::AttnNorm: case C::FfnNorm: case C::OutNorm: use = !no_norm; break;
      case C::PosEmbd: use = c.positional_embedding; break;
      case C::AttnNormB: case C::FfnNormB: case C::OutNormB: use = ln; break;
      case C::AttnQB: case C::AttnKB: case C::AttnVB: use = c.qkv_bias; break;
      case C::AttnOB: use = c.o_bias; break;
      case C::FfnGate: use = c.gated_mlp; break;
      case C::FfnGateB: use = c.gated_mlp && c.mlp_bias; break;
      case C::FfnUpB: case C::FfnDownB: use = c.mlp_bias; break;
      case C::AttnQNorm: case C::AttnKNorm: use = c.block.qk_norm; break;
      case C::AttnPostNorm: case C::FfnPostNorm: use = c.block.post_norms; break;
      default: break;
    }
    if (use) r.push_back(ci.t);
  }
  return r;
}

std::vector<int64_t> canonical_shape(CTensor t, const ModelConfig& c) {
  const int64_t D = c.d_model, Q = c.n_heads * c.d_head, KV = c.n_kv_heads * c.d_head,
                F = c.d_mlp, V = c.vocab_size;
  switch (t) {
    case C::TokenEmbd: return {V, D};
    case C::Output: return {c.n_outputs > 0 ? c.n_outputs : V, D};
    case C::PosEmbd: return {c.n_ctx, D};
    case C::AttnNorm: case C::AttnNormB: case C::FfnNorm: case C::FfnNormB:
    case C::OutNorm: case C::OutNormB: case C::AttnOB: case C::FfnDownB:
    case C::AttnPostNorm: case C::FfnPostNorm: return {D};
    case C::AttnQNorm: case C::AttnKNorm: return {c.d_head};
    case C::AttnQ: return {Q, D};
    case C::AttnQB: return {Q};
    case C::AttnK: case C::AttnV: return {KV, D};
    case C::AttnKB: case C::AttnVB: return {KV};
    case C::AttnO: return {D, Q};
    case C::FfnGate: case C::FfnUp: return {F, D};
    case C::FfnGateB: case C::FfnUpB: return {F};
    case C::FfnDown: return {D, F};
  }
  return {};
}

const std::vector<ArchRow>& arch_rows_hf(Arch a) {
  switch (a) {
    case Arch::Gpt2: return kHfGpt2;
    case Arch::Llama: case Arch::Qwen2: return kHfLlama;
    case Arch::GptNeox: return kHfGptNeox;
    case Arch::Tracr: return kHfTracr;
    case Arch::Gemma3: return kHfGemma3;
  }
  return kHfLlama;
}

const std::vector<ArchRow>& arch_rows_gguf(Arch a) {
  switch (a) {
    case Arch::Gpt2: return kGgufGpt2;
    case Arch::Llama: return kGgufLlama;
    case Arch::Qwen2: return kGgufQwen2;
    case Arch::GptNeox:
      fail("", "GGUF files of architecture gptneox are not supported (load the Hugging Face safetensors directory)");
    case Arch::Tracr:
      fail("", "tracr models are safetensors folders written by tools/tracr/export.py, not GGUF files");
    case Arch::Gemma3: return kGgufGemma3;
  }
  return kGgufLlama;
}

Arch arch_from_string(const std::string& s, const std::string& where) {
  if (s == "gemma3_text") return Arch::Gemma3;  // transformers' model_type of the text-only model
  for (const auto& e : kArchNames)
    if (s == e.name) return e.value;
  std::string known;
  for (const auto& e : kArchNames) known += (known.empty() ? "" : ", ") + std::string(e.name);
  fail("", "unsupported architecture '" + s + "' in " + where + " (supported: " + known + ")");
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace model_detail
}  // namespace edgewise
