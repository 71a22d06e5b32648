// Circuit-tuning (include/edgewise/circuit_tuning.h) on tests/reference/patch_golden.py's random
// GPT-2 and grouped-query Llama models:
//  - EAP node scores through hooks equal attribute("eap", node_level) (the graph's, itself
//    checked against auto-circuit), and MLP-head scores add up to their MLP's;
//  - parameter masks cover exactly the parts' rows / columns;
//  - after tuning, every entry outside the circuits is bit-identical and every part changed;
//  - a stopped and resumed run equals an uninterrupted one bit for bit;
//  - reference cases for tests/reference/tune_check.py, which repeats the training with
//    transformers + torch.optim and loads the saved directories (weights 1e-5, logits 1e-4);
//  - the default model, tuned one step and saved, for the same check with its real tokenizer.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "edgewise/attribution.h"
#include "edgewise/circuit.h"
#include "edgewise/circuit_tuning.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/hf.h"
#include "edgewise/safetensors.h"
#include "patch_models.h"

using namespace edgewise;

namespace {

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

// Entries of `w` inside the masks (1) / outside (0).
void check_inside_outside(const Model& base, const TuneResult& r, const std::map<std::string, at::Tensor>& masks,
                          const std::vector<ParamPart>& parts, int64_t mlp_heads) {
  for (const auto& [name, w0] : base.weights()) {
    const at::Tensor w1 = r.weights.at(name);
    auto it = masks.find(name);
    const at::Tensor out = it == masks.end() ? at::ones_like(w0, at::kBool) : it->second == 0;
    EXPECT_TRUE(at::equal(w0.masked_select(out), w1.masked_select(out))) << name << " changed outside the circuit";
  }
  // Every part moved somewhere.
  for (const ParamPart& p : parts) {
    const auto pm = parameter_masks(base, {p}, mlp_heads, false, false);
    bool changed = false;
    for (const auto& [name, m] : pm) {
      const at::Tensor in = m != 0;
      changed = changed || !at::equal(base.weight(name).masked_select(in), r.weights.at(name).masked_select(in));
    }
    EXPECT_TRUE(changed) << part_name(p) << " did not change";
  }
}

std::map<std::string, at::Tensor> union_masks(const Model& m, const TuneResult& r, int64_t mlp_heads) {
  std::vector<ParamPart> all;
  for (const auto& rd : r.rounds) all.insert(all.end(), rd.parts.begin(), rd.parts.end());
  return parameter_masks(m, all, mlp_heads, false, false);
}

}  // namespace

// Not on gemma3: the node scores are gradients at a head's z, which (post-norms) moves the whole
// layer's norm scale, while graph EAP scores a head's share of the normed output alone
// (docs/PATCHING.md, "Post-norms").
TEST(Tune, NodeScoresEqualGraphEap) {
  REQUIRE_GOLDEN();
  for (const char* name : {"gpt2", "llama"}) {
    const Model model = ewtest::load_patch_model(name);
    const auto& c = model.config();
    const Graph graph = model_graph(model, true);
    const Batch data = ewtest::random_prompts(c.vocab_size, 6, 7, 3);
    for (Ablation ab : {Ablation::Mean, Ablation::Resample, Ablation::Zero}) {
      AttributionOptions ao;
      ao.ablation = ab;
      ao.node_level = true;
      const at::Tensor want = attribute("eap", model, graph, data, ao);  // [n_src]
      const NodeScores ns = tune_node_scores(model, data, ab, Metric::LogitDiff, 1, 4);
      const NodeScores g4 = tune_node_scores(model, data, ab, Metric::LogitDiff, 4, 4);
      at::Tensor w_heads = at::empty({c.n_layers, c.n_heads}, at::kDouble), w_mlps = at::empty({c.n_layers}, at::kDouble);
      for (int64_t l = 0; l < c.n_layers; ++l) {
        for (int64_t h = 0; h < c.n_heads; ++h) w_heads[l][h] = want[graph.head_source(l, h)];
        w_mlps[l] = want[graph.mlp_source(l)];
      }
      // float32 forward / backward in both, different association orders: 1e-4 of the largest.
      EXPECT_LT(rel_err(ns.heads, w_heads), 1e-4) << name << " " << ablation_name(ab);
      EXPECT_LT(rel_err(ns.mlps.select(1, 0), w_mlps), 1e-4) << name << " " << ablation_name(ab);
      EXPECT_LT(rel_err(g4.mlps.sum(1), w_mlps), 1e-4) << name << " groups " << ablation_name(ab);
      EXPECT_GT(w_heads.abs().max().item<double>(), 1e-4);  // not a vacuous comparison
    }
  }
}

TEST(Tune, MasksCoverTheParts) {
  REQUIRE_GOLDEN();
  const Model model = ewtest::load_patch_model("llama");
  const auto& c = model.config();
  const int64_t Dh = c.d_head, R = c.n_heads / c.n_kv_heads;
  const auto parts = parts_of_nodes(c, {{false, 1, R + 1, 0}});  // head R+1 of layer 1: key/value head 1
  ASSERT_EQ(parts.size(), 4u);
  const auto m = parameter_masks(model, parts, 1, false, false);
  auto ones = [&](const std::string& n) { return m.at(n).sum().item<int64_t>(); };
  EXPECT_EQ(ones("blk.1.attn_q.weight"), Dh * c.d_model);
  EXPECT_EQ(m.at("blk.1.attn_q.weight").narrow(0, (R + 1) * Dh, Dh).min().item<double>(), 1.0);
  EXPECT_EQ(m.at("blk.1.attn_k.weight").narrow(0, Dh, Dh).min().item<double>(), 1.0);
  EXPECT_EQ(ones("blk.1.attn_k.weight"), Dh * c.d_model);
  EXPECT_EQ(ones("blk.1.attn_v.weight"), Dh * c.d_model);
  EXPECT_EQ(m.at("blk.1.attn_output.weight").narrow(1, (R + 1) * Dh, Dh).min().item<double>(), 1.0);
  EXPECT_EQ(ones("blk.1.attn_output.weight"), Dh * c.d_model);
  EXPECT_EQ(m.size(), 4u);  // nothing else
  // An MLP head: its rows of gate and up, its columns of down.
  const auto mm = parameter_masks(model, parts_of_nodes(c, {{true, 0, 1, 0}}), 4, false, false);
  const int64_t F = c.d_mlp, lo = F / 4, n = 2 * F / 4 - lo;
  EXPECT_EQ(mm.at("blk.0.ffn_gate.weight").narrow(0, lo, n).min().item<double>(), 1.0);
  EXPECT_EQ(mm.at("blk.0.ffn_up.weight").sum().item<int64_t>(), n * c.d_model);
  EXPECT_EQ(mm.at("blk.0.ffn_down.weight").narrow(1, lo, n).min().item<double>(), 1.0);
  EXPECT_EQ(mm.at("blk.0.ffn_down.weight").sum().item<int64_t>(), n * c.d_model);
}

TEST(Tune, OnlyTheCircuitChanges) {
  REQUIRE_GOLDEN();
  for (const char* name : {"gpt2", "llama", "gemma3"}) {
    for (const char* optim : {"sgd", "adamw"}) {
      const Model model = ewtest::load_patch_model(name);
      const Batch data = ewtest::random_prompts(model.config().vocab_size, 12, 6, 5);
      TuneOptions o;
      o.nodes = 3;
      o.mlp_heads = 2;
      o.rounds = 2;
      o.steps_per_round = 2;
      o.batch_size = 6;
      o.optimizer = optim;
      o.lr = 1e-2;
      o.weight_decay = 0.1;  // large, so a leak into frozen entries would show
      const TuneResult r = circuit_tune(model, data, o);
      ASSERT_TRUE(r.complete);
      ASSERT_EQ(r.rounds.size(), 2u);
      const auto masks = union_masks(model, r, 2);
      std::vector<ParamPart> all;
      for (const auto& rd : r.rounds) all.insert(all.end(), rd.parts.begin(), rd.parts.end());
      check_inside_outside(model, r, masks, all, 2);
      int64_t in = 0;
      for (const auto& [n, m] : masks) in += m.sum().item<int64_t>();
      EXPECT_EQ(r.params_updated, in) << name;
      EXPECT_LT(r.params_updated, r.params_total);
    }
  }
}

TEST(Tune, ResumeEqualsUninterrupted) {
  REQUIRE_GOLDEN();
  const Model model = ewtest::load_patch_model("llama");
  const Batch data = ewtest::random_prompts(model.config().vocab_size, 10, 6, 9);
  const std::string ck = ewtest::golden("tune_cases", "resume.ck");
  std::filesystem::create_directories(std::filesystem::path(ck).parent_path());
  std::filesystem::remove(ck);
  TuneOptions o;
  o.nodes = 2;
  o.rounds = 3;
  o.steps_per_round = 2;
  o.batch_size = 4;
  o.optimizer = "adamw";
  o.lr = 1e-2;
  const TuneResult full = circuit_tune(model, data, o);
  TuneOptions s = o;
  s.run.checkpoint = ck;
  int64_t polls = 0;
  s.run.stop = [&] { return ++polls == 3; };  // mid-round 2
  const TuneResult part = circuit_tune(model, data, s);
  EXPECT_FALSE(part.complete);
  EXPECT_EQ(part.steps_done, 3);
  s.run.stop = {};
  s.run.resume = true;
  const TuneResult rest = circuit_tune(model, data, s);
  ASSERT_TRUE(rest.complete);
  for (const auto& [n, w] : full.weights) EXPECT_TRUE(at::equal(w, rest.weights.at(n))) << n;
  EXPECT_EQ(full.params_updated, rest.params_updated);
  ASSERT_EQ(full.log.size(), rest.log.size());
  // Another run's checkpoint is refused, naming the file.
  TuneOptions other = s;
  other.lr = 2e-2;
  try {
    circuit_tune(model, data, other);
    ADD_FAILURE() << "another run's checkpoint was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resume.ck"), std::string::npos) << e.what();
  }
}

// A part outside the model (a head or MLP group index past the count) is refused by name, not
// left to ATen's narrow.
TEST(Tune, PartsOutsideTheModelFailClearly) {
  REQUIRE_GOLDEN();
  const Model model = ewtest::load_patch_model("gpt2");
  auto err = [&](const ParamPart& p, int64_t mlp_heads) {
    try {
      parameter_masks(model, {p}, mlp_heads, false, false);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(err({ParamPart::MlpOut, 0, 2}, 2).find("part m0.g2.out: index 2 is outside the 2 MLP groups"), std::string::npos);
  EXPECT_NE(err({ParamPart::Q, 1, 4}, 1).find("part a1.h4.q: index 4 is outside the 4 query heads of layer 1"),
            std::string::npos);
  EXPECT_NE(err({ParamPart::K, 0, -1}, 1).find("outside the 4 key/value heads"), std::string::npos);
  EXPECT_EQ(err({ParamPart::MlpOut, 0, 1}, 2), "(no error)");
}

// Reference cases: a fixed circuit, every example in every step (the order inside a batch does
// not change the mean loss), 3 steps; tune_check.py repeats them in transformers.
TEST(Tune, WritesReferenceCases) {
  REQUIRE_GOLDEN();
  struct Case {
    const char* model;
    const char* optim;
    std::vector<ParamPart> parts;
    int64_t mlp_heads;
  };
  const std::vector<Case> cases = {
      {"gpt2", "sgd", {{ParamPart::Q, 0, 1}, {ParamPart::K, 1, 0}, {ParamPart::O, 1, 2}, {ParamPart::MlpIn, 0, 1}, {ParamPart::MlpOut, 1, 0}}, 2},
      {"gpt2", "adamw", {{ParamPart::V, 0, 3}, {ParamPart::O, 0, 0}, {ParamPart::MlpOut, 0, 1}}, 2},
      {"llama", "sgd", {{ParamPart::Q, 1, 3}, {ParamPart::K, 0, 1}, {ParamPart::V, 1, 0}, {ParamPart::MlpIn, 1, 2}}, 4},
      {"llama", "adamw", {{ParamPart::O, 1, 1}, {ParamPart::MlpIn, 0, 0}, {ParamPart::MlpOut, 0, 3}}, 4},
      // GPT-NeoX (parallel block): saved in its per-head fused q/k/v layout for transformers to load.
      {"neox", "adamw", {{ParamPart::Q, 1, 2}, {ParamPart::V, 0, 1}, {ParamPart::O, 1, 0}, {ParamPart::MlpIn, 1, 1}, {ParamPart::MlpOut, 0, 0}}, 2},
      // Gemma 3 (post-norms, q/k norms, GeGLU): saved as Gemma3ForCausalLM, norms back to w of 1 + w.
      {"gemma3", "adamw", {{ParamPart::Q, 1, 2}, {ParamPart::K, 0, 1}, {ParamPart::O, 3, 1}, {ParamPart::MlpIn, 0, 1}, {ParamPart::MlpOut, 2, 0}}, 4},
  };
  for (const Case& k : cases) {
    const Model model = ewtest::load_patch_model(k.model);
    const Batch data = ewtest::random_prompts(model.config().vocab_size, 8, 6, 21);
    TuneOptions o;
    o.parts = k.parts;
    o.mlp_heads = k.mlp_heads;
    o.rounds = 1;
    o.steps_per_round = 3;
    o.batch_size = data.size();
    o.optimizer = k.optim;
    o.lr = std::string(k.optim) == "sgd" ? 0.05 : 0.01;
    o.momentum = 0.9;
    o.weight_decay = 0.05;
    const TuneResult r = circuit_tune(model, data, o);
    ASSERT_TRUE(r.complete);
    check_inside_outside(model, r, parameter_masks(model, k.parts, k.mlp_heads, false, false), k.parts, k.mlp_heads);
    const std::string dir = ewtest::golden("tune_cases", std::string(k.model) + "_" + k.optim);
    const Model tuned = model.with_weights(r.weights);
    save_hf_model(tuned, dir);
    // Our logits of the tuned model, for transformers' to match.
    const at::Tensor logits = tuned.forward(data.clean).contiguous();
    safetensors_write(dir + "/edgewise_logits.safetensors",
                      {{"logits", StDType::F32, logits.sizes().vec(), logits.data_ptr(), static_cast<uint64_t>(logits.nbytes())}});
    nlohmann::json j;
    j["base"] = ewtest::patch_gold(k.model);
    j["optimizer"] = k.optim;
    j["lr"] = o.lr, j["momentum"] = o.momentum, j["weight_decay"] = o.weight_decay, j["steps"] = o.steps_per_round;
    j["mlp_heads"] = k.mlp_heads;
    for (const TuneLog& l : r.log) j["losses"].push_back(l.loss);
    for (const auto& p : k.parts) j["parts"].push_back(part_name(p));
    auto rows = [](const at::Tensor& t) {
      nlohmann::json a = nlohmann::json::array();
      const at::Tensor c = t.contiguous();
      for (int64_t i = 0; i < c.size(0); ++i) {
        nlohmann::json row = nlohmann::json::array();
        if (c.dim() == 1) { a.push_back(c[i].item<int64_t>()); continue; }
        for (int64_t t2 = 0; t2 < c.size(1); ++t2) row.push_back(c[i][t2].item<int64_t>());
        a.push_back(row);
      }
      return a;
    };
    j["tokens"] = rows(data.clean);
    j["pos"] = rows(data.clean_pos);
    j["answer"] = rows(data.correct.select(1, 0));
    write_file_atomic(dir + "/case.json", j.dump(1));
  }
}

// The default model (GGUF, dequantised) tuned for one step on SVA and saved: tune_check.py loads
// the directory with transformers (model and tokenizer from our tokenizer.json export).
TEST(Tune, DefaultModelSaves) {
  const std::string path = default_model_path();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model not installed (run scripts/setup.sh)";
  const Model model = Model::load(path);
  TaskOptions to;
  to.n = 24;
  const Batch data = make_batch(make_sva(model.tokenizer(), to), model.tokenizer());
  TuneOptions o;
  o.nodes = 4;
  o.rounds = 1;
  o.steps_per_round = 1;
  o.batch_size = 8;
  o.discovery_examples = 8;
  o.lr = 1e-2;
  const TuneResult r = circuit_tune(model, data, o);
  ASSERT_TRUE(r.complete);
  check_inside_outside(model, r, union_masks(model, r, 1), r.rounds[0].parts, 1);
  const std::string dir = ewtest::golden("tune_cases", "default");
  const Model tuned = model.with_weights(r.weights);
  save_hf_model(tuned, dir);
  // Reloaded by edgewise from the directory: the same weights, bit for bit.
  const Model back = Model::load(dir);
  for (const auto& [n, w] : tuned.weights()) EXPECT_TRUE(at::equal(w, back.weight(n))) << n;
  const std::vector<std::string> texts = {"The keys to the cabinet", "Hello, world! 12345 tokens", "The authors that the guard likes"};
  nlohmann::json j;
  std::vector<at::Tensor> keep;
  std::vector<StWriteTensor> st;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> ids = back.tokenizer().encode(texts[i]);
    EXPECT_EQ(ids, model.tokenizer().encode(texts[i]));
    j["texts"].push_back(texts[i]);
    j["ids"].push_back(ids);
    std::vector<int64_t> ids64(ids.begin(), ids.end());
    keep.push_back(back.forward(at::tensor(ids64, at::kLong).unsqueeze(0)).squeeze(0).contiguous());
  }
  for (size_t i = 0; i < keep.size(); ++i)
    st.push_back({"logits." + std::to_string(i), StDType::F32, keep[i].sizes().vec(), keep[i].data_ptr(),
                  static_cast<uint64_t>(keep[i].nbytes())});
  safetensors_write(dir + "/edgewise_logits.safetensors", st);
  write_file_atomic(dir + "/texts.json", j.dump(1));
}

// Training views the packed q/k/v buffer: its gradient must equal that of separate q, k, v
// tensors (libtorch's as_strided on a row view once dropped the k and v rows' gradient).
TEST(Tune, PackedBufferGradients) {
  REQUIRE_GOLDEN();
  const Model model = ewtest::load_patch_model("llama");
  const Batch data = ewtest::random_prompts(model.config().vocab_size, 8, 6, 21);
  std::map<std::string, at::Tensor> sep;
  for (const auto& [n, w] : model.weights()) sep[n] = w.clone().requires_grad_(true);
  answer_loss(model.with_weights(sep).forward(data.clean), data).backward();
  std::map<std::string, at::Tensor> pk;
  for (const auto& [n, w] : model.weights()) pk[n] = w.clone();
  at::Tensor leaf = at::cat({pk["blk.1.attn_q.weight"], pk["blk.1.attn_k.weight"], pk["blk.1.attn_v.weight"]}, 0).requires_grad_(true);
  const int64_t q = pk["blk.1.attn_q.weight"].size(0), k = pk["blk.1.attn_k.weight"].size(0);
  pk["blk.1.attn_q.weight"] = leaf.narrow(0, 0, q);
  pk["blk.1.attn_k.weight"] = leaf.narrow(0, q, k);
  pk["blk.1.attn_v.weight"] = leaf.narrow(0, q + k, k);
  answer_loss(model.with_weights(pk).forward(data.clean), data).backward();
  at::Tensor want = at::cat({sep["blk.1.attn_q.weight"].grad(), sep["blk.1.attn_k.weight"].grad(), sep["blk.1.attn_v.weight"].grad()}, 0);
  ASSERT_TRUE(leaf.grad().defined());
  // One fused matmul vs three: float32 summation order only.
  EXPECT_LE((leaf.grad() - want).abs().max().item<double>(), 1e-6 * want.abs().max().item<double>());
  EXPECT_GT(want.narrow(0, q, 2 * k).abs().max().item<double>(), 0.0);
}
