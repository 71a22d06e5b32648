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

#include <algorithm>
#include <filesystem>
#include <map>

#include "edgewise/acdc.h"
#include "edgewise/circuit.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/graph.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/tasks.h"

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
  ASSERT_TRUE(m.has_tokenizer());  // its word-level vocabulary, from config.json
  EXPECT_TRUE(m.tokenizer().word_level());
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

namespace {

// Every input of expected.json of one length, as a [B, T] batch (the attention is not causal:
// one length per batch, no padding).
std::map<int64_t, at::Tensor> inputs_by_length(const nlohmann::json& exp) {
  std::map<int64_t, std::vector<int64_t>> flat;
  for (const auto& e : exp["inputs"]) {
    const std::vector<int64_t> ids = e["ids"].get<std::vector<int64_t>>();
    auto& v = flat[static_cast<int64_t>(ids.size())];
    v.insert(v.end(), ids.begin(), ids.end());
  }
  std::map<int64_t, at::Tensor> out;
  for (auto& [T, v] : flat) out[T] = at::tensor(v, at::kLong).view({-1, T});
  return out;
}

}  // namespace

// The patched forward on Tracr models, checked against two independent computations: with every
// mask 1 it is the plain forward (itself equal to Tracr's apply, above), and the edges whose
// single zero ablation changes an output on some input -- every input of every length, one
// patched pass per length with all single-edge masks folded in -- are exactly the ground truth
// that tools/tracr/export.py computed with its own numpy forward (truth.json; the same rule:
// a changed argmax for categorical outputs, a change above 1e-3 for numerical ones).
TEST_P(TracrForward, PatchedForwardFindsTheGroundTruthEdges) {
  at::NoGradGuard ng;
  const std::string dir = tracr_dir(GetParam());
  const Model m = Model::load(dir);
  const Graph g = model_graph(m, true);
  const nlohmann::json cfg = read_json(dir + "/config.json"), exp = read_json(dir + "/expected.json");
  const bool categorical = cfg["output"] == "categorical";
  const Circuit truth = circuit_read(dir + "/truth.json");
  const std::vector<uint8_t> real = g.real_edges();
  std::vector<std::pair<int64_t, int64_t>> edges;
  for (int64_t s = 0; s < g.n_sources(); ++s)
    for (int64_t r = 0; r < g.n_readers(); ++r)
      if (real[s * g.n_readers() + r]) edges.push_back({s, r});
  const int64_t E = static_cast<int64_t>(edges.size());
  at::Tensor masks = full_mask(g, E + 1);  // [0]: every edge in; [1 + i]: edge i ablated
  for (int64_t i = 0; i < E; ++i) masks[1 + i][edges[i].first][edges[i].second] = 0;
  std::vector<uint8_t> changed(E, 0);
  double worst_full = 0;
  for (const auto& [T, tokens] : inputs_by_length(exp)) {
    const at::Tensor zero = at::zeros({g.n_sources(), 1, 1, m.config().d_model});
    const at::Tensor out = patched_forward(m, g, tokens, zero, masks).to(at::kDouble);  // [E + 1, B, T, outputs]
    const at::Tensor plain = m.forward(tokens).to(at::kDouble);
    worst_full = std::max(worst_full, (out[0] - plain).abs().max().item<double>());
    const at::Tensor after_bos = out.narrow(2, 1, T - 1);
    for (int64_t i = 0; i < E; ++i) {
      const at::Tensor a = after_bos[1 + i], b = after_bos[0];
      const bool ch = categorical ? (a.argmax(-1) != b.argmax(-1)).any().item<bool>()
                                  : ((a - b).abs().max().item<double>() > 1e-3);
      changed[i] = changed[i] || ch;
    }
  }
  // All ones: the same arithmetic as the plain forward in another grouping of sums (float32).
  EXPECT_LT(worst_full, 1e-5) << GetParam();
  int64_t n_truth = 0;
  for (int64_t i = 0; i < E; ++i) {
    const auto [s, r] = edges[i];
    const bool in_truth = truth.in_graph[s * g.n_readers() + r] != 0;
    n_truth += in_truth;
    EXPECT_EQ(changed[i] != 0, in_truth) << GetParam() << " " << g.edge_name(s, r);
  }
  EXPECT_EQ(n_truth, GetParam() == "reverse" ? 10 : 5);  // ACDC's canonical circuits (tracr_fixtures)
}

// ACDC (zero ablation, MSE: ACDC's Tracr setting) recovers each ground-truth circuit exactly on
// the built-in Tracr task, and its own running metric for the circuit it returns equals the
// patched forward's evaluation of that circuit: its incremental evaluator, which follows changes
// at the prediction positions only when they cannot spread, agrees with the full pass on a model
// whose attention is not causal and whose predictions are not at the last token.
TEST_P(TracrForward, AcdcRecoversTheGroundTruth) {
  const std::string dir = tracr_dir(GetParam());
  const Model m = Model::load(dir);
  const Graph g = model_graph(m, true);
  const std::string task = "tracr-" + GetParam();
  const Dataset ds = load_task(task, m.tokenizer(), 100000, 0);
  EXPECT_EQ(ds.default_ablation, "zero");
  EXPECT_EQ(ds.default_metric, "mse");
  const Batch b = make_batch(ds, m.tokenizer());
  EXPECT_EQ(b.size(), GetParam() == "reverse" ? 81 * 4 : 256 * 4);
  AcdcOptions o;
  o.ablation = Ablation::Zero;
  o.metric = Metric::MSE;
  o.tau = 1e-4;
  const AcdcResult r = acdc(m, g, b, o);
  const Circuit truth = circuit_read(dir + "/truth.json");
  const at::Tensor want = circuit_mask(truth) > 0;  // [n_src, n_dst]
  for (int64_t s = 0; s < g.n_sources(); ++s)
    for (int64_t d = 0; d < g.n_readers(); ++d)
      if (g.real_edges()[s * g.n_readers() + d])
        EXPECT_EQ(r.kept[s][d].item<bool>(), want[s][d].item<bool>()) << task << " " << g.edge_name(s, d);
  EvaluateOptions eo;
  eo.ablation = Ablation::Zero;
  eo.batch_size = b.size();
  const CircuitEvaluation ev = evaluate_circuits(m, g, b, at::stack({r.kept.to(at::kFloat), at::zeros({g.n_sources(), g.n_readers()})}), eo);
  // Both sum float32 squared errors of ~1e-7-sized differences: equal to 1e-9 absolute.
  EXPECT_NEAR(r.metric_final, ev.mse[1], 1e-9) << task;
  EXPECT_LT(ev.mse[1], 1e-9) << task;  // the truth reproduces the model
  EXPECT_GT(ev.mse[2], 1e-3) << task;  // and the empty circuit does not
}

// A batch with padding is refused for a non-causal model (the padding would be attended to).
TEST(Tracr, PaddedBatchRefused) {
  const Model m = Model::load(tracr_dir("reverse"));
  const Graph g = model_graph(m, true);
  Dataset ds;
  ds.name = "mixed";
  for (const char* p : {"1 2 3", "1 2"}) {
    Example e;
    e.clean = e.corrupted = p;
    e.correct = {"1"};
    ds.examples.push_back(e);
  }
  const Batch b = make_batch(ds, m.tokenizer());
  try {
    evaluate_circuits(m, g, b, full_mask(g, 1), EvaluateOptions{});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("not causal"), std::string::npos) << w;
    EXPECT_NE(w.find("example 1"), std::string::npos) << w;
  }
}

// The word-level vocabulary: words separated by spaces, BOS prepended, unknown words named;
// answers are the output labels.
TEST(Tracr, WordVocabulary) {
  const Model m = Model::load(tracr_dir("reverse"));
  const Tokenizer& t = m.tokenizer();
  EXPECT_EQ(t.encode_for_model("1  3\t2"), (std::vector<int32_t>{3, 0, 2, 1}));
  EXPECT_EQ(t.decode({3, 0, 2}), "BOS 1 3");
  EXPECT_EQ(t.n_outputs(), 3);
  EXPECT_EQ(t.answer_id(" 2"), 1);
  EXPECT_FALSE(t.answer_id("BOS").has_value());
  try {
    t.encode("1 4");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'4' is not a word"), std::string::npos) << e.what();
  }
  const Model x = Model::load(tracr_dir("xproportion"));
  EXPECT_EQ(x.tokenizer().output_labels(), std::vector<std::string>{"value"});
  try {
    make_task("tracr-reverse", x.tokenizer(), TaskOptions{});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tracr/reverse"), std::string::npos) << e.what();
  }
}

// The tasks' answers follow the programs' definitions (computed here from the prompt text), and
// the compiled model gets every one right: reverse's output at position p is the input token at
// the mirrored position; xproportion's the fraction of "x" among the tokens up to p.
TEST_P(TracrForward, TaskAnswersAreTheProgramsOutputs) {
  at::NoGradGuard ng;
  const std::string dir = tracr_dir(GetParam());
  const Model m = Model::load(dir);
  const Dataset ds = make_task("tracr-" + GetParam(), m.tokenizer(), TaskOptions{100000, 5});
  const Batch b = make_batch(ds, m.tokenizer());
  const at::Tensor last = logits_at(m.forward(b.clean), b.clean_pos);  // [N, outputs]
  for (size_t i = 0; i < ds.examples.size(); ++i) {
    const Example& e = ds.examples[i];
    std::vector<std::string> w;
    for (size_t a = 0, z; a < e.clean.size(); a = z + 1) {
      z = e.clean.find(' ', a);
      if (z == std::string::npos) z = e.clean.size();
      w.push_back(e.clean.substr(a, z - a));
    }
    ASSERT_EQ(w.size(), 4u);
    const size_t p = static_cast<size_t>(e.position);
    if (GetParam() == "reverse") {
      ASSERT_EQ(e.correct, std::vector<std::string>{w[w.size() - p]});
      EXPECT_EQ(m.tokenizer().output_labels()[last[i].argmax().item<int64_t>()], e.correct[0]) << e.clean << " @" << p;
    } else {
      const double frac = static_cast<double>(std::count(w.begin(), w.begin() + p, "x")) / p;
      EXPECT_NEAR(last[i][0].item<double>(), frac, 1e-5) << e.clean << " @" << p;
    }
  }
  EXPECT_GT(ds.examples.size(), 300u);
}


// A Tracr model saves (circuit-tuning's output) as its own folder: the weights under their
// canonical names and the exporter's config.json copied, no tokenizer files (the vocabulary is in
// the config); the folder loads back to the same forward.
TEST(Tracr, SavesAndReloads) {
  at::NoGradGuard ng;
  const Model m = Model::load(tracr_dir("xproportion"));
  const std::string out = ::testing::TempDir() + "/ew_tracr_saved";
  save_hf_model(m, out);
  EXPECT_FALSE(std::filesystem::exists(out + "/tokenizer.json"));
  const Model r = Model::load(out);
  EXPECT_EQ(r.tokenizer().output_labels(), m.tokenizer().output_labels());
  const at::Tensor tokens = at::tensor(std::vector<int64_t>{r.tokenizer().bos_id().value(), 1, 2, 1}, at::kLong).view({1, 4});
  EXPECT_TRUE(at::equal(m.forward(tokens), r.forward(tokens)));
  std::filesystem::remove_all(out);
}
