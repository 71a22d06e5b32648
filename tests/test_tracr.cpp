// Tracr-compiled models (tests/data/tracr, written by tools/tracr/export.py): the engine loads
// them through the architecture tables (no norm, ReLU MLPs, non-causal attention, learned
// positions, the model's own input vocabulary and output space) and its plain forward equals
// Tracr's own `apply` on every input up to the compiled length: expected.json holds Tracr's
// output values (the residual projected onto the output space, JAX float32) and decoded outputs.
// Tolerance 1e-5 on the values (float32 against float32 in another library's order of sums;
// measured below 1e-6); decoded outputs identical.
#include <gtest/gtest.h>
#include <ATen/ATen.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "edgewise/error.h"
#include "edgewise/graph.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"

using namespace edgewise;

namespace {

std::string tracr_dir(const std::string& program) { return std::string(EW_SOURCE_DIR) + "/tests/data/tracr/" + program; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

}  // namespace

class TracrForward : public ::testing::TestWithParam<std::string> {};

TEST_P(TracrForward, EqualsTracrOnEveryInput) {
  at::NoGradGuard ng;
  const std::string dir = tracr_dir(GetParam());
  const Model m = Model::load(dir);
  const ModelConfig& c = m.config();
  const nlohmann::json cfg = read_json(dir + "/config.json"), exp = read_json(dir + "/expected.json");
  EXPECT_EQ(c.arch, Arch::Tracr);
  EXPECT_EQ(c.norm, Norm::None);
  EXPECT_EQ(c.act, Act::Relu);
  EXPECT_FALSE(c.causal);
  EXPECT_FALSE(m.has_tokenizer());
  EXPECT_EQ(c.d_head, cfg["d_head"].get<int64_t>());
  EXPECT_NE(c.d_head * c.n_heads, c.d_model);  // a head size independent of the width
  const bool categorical = cfg["output"] == "categorical";
  double worst = 0;
  size_t n = 0;
  for (const auto& e : exp["inputs"]) {
    const std::vector<int64_t> ids = e["ids"].get<std::vector<int64_t>>();
    const int64_t T = static_cast<int64_t>(ids.size());
    const at::Tensor tokens = at::tensor(ids, at::kLong).view({1, T});
    const at::Tensor out = m.forward(tokens)[0].to(at::kDouble);  // [T, outputs]
    const std::vector<std::vector<double>> want = e["values"].get<std::vector<std::vector<double>>>();
    ASSERT_EQ(out.size(0), T);
    ASSERT_EQ(out.size(1), static_cast<int64_t>(want[0].size()));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t k = 0; k < out.size(1); ++k)
        worst = std::max(worst, std::abs(out[t][k].item<double>() - want[t][k]));
    for (int64_t t = 1; t < T; ++t) {  // the outputs after BOS
      if (categorical) {
        const int64_t arg = out[t].argmax().item<int64_t>();
        EXPECT_EQ(cfg["output_values"][arg].get<std::string>(), e["decoded"][t - 1].get<std::string>())
            << GetParam() << " input " << e["tokens"].dump() << " position " << t;
      } else {
        EXPECT_NEAR(out[t][0].item<double>(), e["decoded"][t - 1].get<double>(), 1e-5) << e["tokens"].dump();
      }
    }
    ++n;
  }
  EXPECT_EQ(n, exp["inputs"].size());
  EXPECT_GT(n, 300u);
  EXPECT_LT(worst, 1e-5) << GetParam();
  std::printf("%s: %zu inputs, largest |difference| from Tracr's values %.3g\n", GetParam().c_str(), n, worst);
}

INSTANTIATE_TEST_SUITE_P(Programs, TracrForward, ::testing::Values("reverse", "xproportion"));

TEST(Tracr, PatchedForwardRefusesUntilItRunsThem) {
  const Model m = Model::load(tracr_dir("reverse"));
  try {
    model_graph(m, true);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-causal attention"), std::string::npos) << e.what();
  }
}
