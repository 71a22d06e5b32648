// Path patching, FLAP and APP (include/edgewise/path_patching.h) on tests/reference/patch_golden.py's
// random GPT-2 and grouped-query Llama models:
//  - reference cases for tests/reference/pp_check.py, which recomputes with transformers hooks
//    (two-pass path patching, direct and via MLPs, 1e-4), FLAP's statistics, channel metrics and
//    head scores from captured activations (1e-5 relative), and the analytic FLOPs with torch's
//    FlopCounterMode (exact);
//  - pruned_metric (hooks on z) equals the patched forward with the same heads node-ablated (two
//    code paths: mean replacement = the graph's mean ablation, corrupted z = resample);
//  - the selection rule on hand-computed scores, the head budget, the cliff rules on fixed curves;
//  - a stopped and resumed search ends with the same circuit, sweeps and FLOPs as an uninterrupted one.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "edgewise/attribution.h"
#include "edgewise/circuit.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/flops.h"
#include "edgewise/path_patching.h"
#include "patch_models.h"

using namespace edgewise;

namespace {

nlohmann::json rows(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous();
  nlohmann::json j = nlohmann::json::array();
  if (c.dim() == 1) {
    for (int64_t i = 0; i < c.size(0); ++i) j.push_back(c[i].item<double>());
    return j;
  }
  for (int64_t i = 0; i < c.size(0); ++i) j.push_back(rows(c[i]));
  return j;
}

nlohmann::json int_rows(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  nlohmann::json j = nlohmann::json::array();
  for (int64_t i = 0; i < c.size(0); ++i) {
    nlohmann::json r = nlohmann::json::array();
    for (int64_t k = 0; k < c.size(1); ++k) r.push_back(c[i][k].item<int64_t>());
    j.push_back(r);
  }
  return j;
}

Batch padded_prompts(int64_t vocab, int64_t B, int64_t T, uint64_t seed) {
  Batch b = ewtest::random_prompts(vocab, B, T, seed);
  b.clean_len = at::arange(T - B + 1, T + 1, at::kLong);  // rows of different lengths, right-padded
  b.corrupted_len = b.clean_len.clone();
  for (int64_t i = 0; i < B; ++i) {
    const int64_t n = b.clean_len[i].item<int64_t>();
    b.clean[i].narrow(0, n, T - n).fill_(0);
    b.corrupted[i].narrow(0, n, T - n).fill_(0);
  }
  b.clean_pos = b.clean_len - 1;
  b.corrupted_pos = b.clean_pos.clone();
  return b;
}

}  // namespace

TEST(PathPatching, WritesReferenceCases) {
  REQUIRE_GOLDEN();
  for (const char* name : {"gpt2", "llama"}) {
    Model m = ewtest::load_patch_model(name);
    Graph g = model_graph(m, true);
    const ModelConfig& c = m.config();
    Batch b = ewtest::random_prompts(c.vocab_size, 3, 6, 11);
    nlohmann::json j = {{"model_dir", ewtest::patch_gold(name)}, {"arch", name}, {"clean", int_rows(b.clean)},
                        {"corrupted", int_rows(b.corrupted)}};
    for (int64_t i = 0; i < b.size(); ++i) {
      j["correct"].push_back(b.correct[i][0].item<int64_t>());
      j["incorrect"].push_back(b.incorrect[i][0].item<int64_t>());
    }
    PathPatchingOptions o;
    o.batch_size = 2;  // two parts: the weighting of part means is exercised
    const int64_t L = c.n_layers, H = c.n_heads, G = c.n_kv_heads;
    struct Case {
      int64_t sl, sh;
      std::string receiver;  // reader name
    };
    std::vector<Case> cases = {{0, 1, "logits"}, {L - 1, H - 1, "logits"}, {1, 2, "logits"}};
    for (const char* in : {"q", "k", "v"}) {
      const bool kv = std::string(in) != "q" && G != H;
      cases.push_back({0, 0, "a2." + std::string(kv ? "kv" : "h") + "1<" + in + ">"});
      cases.push_back({1, 3, "a" + std::to_string(L - 1) + "." + (kv ? "kv" : "h") + "0<" + in + ">"});
    }
    for (const char* paths : {"direct", "via-mlps"}) {
      o.paths = paths_from_string(paths);
      for (const Case& cs : cases) {
        const int64_t r = *g.find_reader(cs.receiver);
        const std::vector<double> v = path_patch_scores(m, g, b, {g.head_source(cs.sl, cs.sh)}, {r}, o).metric;
        nlohmann::json rj = "logits";
        if (cs.receiver != "logits") {
          const auto& rd = g.reader(r);
          const char* in = rd.kind == Graph::ReaderKind::Q ? "q" : rd.kind == Graph::ReaderKind::K ? "k" : "v";
          rj = {{"layer", rd.layer}, {"head", rd.head}, {"input", in}};
        }
        j["path_cases"].push_back({{"sender", {cs.sl, cs.sh}}, {"receiver", rj}, {"paths", paths}, {"metric", v[0]}});
      }
    }
    // FLAP on right-padded prompts of different lengths.
    Batch p = padded_prompts(c.vocab_size, 4, 9, 12);
    const FlapStats sc = flap_stats(m, p.clean, p.clean_len, 3);
    const FlapStats sk = flap_stats(m, p.corrupted, p.corrupted_len, 3);
    EXPECT_EQ(sc.tokens, p.clean_len.sum().item<int64_t>());
    nlohmann::json fj = {{"tokens", int_rows(p.clean)}, {"lengths", int_rows(p.clean_len.unsqueeze(0))[0]},
                         {"corrupted_tokens", int_rows(p.corrupted)},
                         {"corrupted_lengths", int_rows(p.corrupted_len.unsqueeze(0))[0]}};
    for (FlapMetric fm : {FlapMetric::IFV, FlapMetric::WIFV, FlapMetric::WIFN}) {
      auto [a, f] = flap_channel_metric(m, sc, fm);
      fj["channel"][flap_metric_name(fm)] = {{"attn", rows(a)}, {"mlp", rows(f)}};
      FlapScores s = flap_scores(m, sc, fm);
      fj["heads"][flap_metric_name(fm)] = rows(s.heads);
      if (fm == FlapMetric::WIFV) fj["mlp_scores"]["wifv"] = rows(s.mlp);
    }
    FlapScores cs = flap_contrastive_scores(m, sc, sk, FlapMetric::WIFN);
    fj["contrastive_heads"]["wifn"] = rows(cs.heads);
    fj["contrastive_mlp"]["wifn"] = rows(cs.mlp);
    j["flap"] = fj;
    for (auto [B, T] : std::vector<std::pair<int64_t, int64_t>>{{2, 7}, {1, 13}})
      j["flops"].push_back({{"rows", B}, {"tokens", T}, {"edgewise", forward_flops(c, B, T, 0, T)}});
    const std::string dir = ewtest::golden("pp_cases", name);
    std::filesystem::create_directories(dir);
    write_file_atomic(dir + "/case.json", j.dump(1));
  }
}

// Not on gemma3: with post-norms, pruning a head (its z replaced) re-normalises its layer's other
// heads too, while the graph's node ablation replaces only the head's share of the normed output
// (docs/PATCHING.md, "Post-norms"); the two coincide only without post-norms.
TEST(PathPatching, PrunedMetricEqualsNodeAblation) {
  REQUIRE_GOLDEN();
  for (const char* name : {"gpt2", "llama"}) {
    Model m = ewtest::load_patch_model(name);
    Graph g = model_graph(m, true);
    const ModelConfig& c = m.config();
    Batch b = ewtest::random_prompts(c.vocab_size, 4, 7, 5);
    PruneSet keep{at::ones({c.n_layers, c.n_heads}, at::kBool), at::ones({c.n_layers, c.d_mlp}, at::kBool)};
    keep.heads[0][1] = false;
    keep.heads[2][3] = false;
    keep.heads[c.n_layers - 1][0] = false;
    at::Tensor node = at::ones({g.n_sources()});
    node[g.head_source(0, 1)] = 0;
    node[g.head_source(2, 3)] = 0;
    node[g.head_source(c.n_layers - 1, 0)] = 0;
    const at::Tensor masks = edge_mask_from_nodes(g, node);
    const FlapStats st = flap_stats(m, b.clean, b.clean_len, 4);
    for (Ablation ab : {Ablation::Mean, Ablation::Resample}) {
      const double ours = pruned_metric(m, b, keep, st, ab, Metric::LogitDiff, 3);
      const std::vector<double> ref = circuit_metrics(m, g, b, masks, ab, Metric::LogitDiff, 4);
      // Two float32 computations of the same function: summation order only.
      EXPECT_NEAR(ours, ref[1], 1e-4) << name << " " << ablation_name(ab);
      EXPECT_GT(std::fabs(ref[1] - ref[0]), 1e-3) << "the ablation must matter for the check to mean anything";
    }
    PruneSet all{at::ones({c.n_layers, c.n_heads}, at::kBool), at::ones({c.n_layers, c.d_mlp}, at::kBool)};
    const std::vector<double> full = circuit_metrics(m, g, b, masks, Ablation::Mean, Metric::LogitDiff, 4);
    EXPECT_NEAR(pruned_metric(m, b, all, st, Ablation::Mean, Metric::LogitDiff, 4), full[0], 1e-5);
  }
}

TEST(PathPatching, SelectionRule) {
  Graph g(GraphShape{2, 5, 5}, true);
  std::vector<int64_t> senders;
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t h = 0; h < 5; ++h) senders.push_back(g.head_source(l, h));
  // One score of 0.5 among nine zeros: mean 0.05, unbiased SD sqrt(0.225 / 9) = 0.1581;
  // |0.5| - 0.05 = 0.45 exceeds 2 SD (0.316) but not 3 SD (0.474).
  std::vector<double> s(10, 0.0);
  s[7] = -0.5;
  PathPatchingOptions o;
  o.threshold = PathPatchingOptions::Threshold::Flat;
  EXPECT_EQ(select_senders(g, senders, s, 2, o), std::vector<int64_t>{7});
  o.importance_threshold = 3;
  EXPECT_TRUE(select_senders(g, senders, s, 2, o).empty());
  // Linear: sender layer 1, receiver layer 2 -> distance 0: same as flat at T = 2.
  o.importance_threshold = 2;
  o.threshold = PathPatchingOptions::Threshold::Linear;
  EXPECT_EQ(select_senders(g, senders, s, 2, o), std::vector<int64_t>{7});
  // ... receiver layer 5 (distance 3): 2.3 SD = 0.364 < 0.45, still selected; at T = 2.7: 3.0 SD, not.
  EXPECT_EQ(select_senders(g, senders, s, 5, o), std::vector<int64_t>{7});
  o.importance_threshold = 2.7;
  EXPECT_TRUE(select_senders(g, senders, s, 5, o).empty());
  // min value: |score| must exceed it.
  o.importance_threshold = 2;
  o.min_value_threshold = 0.5;
  EXPECT_TRUE(select_senders(g, senders, s, 2, o).empty());
}

TEST(PathPatching, CliffRules) {
  // Flat at 100, a drop of 50 between index 6 and 7, flat after: range 50, drop threshold 5.
  std::vector<double> p = {100, 100, 99, 100, 99, 100, 100, 50, 50, 49, 50, 50, 50, 49, 50};
  // window round(15 / 10) = 2: the first i where p[i] - p[i+1] >= 5 is 6.
  EXPECT_EQ(cliff_point(p, Cliff::First), 6);
  EXPECT_EQ(cliff_point(p, Cliff::Biggest), 6);
  EXPECT_EQ(cliff_point(p, Cliff::Fixed), -1);
  std::vector<double> flat(15, 80.0);
  EXPECT_EQ(cliff_point(flat, Cliff::First), -1);
  // Two drops: a small one first (10 at index 2), the big one later (60 at index 9).
  std::vector<double> two = {100, 100, 100, 90, 90, 90, 90, 90, 90, 90, 30, 30, 30, 30, 30};
  EXPECT_EQ(cliff_point(two, Cliff::First), 2);
  EXPECT_EQ(cliff_point(two, Cliff::Biggest), 9);
}

TEST(PathPatching, FlapSelectBudget) {
  REQUIRE_GOLDEN();
  Model m = ewtest::load_patch_model("gpt2");
  const ModelConfig& c = m.config();
  Batch b = ewtest::random_prompts(c.vocab_size, 3, 8, 3);
  const FlapStats st = flap_stats(m, b.clean, b.clean_len, 3);
  const FlapScores s = flap_scores(m, st, FlapMetric::WIFV);
  const int64_t NH = c.n_layers * c.n_heads;
  for (double sp : {0.0, 0.25, 0.5, 0.9, 1.0}) {
    PruneSet ps = flap_select(m, s, sp, false);
    EXPECT_EQ(ps.heads.sum().item<int64_t>(), std::llround(NH * (1 - sp))) << sp;
    // The kept heads are the best-scored ones.
    if (sp > 0 && sp < 1) {
      const double worst_kept = s.heads.masked_select(ps.heads).min().item<double>();
      const double best_dropped = s.heads.masked_select(ps.heads.logical_not()).max().item<double>();
      EXPECT_GE(worst_kept, best_dropped);
    }
  }
  // With MLP channels: the kept parameters stay within the budget.
  PruneSet ps = flap_select(m, s, 0.5, true);
  EXPECT_GT(ps.channels.sum().item<int64_t>(), 0);
  EXPECT_LT(ps.channels.sum().item<int64_t>(), c.n_layers * c.d_mlp);
  PruneSet u = prune_union(flap_select(m, s, 0.9, false), ps);
  EXPECT_TRUE(at::equal(u.heads, ps.heads.logical_or(flap_select(m, s, 0.9, false).heads)));
}

TEST(PathPatching, ResumeEqualsUninterrupted) {
  REQUIRE_GOLDEN();
  Model m = ewtest::load_patch_model("gpt2");
  Graph g = model_graph(m, true);
  Batch b = ewtest::random_prompts(m.config().vocab_size, 4, 6, 21);
  PathPatchingOptions o;
  o.importance_threshold = 1.0;  // low enough for several receivers on a random model
  o.min_value_threshold = 0.001;
  o.run.fingerprint = "resume-test";
  const PathPatchingResult full = path_patching(m, g, b, o);
  ASSERT_GE(full.steps, 3) << "the test needs a search of several steps";
  const std::string ck = ewtest::golden("pp_cases", "resume.ck.json");
  std::filesystem::create_directories(std::filesystem::path(ck).parent_path());
  std::filesystem::remove(ck);
  PathPatchingOptions s = o;
  s.run.checkpoint = ck;
  s.run.checkpoint_seconds = 0;  // after every step
  s.run.resume = true;
  int64_t polls = 0;
  s.run.stop = [&] { return ++polls > 2; };  // killed after two steps
  const PathPatchingResult part = path_patching(m, g, b, s);
  EXPECT_FALSE(part.complete);
  s.run.stop = nullptr;
  const PathPatchingResult rest = path_patching(m, g, b, s);
  EXPECT_TRUE(rest.complete);
  EXPECT_TRUE(at::equal(rest.heads, full.heads));
  EXPECT_EQ(rest.steps, full.steps);
  EXPECT_EQ(rest.evaluations, full.evaluations);
  EXPECT_EQ(rest.flops, full.flops);
  ASSERT_EQ(rest.sweeps.size(), full.sweeps.size());
  for (size_t i = 0; i < full.sweeps.size(); ++i) {
    EXPECT_EQ(rest.sweeps[i].reader, full.sweeps[i].reader);
    EXPECT_EQ(rest.sweeps[i].selected, full.sweeps[i].selected);
    EXPECT_EQ(rest.sweeps[i].scores, full.sweeps[i].scores);
  }
  // Another run's checkpoint is refused.
  PathPatchingOptions other = s;
  other.run.fingerprint = "another run";
  EXPECT_THROW(path_patching(m, g, b, other), Error);
}

TEST(PathPatching, AppOnlyScoresAllowedSenders) {
  REQUIRE_GOLDEN();
  Model m = ewtest::load_patch_model("llama");
  Graph g = model_graph(m, true);
  Batch b = ewtest::random_prompts(m.config().vocab_size, 4, 6, 22);
  PathPatchingOptions o;
  o.importance_threshold = 1.0;
  o.min_value_threshold = 0.001;
  o.allowed = at::zeros({m.config().n_layers, m.config().n_heads}, at::kBool);
  o.allowed[1][0] = true;
  o.allowed[2][3] = true;
  o.allowed[3][1] = true;
  const PathPatchingResult r = path_patching(m, g, b, o);
  EXPECT_TRUE(at::equal(r.heads.logical_and(o.allowed.logical_not()).any(), at::zeros({}, at::kBool)));
  for (const PathSweep& sw : r.sweeps)
    for (int64_t s : sw.senders) EXPECT_TRUE(o.allowed[g.source(s).layer][g.source(s).head].item<bool>());
  const PathPatchingResult plain = [&] {
    PathPatchingOptions p = o;
    p.allowed = at::Tensor();
    return path_patching(m, g, b, p);
  }();
  EXPECT_LT(r.flops, plain.flops);
  EXPECT_LT(r.evaluations, plain.evaluations);
}
