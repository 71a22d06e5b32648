// Forward parity with transformers on small random-initialised GPT-2, Llama (grouped-query,
// untied, llama3 rope scaling, theta 50000) and Qwen2 (q/k/v bias, one key/value head, tied)
// checkpoints written by tests/reference/model_golden.py; the same weights as GGUF files;
// hooks (patterns vs transformers' attention weights, per-head results, replacement); the
// sharded checkpoint; bf16; and the errors of the safetensors reader and the loader.
//
// Tolerances (fp32): all three references run transformers' eager attention in fp32 on the same
// weights; only summation order differs (MKL GEMM blocking, SDPA vs matmul+softmax). With
// |logits| ~ 20 and |residual| ~ 10 and 3 layers, fp32 rounding (2^-24 relative) accumulates to
// ~1e-6 absolute; 1e-4 (the project's requirement for logits) leaves two orders of margin and
// still catches any real error (a wrong rope frequency or a transposed weight changes values by
// ~1e-1 or more).
#include <cstdlib>
#include <gtest/gtest.h>
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "edgewise/error.h"
#include "edgewise/model.h"
#include "edgewise/safetensors.h"
#include "tensor_helpers.h"
#include "test_helpers.h"

using namespace edgewise;
namespace fs = std::filesystem;

namespace {

const char* kFixture = "model_golden";

std::string gold(const std::string& f) { return ewtest::golden(kFixture, f); }

nlohmann::json manifest() {
  std::ifstream in(gold("manifest.json"));
  return nlohmann::json::parse(in);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

Model load_dir(const std::string& name, DType dt = DType::F32) {
  LoadOptions o;
  o.load_tokenizer = false;
  o.dtype = dt;
  return Model::load(resolve_model(gold(name)), o);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool have_golden() {
  if (!ewtest::exists(gold("manifest.json"))) return false;
  return true;
}

#define REQUIRE_GOLDEN() \
  if (!have_golden()) GTEST_SKIP() << "golden files absent: run ctest (fixture model_golden)"

// Runs the model with every residual and the final norm captured and compares with the HF run.
void check_parity(const std::string& name, const std::string& src, double* logits_diff) {
  auto g = ewtest::read_golden_tensors(gold(name + "_golden.safetensors"));
  LoadOptions o;
  o.load_tokenizer = false;
  Model m = Model::load(resolve_model(src), o);
  const int64_t L = m.config().n_layers;
  std::set<std::string> names = {"ln_final.hook_normalized", "blocks.0.hook_resid_pre"};
  for (int64_t l = 0; l < L; ++l) names.insert("blocks." + std::to_string(l) + ".hook_resid_post");
  std::map<std::string, at::Tensor> cap;
  Hooks h = Hooks::capture(names, &cap);
  at::NoGradGuard ng;
  at::Tensor logits = m.forward(g["input_ids"], &h);
  ASSERT_EQ(logits.scalar_type(), at::kFloat);
  *logits_diff = max_diff(logits, g["logits"]);
  // Logits: the project's fp32 requirement (see the header for why it is meaningful).
  EXPECT_LE(*logits_diff, 1e-4) << name << " (" << src << ")";
  // HF hidden_states[i] is the residual entering layer i; the last one has the final norm
  // applied. Same fp32 argument as the logits; residuals are smaller (|x| ~ 10), so 1e-4 is loose.
  double worst = max_diff(cap["blocks.0.hook_resid_pre"], g["hidden_0"]);
  for (int64_t l = 0; l + 1 < L; ++l)
    worst = std::max(worst, max_diff(cap["blocks." + std::to_string(l) + ".hook_resid_post"],
                                     g["hidden_" + std::to_string(l + 1)]));
  const double fin = max_diff(cap["ln_final.hook_normalized"], g["hidden_" + std::to_string(L)]);
  EXPECT_LE(worst, 1e-4) << name;
  EXPECT_LE(fin, 1e-4) << name;
  std::printf("[parity] %-28s logits max|diff| %.3g, residuals %.3g, final norm %.3g\n",
              src.substr(src.rfind("golden/") + 7).c_str(), *logits_diff, worst, fin);
}

}  // namespace

TEST(ModelParity, Gpt2Llama2Qwen2Safetensors) {
  REQUIRE_GOLDEN();
  for (const char* n : {"gpt2", "llama", "qwen2"}) {
    double d = 0;
    check_parity(n, gold(n), &d);
  }
}

TEST(ModelParity, SameWeightsAsGguf) {
  REQUIRE_GOLDEN();
  // The GGUF copies hold identical F32 weights, so the same transformers logits apply. The
  // llama file has its Q/K rows permuted (llama.cpp layout) and llama3 scaling as rope_freqs:
  // matching here checks the un-permutation and the GGUF hyper-parameters.
  for (const char* n : {"gpt2", "llama", "qwen2"}) {
    double d = 0;
    check_parity(n, gold(std::string("gguf/") + n + ".gguf"), &d);
  }
}

TEST(ModelParity, ConfigAndParams) {
  REQUIRE_GOLDEN();
  auto man = manifest();
  Model ll = load_dir("llama");
  const ModelConfig& c = ll.config();
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.d_head, 16);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_theta, 50000.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 64);
  ASSERT_TRUE(c.bos_token_id.has_value());
  EXPECT_EQ(*c.bos_token_id, 1);
  for (const char* n : {"gpt2", "llama", "qwen2"}) {
    Model m = load_dir(n);
    // transformers' parameters() counts tied weights once, as n_params() must.
    EXPECT_EQ(m.n_params(), man["models"][n]["n_params"].get<int64_t>()) << n;
  }
  Model q = load_dir("qwen2");
  EXPECT_TRUE(q.config().qkv_bias);
  EXPECT_FALSE(q.config().o_bias);
  EXPECT_TRUE(q.config().tied_embeddings);
  // Tied: output.weight is the embedding itself, not a copy.
  EXPECT_EQ(q.weight("output.weight").data_ptr(), q.weight("token_embd.weight").data_ptr());
  Model g = load_dir("gpt2");
  EXPECT_EQ(g.config().d_mlp, 4 * 64);  // n_inner null -> 4 * n_embd
  EXPECT_EQ(g.config().norm, Norm::LayerNorm);
}

TEST(ModelParity, ShardedLoadsIdentically) {
  REQUIRE_GOLDEN();
  // llama_sharded: the same model in 6 shards with a pre-transformers-5 config.json
  // (top-level rope_theta, "rope_scaling"): weights and outputs must be bit-identical.
  Model a = load_dir("llama"), b = load_dir("llama_sharded");
  ASSERT_GE(b.source().weights.size(), 2u);
  ASSERT_EQ(a.weights().size(), b.weights().size());
  for (const auto& [k, w] : a.weights()) EXPECT_TRUE(at::equal(w, b.weight(k))) << k;
  EXPECT_EQ(b.config().rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(b.config().rope_theta, 50000.0);
  auto g = ewtest::read_golden_tensors(gold("llama_golden.safetensors"));
  at::NoGradGuard ng;
  EXPECT_TRUE(at::equal(a.forward(g["input_ids"]), b.forward(g["input_ids"])));
}

TEST(ModelHooks, PatternsMatchTransformers) {
  REQUIRE_GOLDEN();
  for (const char* n : {"gpt2", "llama", "qwen2"}) {
    auto g = ewtest::read_golden_tensors(gold(std::string(n) + "_golden.safetensors"));
    Model m = load_dir(n);
    const int64_t L = m.config().n_layers, H = m.config().n_heads;
    std::set<std::string> names;
    for (int64_t l = 0; l < L; ++l) names.insert("blocks." + std::to_string(l) + ".attn.hook_pattern");
    std::map<std::string, at::Tensor> cap;
    Hooks h = Hooks::capture(names, &cap);
    at::NoGradGuard ng;
    at::Tensor logits = m.forward(g["input_ids"], &h);
    // The explicit (per-head) attention path must give the same logits as transformers too.
    EXPECT_LE(max_diff(logits, g["logits"]), 1e-4) << n;
    double worst = 0, rows = 0;
    for (int64_t l = 0; l < L; ++l) {
      const at::Tensor& p = cap["blocks." + std::to_string(l) + ".attn.hook_pattern"];
      ASSERT_EQ(p.sizes(), (std::vector<int64_t>{3, H, 24, 24}));
      worst = std::max(worst, max_diff(p, g["pattern_" + std::to_string(l)]));
      rows = std::max(rows, (p.sum(-1) - 1).abs().max().item<double>());
      // Causal: nothing attends to the future.
      EXPECT_EQ(p.triu(1).abs().max().item<double>(), 0.0);
    }
    // Probabilities in [0, 1] from fp32 softmax: 1e-5 is ~100 ulps of 1.
    EXPECT_LE(worst, 1e-5) << n;
    EXPECT_LE(rows, 1e-5) << n;
    std::printf("[patterns] %-6s max|diff| vs transformers %.3g, max|row sum - 1| %.3g\n", n, worst, rows);
  }
}

TEST(ModelHooks, PerHeadResultSumsToAttnOut) {
  REQUIRE_GOLDEN();
  for (const char* n : {"gpt2", "llama", "qwen2"}) {
    auto g = ewtest::read_golden_tensors(gold(std::string(n) + "_golden.safetensors"));
    Model m = load_dir(n);
    const int64_t L = m.config().n_layers;
    at::NoGradGuard ng;
    // attn_out from the fast path (SDPA + one o_proj matmul), no per-head hooks.
    std::map<std::string, at::Tensor> fast, heads;
    std::set<std::string> fast_names, head_names;
    for (int64_t l = 0; l < L; ++l) {
      fast_names.insert("blocks." + std::to_string(l) + ".hook_attn_out");
      head_names.insert("blocks." + std::to_string(l) + ".attn.hook_result");
      head_names.insert("blocks." + std::to_string(l) + ".attn.hook_z");
    }
    Hooks hf = Hooks::capture(fast_names, &fast), hh = Hooks::capture(head_names, &heads);
    m.forward(g["input_ids"], &hf);
    m.forward(g["input_ids"], &hh);
    double worst = 0;
    for (int64_t l = 0; l < L; ++l) {
      const std::string p = "blocks." + std::to_string(l) + ".";
      const at::Tensor& r = heads[p + "attn.hook_result"];
      ASSERT_EQ(r.sizes(), (std::vector<int64_t>{3, 24, m.config().n_heads, m.config().d_model}));
      ASSERT_EQ(heads[p + "attn.hook_z"].sizes(),
                (std::vector<int64_t>{3, 24, m.config().n_heads, m.config().d_head}));
      at::Tensor sum = r.sum(2);
      if (m.config().o_bias) sum = sum + m.weight("blk." + std::to_string(l) + ".attn_output.bias");
      worst = std::max(worst, max_diff(sum, fast[p + "hook_attn_out"]));
    }
    // Two summation orders of the same fp32 products (per-head bmm then sum vs one GEMM).
    EXPECT_LE(worst, 1e-5) << n;
    std::printf("[result] %-6s max|sum_h result + b_O - attn_out| %.3g\n", n, worst);
  }
}

TEST(ModelHooks, ReplacementTakesEffect) {
  REQUIRE_GOLDEN();
  const int layer = manifest()["ablate_layer"].get<int>();
  for (const char* n : {"gpt2", "llama", "qwen2"}) {
    auto g = ewtest::read_golden_tensors(gold(std::string(n) + "_golden.safetensors"));
    Model m = load_dir(n);
    Hooks h({"blocks." + std::to_string(layer) + ".hook_attn_out"},
            [](const at::Tensor& t, const std::string&) { return at::zeros_like(t); });
    at::NoGradGuard ng;
    at::Tensor logits = m.forward(g["input_ids"], &h);
    // transformers with a forward hook zeroing that layer's attention output; same fp32 argument.
    const double d = max_diff(logits, g["ablated_logits"]);
    EXPECT_LE(d, 1e-4) << n;
    // ...and it really differs from the clean run (the ablation is not a no-op).
    EXPECT_GT(max_diff(logits, g["logits"]), 1e-1) << n;
    std::printf("[ablate] %-6s zeroed attn_out of layer %d: max|diff| vs transformers %.3g\n", n, layer, d);
  }
}

TEST(ModelHooks, AllHooksAndShapeCheck) {
  REQUIRE_GOLDEN();
  auto g = ewtest::read_golden_tensors(gold("llama_golden.safetensors"));
  Model m = load_dir("llama");
  std::map<std::string, std::vector<int64_t>> seen;
  Hooks all = Hooks::all([&](const at::Tensor& t, const std::string& n) {
    seen[n] = t.sizes().vec();
    return at::Tensor();
  });
  at::NoGradGuard ng;
  EXPECT_LE(max_diff(m.forward(g["input_ids"], &all), g["logits"]), 1e-4);
  using S = std::vector<int64_t>;
  EXPECT_EQ(seen["hook_embed"], (S{3, 24, 64}));
  EXPECT_EQ(seen.count("hook_pos_embed"), 0u);  // rotary model: no learned positions
  EXPECT_EQ(seen["blocks.2.attn.hook_q"], (S{3, 24, 4, 16}));
  EXPECT_EQ(seen["blocks.2.attn.hook_k"], (S{3, 24, 2, 16}));
  EXPECT_EQ(seen["blocks.2.attn.hook_v"], (S{3, 24, 2, 16}));
  EXPECT_EQ(seen["blocks.2.attn.hook_attn_scores"], (S{3, 4, 24, 24}));
  EXPECT_EQ(seen["blocks.2.attn.hook_result"], (S{3, 24, 4, 64}));
  EXPECT_EQ(seen["blocks.2.mlp.hook_post"], (S{3, 24, 160}));
  EXPECT_EQ(seen["blocks.2.hook_resid_post"], (S{3, 24, 64}));
  EXPECT_EQ(seen["ln_final.hook_normalized"], (S{3, 24, 64}));
  // 2 global + 3 layers x 20 points (with rot_q/rot_k and pre_linear).
  EXPECT_EQ(seen.size(), 1u + 1u + 3u * 20u);

  Hooks bad({"blocks.0.hook_resid_mid"}, [](const at::Tensor& t, const std::string&) { return t.narrow(1, 0, 3); });
  const std::string e = error_of([&] { m.forward(g["input_ids"], &bad); });
  EXPECT_NE(e.find("blocks.0.hook_resid_mid"), std::string::npos) << e;
  EXPECT_NE(e.find("[3, 24, 64]"), std::string::npos) << e;

  auto gg = ewtest::read_golden_tensors(gold("gpt2_golden.safetensors"));
  Model gm = load_dir("gpt2");
  std::map<std::string, at::Tensor> cap;
  Hooks hp = Hooks::capture({"hook_pos_embed", "hook_embed"}, &cap);
  gm.forward(gg["input_ids"], &hp);
  EXPECT_EQ(cap["hook_pos_embed"].sizes(), (std::vector<int64_t>{3, 24, 64}));
  // hook_embed + hook_pos_embed is the residual entering layer 0 (HF hidden_states[0]).
  EXPECT_LE(max_diff(cap["hook_embed"] + cap["hook_pos_embed"], gg["hidden_0"]), 1e-6);
}

TEST(ModelParity, Bf16) {
  REQUIRE_GOLDEN();
  for (const char* n : {"gpt2", "llama", "qwen2"}) {
    auto g = ewtest::read_golden_tensors(gold(std::string(n) + "_golden.safetensors"));
    Model m = load_dir(n, DType::BF16);
    EXPECT_EQ(m.weight("blk.0.attn_q.weight").scalar_type(), at::kBFloat16);
    at::NoGradGuard ng;
    at::Tensor logits = m.forward(g["input_ids"]);
    ASSERT_EQ(logits.scalar_type(), at::kFloat);
    const double range = g["logits"].abs().max().item<double>();
    const double vs_fp32 = max_diff(logits, g["logits"]);
    const double vs_hf_bf16 = max_diff(logits, g["logits_bf16"]);
    // bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%); rounding of weights and of every
    // activation over 3 layers compounds to a few percent of the logit range. 5% of the range
    // is loose but catches a broken bf16 path (wrong casts give O(range) errors).
    EXPECT_LE(vs_fp32, 0.05 * range) << n;
    EXPECT_LE(vs_hf_bf16, 0.05 * range) << n;
    // Same argmax almost everywhere as the fp32 reference (ties between close logits may flip).
    const double agree = logits.argmax(-1).eq(g["logits"].argmax(-1)).to(at::kFloat).mean().item<double>();
    EXPECT_GE(agree, 0.9) << n;
    std::printf("[bf16] %-6s max|diff| vs HF fp32 %.3g, vs HF bf16 %.3g (logit range %.3g), argmax agree %.3f\n",
                n, vs_fp32, vs_hf_bf16, range, agree);
  }
}

TEST(ModelErrors, BrokenDirectories) {
  REQUIRE_GOLDEN();
  std::string e = error_of([] { load_dir("broken/missing_tensor"); });
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("model.layers.1.self_attn.k_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;

  e = error_of([] { load_dir("broken/wrong_shape"); });
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("expected shape [64, 64], found [64, 48]"), std::string::npos) << e;

  e = error_of([] { load_dir("broken/unsupported_arch"); });
  EXPECT_NE(e.find("unsupported architecture 'mamba' in " + gold("broken/unsupported_arch/config.json") +
                   " (supported: gpt2, llama, qwen2, gpt_neox, gemma3_text, tracr)"),
            std::string::npos)
      << e;
}

TEST(ModelLoad, HfDirectoryWithTokenizer) {
  REQUIRE_GOLDEN();
  // gpt2/ holds vocab.json + merges.txt: the full Model::load path, tokenizer included.
  auto man = manifest();
  Model m = Model::load(gold("gpt2"));
  ASSERT_TRUE(m.has_tokenizer());
  std::vector<int32_t> ids = m.tokenizer().encode(man["gpt2_text"]["text"].get<std::string>());
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()),
            man["gpt2_text"]["ids"].get<std::vector<int64_t>>());  // transformers' GPT2TokenizerFast
  // Notes name what the loader did.
  std::string notes;
  for (const auto& n : m.load_notes()) notes += n + "\n";
  EXPECT_NE(notes.find("tied"), std::string::npos) << notes;
  Model g = load_dir("gguf/llama.gguf");
  notes.clear();
  for (const auto& n : g.load_notes()) notes += n + "\n";
  EXPECT_NE(notes.find("un-permuted"), std::string::npos) << notes;
  EXPECT_NE(notes.find("rope_freqs"), std::string::npos) << notes;
}

TEST(ModelErrors, BadForwardInput) {
  REQUIRE_GOLDEN();
  Model m = load_dir("gpt2");  // n_positions = 64, vocabulary 50257
  at::NoGradGuard ng;
  EXPECT_NE(error_of([&] { m.forward(at::full({1, 4}, 50257, at::kLong)); }).find("token id 50257"),
            std::string::npos);
  EXPECT_NE(error_of([&] { m.forward(at::full({1, 4}, -1, at::kLong)); }).find("token id -1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { m.forward(at::zeros({4}, at::kLong)); }).find("[B, T]"), std::string::npos);
  EXPECT_NE(error_of([&] { m.forward(at::zeros({1, 65}, at::kLong)); }).find("context length 64"),
            std::string::npos);
  EXPECT_NE(error_of([&] { m.forward(at::zeros({1, 4}, at::kFloat)); }).find("int64"), std::string::npos);
  // int32 tokens are accepted and give the same logits as int64.
  at::Tensor t = at::randint(50257, {2, 5}, at::kLong);
  EXPECT_TRUE(at::equal(m.forward(t), m.forward(t.to(at::kInt))));
}

TEST(ModelHooks, MlpInReplacementLeavesResidual) {
  REQUIRE_GOLDEN();
  // TransformerLens semantics: hook_mlp_in is the MLP's own copy of resid_mid. Zeroing it
  // changes mlp_out but resid_post must still be resid_mid + mlp_out.
  auto g = ewtest::read_golden_tensors(gold("llama_golden.safetensors"));
  Model m = load_dir("llama");
  std::map<std::string, at::Tensor> cap;
  Hooks h({"blocks.0.hook_mlp_in", "blocks.0.hook_resid_mid", "blocks.0.hook_mlp_out",
           "blocks.0.hook_resid_post"},
          [&](const at::Tensor& t, const std::string& n) {
            const at::Tensor out = n == "blocks.0.hook_mlp_in" ? at::zeros_like(t) : t;
            cap[n] = out;
            return out;
          });
  at::NoGradGuard ng;
  m.forward(g["input_ids"], &h);
  // RMSNorm of zeros is zeros, a bias-free SwiGLU of zeros is zeros.
  EXPECT_EQ(cap["blocks.0.hook_mlp_out"].abs().max().item<double>(), 0.0);
  EXPECT_TRUE(at::equal(cap["blocks.0.hook_resid_post"], cap["blocks.0.hook_resid_mid"]));
  // resid_mid itself is untouched: it equals transformers' residual before the MLP? Not exposed
  // by HF; check against the clean run instead.
  std::map<std::string, at::Tensor> clean;
  Hooks hc = Hooks::capture({"blocks.0.hook_resid_mid"}, &clean);
  m.forward(g["input_ids"], &hc);
  EXPECT_TRUE(at::equal(clean["blocks.0.hook_resid_mid"], cap["blocks.0.hook_resid_mid"]));
}

// --- safetensors reader on hand-made bad files ---------------------------------------------

namespace {

std::string write_st(const std::string& name, const std::string& header, size_t data_bytes,
                     int64_t claimed_len = -1) {
  const std::string p = (fs::temp_directory_path() / ("ew_test_model_" + name + ".safetensors")).string();
  std::ofstream o(p, std::ios::binary);
  if (claimed_len == -2) {  // a file shorter than the 8-byte length field
    o << "abcd";
    return p;
  }
  uint64_t n = claimed_len >= 0 ? static_cast<uint64_t>(claimed_len) : header.size();
  for (int i = 0; i < 8; ++i) o.put(static_cast<char>((n >> (8 * i)) & 0xff));
  o << header;
  for (size_t i = 0; i < data_bytes; ++i) o.put(0);
  return p;
}

std::string open_error(const std::string& p) {
  return error_of([&] { SafetensorsFile::open(p); });
}

}  // namespace

TEST(Safetensors, ReadsValidFile) {
  const std::string p = write_st(
      "ok", R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
            R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"c":{"dtype":"I64","shape":[0],"data_offsets":[32,32]}})",
      32);
  auto f = SafetensorsFile::open(p);
  ASSERT_EQ(f.tensors().size(), 3u);
  ASSERT_NE(f.find("a"), nullptr);
  EXPECT_EQ(f.find("a")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.find("b")->dtype, StDType::BF16);
  EXPECT_EQ(f.find("b")->nbytes, 8u);
  EXPECT_EQ(f.find("zz"), nullptr);
  EXPECT_EQ(f.metadata().at("format"), "pt");
}

TEST(Safetensors, RejectsBadFiles) {
  struct Case {
    const char* name;
    std::string header;
    size_t data;
    int64_t claimed;
    std::vector<std::string> expect;  // substrings of the message
  };
  const std::vector<Case> cases = {
      {"too_short", "", 0, -2, {"8-byte"}},
      {"len_past_end", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, 1000,
       {"header length 1000", "past the end"}},
      {"bad_json", R"({"a": {"dtype": "F32", "shape": [1], )", 4, -1, {"not valid JSON"}},
      {"unknown_dtype", R"({"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", 1, -1,
       {"tensor 'w'", "unknown dtype 'F8_E9'"}},
      {"size_mismatch", R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16, -1,
       {"tensor 'w'", "hold 12 bytes", "needs 16"}},
      {"out_of_range", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", 16, -1,
       {"tensor 'w'", "past the end of the data section"}},
      {"overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, -1, {"tensor 'b'", "overlaps tensor 'a'"}},
      {"end_before_begin", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8, -1,
       {"tensor 'w'", "end before begin"}},
      {"negative_dim", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, -1,
       {"tensor 'w'", "negative"}},
      {"not_object", R"([1, 2, 3])", 0, -1, {"JSON object"}},
  };
  for (const auto& c : cases) {
    const std::string p = write_st(c.name, c.header, c.data, c.claimed);
    const std::string e = open_error(p);
    EXPECT_NE(e.find(p), std::string::npos) << c.name << ": " << e;  // names the file
    for (const auto& s : c.expect) EXPECT_NE(e.find(s), std::string::npos) << c.name << ": " << e;
    fs::remove(p);
  }
}

TEST(ModelConfigJson, Errors) {
  const auto dir = fs::temp_directory_path() / "ew_test_model_cfg";
  fs::create_directories(dir);
  auto write = [&](const std::string& body) {
    std::ofstream((dir / "config.json").string()) << body;
    return (dir / "config.json").string();
  };
  std::string p = write(R"({"model_type": "mamba"})");
  EXPECT_EQ(error_of([&] { config_from_hf_json(p); }),
            "unsupported architecture 'mamba' in " + p + " (supported: gpt2, llama, qwen2, gpt_neox, gemma3_text, tracr)");
  p = write(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 6, "num_key_value_heads": 4, "intermediate_size": 128})");
  EXPECT_NE(error_of([&] { config_from_hf_json(p); }).find("not a multiple"), std::string::npos);
  p = write(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": 128, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})");
  EXPECT_NE(error_of([&] { config_from_hf_json(p); }).find("unsupported rope scaling type 'yarn'"),
            std::string::npos);
  p = write(R"({"model_type": "llama", "hidden_size": 64)");
  EXPECT_NE(error_of([&] { config_from_hf_json(p); }).find("not valid JSON"), std::string::npos);
  // Gemma 3: what the block cannot run is refused by name, and its layer list is checked.
  const std::string g3 = R"({"model_type": "gemma3_text", "hidden_size": 64, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 96)";
  p = write(g3 + R"(, "final_logit_softcapping": 30.0})");
  EXPECT_NE(error_of([&] { config_from_hf_json(p); }).find("final_logit_softcapping is set; soft-capping is not supported"),
            std::string::npos);
  p = write(g3 + R"(, "layer_types": ["sliding_attention"]})");
  EXPECT_NE(error_of([&] { config_from_hf_json(p); }).find("layer_types must be a list of 2 entries"), std::string::npos);
  p = write(g3 + R"(, "layer_types": ["sliding_attention", "chunked_attention"]})");
  EXPECT_NE(error_of([&] { config_from_hf_json(p); }).find("layer_types[1] is \"chunked_attention\""), std::string::npos);
  p = write(g3 + R"(, "sliding_window": 0})");
  EXPECT_NE(error_of([&] { config_from_hf_json(p); }).find("sliding_window must be positive"), std::string::npos);
  p = write(g3 + R"(, "sliding_window": 8, "rope_local_base_freq": 500.0, "query_pre_attn_scalar": 64})");
  const ModelConfig c = config_from_hf_json(p);
  EXPECT_EQ(c.arch, Arch::Gemma3);
  EXPECT_TRUE(c.block.post_norms && c.block.qk_norm);
  EXPECT_EQ(c.block.sliding, (std::vector<bool>{true, true}));  // Gemma 3's default pattern: every 6th is global
  EXPECT_EQ(c.block.sliding_window, 8);
  EXPECT_DOUBLE_EQ(c.block.rope_theta_local, 500.0);
  EXPECT_DOUBLE_EQ(c.block.attn_scale, 0.125);
  EXPECT_DOUBLE_EQ(c.block.embed_scale, 8.0);
  fs::remove_all(dir);
}

// The bundled second model by name: a clear error naming where it was looked for and how to get
// it when it is not installed.
TEST(ModelSpec, BundledGemmaNotInstalled) {
  const char* old = std::getenv("EDGEWISE_GEMMA_MODEL");
  const std::string keep = old ? old : "";
  setenv("EDGEWISE_GEMMA_MODEL", "/nonexistent/gemma.gguf", 1);
  const std::string e = error_of([] { resolve_model("gemma-3-270m"); });
  if (old) setenv("EDGEWISE_GEMMA_MODEL", keep.c_str(), 1);
  else unsetenv("EDGEWISE_GEMMA_MODEL");
  EXPECT_NE(e.find("/nonexistent/gemma.gguf"), std::string::npos) << e;
  EXPECT_NE(e.find("scripts/setup.sh"), std::string::npos) << e;
}
