// The default model (SmolLM2-135M-Instruct, Q4_1/Q8_0 GGUF) against transformers loading the
// same file (tests/reference/default_model_golden.py): 22 varied prompts, run here as one
// right-padded batch; the same argmax at every real position and max |logit diff| <= 1e-3.
// Skips when the default model is not installed.
#include <gtest/gtest.h>
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "edgewise/error.h"
#include "edgewise/model.h"
#include "edgewise/safetensors.h"
#include "test_helpers.h"

using namespace edgewise;

namespace {

const char* kFixture = "default_golden";

struct Golden {
  std::string model;
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> ids;
  std::vector<at::Tensor> logits;  // [T_i, V]
};

// Loads the golden files, or returns false when the reference found no model.
bool load_golden(Golden* g) {
  const std::string info_path = ewtest::golden(kFixture, "info.json");
  if (!ewtest::exists(info_path)) return false;
  auto info = nlohmann::json::parse(std::ifstream(info_path));
  if (info.value("absent", true)) return false;
  g->model = info["model"].get<std::string>();
  if (!ewtest::exists(g->model)) return false;
  auto prompts = nlohmann::json::parse(std::ifstream(ewtest::golden(kFixture, "prompts.json")));
  auto f = SafetensorsFile::open(ewtest::golden(kFixture, "logits.safetensors"));
  for (size_t i = 0; i < prompts.size(); ++i) {
    g->texts.push_back(prompts[i]["text"].get<std::string>());
    g->ids.push_back(prompts[i]["ids"].get<std::vector<int64_t>>());
    const StTensor* t = f.find("logits_" + std::to_string(i));
    EXPECT_NE(t, nullptr);
    if (!t) return false;
    g->logits.push_back(
        at::from_blob(const_cast<uint8_t*>(t->data), t->shape, at::TensorOptions().dtype(at::kFloat)).clone());
  }
  return !g->ids.empty();
}

}  // namespace

TEST(DefaultModel, MatchesTransformers) {
  Golden g;
  if (!load_golden(&g)) GTEST_SKIP() << "default model not installed (run scripts/setup.sh)";
  ASSERT_GE(g.ids.size(), 20u);
  LoadOptions o;
  o.load_tokenizer = false;
  auto t0 = std::chrono::steady_clock::now();
  Model m = Model::load(resolve_model(g.model), o);
  auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(m.config().arch, Arch::Llama);
  EXPECT_EQ(m.config().n_layers, 30);
  EXPECT_EQ(m.config().n_heads, 9);
  EXPECT_EQ(m.config().n_kv_heads, 3);
  EXPECT_TRUE(m.config().tied_embeddings);

  // One right-padded batch: causal attention keeps the padding out of earlier positions.
  int64_t Tmax = 0;
  for (const auto& ids : g.ids) Tmax = std::max<int64_t>(Tmax, ids.size());
  const int64_t N = g.ids.size();
  at::Tensor tokens = at::zeros({N, Tmax}, at::kLong);
  for (int64_t i = 0; i < N; ++i)
    for (size_t t = 0; t < g.ids[i].size(); ++t) tokens[i][t] = g.ids[i][t];
  at::NoGradGuard ng;
  at::Tensor logits = m.forward(tokens);  // [N, Tmax, V]
  auto t2 = std::chrono::steady_clock::now();

  double worst = 0;
  int64_t positions = 0, argmax_same = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t T = g.ids[i].size();
    at::Tensor mine = logits[i].narrow(0, 0, T);
    const at::Tensor& ref = g.logits[i];
    ASSERT_EQ(mine.sizes(), ref.sizes()) << "prompt " << i;
    const double d = (mine - ref).abs().max().item<double>();
    worst = std::max(worst, d);
    at::Tensor same = mine.argmax(-1).eq(ref.argmax(-1));
    positions += T;
    argmax_same += same.sum().item<int64_t>();
    EXPECT_TRUE(same.all().item<bool>()) << "argmax differs in prompt " << i << ": " << g.texts[i];
    // Both sides hold bit-identical dequantised weights (gguf-py's dequantisation is the
    // reference for ours, tested in test_gguf); what remains is fp32 summation order through
    // 30 layers, ~1e-5 relative on logits up to ~40. 1e-3 is the project's requirement.
    EXPECT_LE(d, 1e-3) << "prompt " << i << ": " << g.texts[i];
  }
  std::printf("[default] %lld prompts, %lld positions: argmax identical at %lld, max|logit diff| %.3g "
              "(load %.2f s, forward %.2f s)\n",
              (long long)N, (long long)positions, (long long)argmax_same, worst,
              std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count());
}

TEST(DefaultModel, TokenizerFromGgufMatchesTransformers) {
  Golden g;
  if (!load_golden(&g)) GTEST_SKIP() << "default model not installed (run scripts/setup.sh)";
  // Weights are loaded too: this is the full Model::load path of the command line.
  Model m = Model::load(resolve_model(g.model));
  ASSERT_TRUE(m.has_tokenizer());
  for (size_t i = 0; i < g.texts.size(); ++i) {
    std::vector<int32_t> ids = m.tokenizer().encode_for_model(g.texts[i]);
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), g.ids[i]) << g.texts[i];
  }
}
