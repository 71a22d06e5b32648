// The patched forward (src/graph/patch.cpp) on small random GPT-2 and grouped-query Llama models
// written by tests/reference/patch_golden.py:
//   1. all masks 1 reproduces Model::forward on the clean prompt; all masks 0 with resample
//      ablation reproduces Model::forward on the corrupted prompt;
//   2. single-edge ablations equal transformers runs patched with plain forward hooks (every
//      edge kind; split q/k/v and, for GPT-2, head-level readers);
//   3. K masks in one pass equal K separate passes; the sparse path and downstream-only
//      recompute equal the dense path;
//      node masks equal their edge masks;
//   4. d f / d mask (f a logit difference) equals central finite differences, in double.
//
// Tolerances (fp32 unless said):
//   - all ones / all zeros in fp32: the patched pass computes the same values with a different
//     association (q/k/v per reader through a batched matmul instead of one fused GEMM, the
//     attention output as a sum of per-head products, the residual as resid - sum of ~20
//     (o - õ) terms). |logits| reach 16.6 where one fp32 ulp is 1.9e-6, so 1e-6 is below one
//     ulp and cannot be met by any reassociation; Model::forward and transformers, both correct,
//     differ by 6.7e-6 (GPT-2) and 1.1e-5 (Llama) on these models (printed as the floor). The
//     patched pass measures 8.6e-6 / 1.2e-5: the bound is 2e-5 (~10 ulps). Exactness itself is
//     checked in double against transformers in double: 1e-10 (double rounding ~1e-15 relative,
//     amplified by a few layers; any algebraic error would be >= 1e-3).
//   - vs transformers hooks: 1e-4 (the project's bound for logits from an independent library,
//     as in test_model.cpp).
//   - K in one pass vs separate passes: only GEMM blocking changes with the batch size: 1e-5.
//   - sparse vs dense path: the sparse path drops terms whose weight is exactly 0 and sums in
//     another order (and the dense path normalises in its own fused kernel): 2e-5, as all-ones.
//   - gradient vs finite differences, computed in double: step h = 1e-4 gives a truncation
//     error ~ h^2/6 * f''' ~ 1e-8 * f''' and a rounding error ~ 1e-16 * |f| / h ~ 1e-11; the
//     bound 1e-6 + 1e-5 * |grad| leaves margin for f''' up to ~100 and still catches any wrong
//     term (a missing path changes the gradient by its whole size).
#include <gtest/gtest.h>
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "edgewise/error.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/safetensors.h"
#include "tensor_helpers.h"
#include "test_helpers.h"

using namespace edgewise;

namespace {

const char* kFixture = "patch_golden";
std::string gold(const std::string& f) { return ewtest::golden(kFixture, f); }

std::vector<std::string> edge_names(const std::string& model, const char* key) {
  std::ifstream in(gold(model + "_edges.json"));
  return nlohmann::json::parse(in).at(key).get<std::vector<std::string>>();
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

struct Case {
  std::string name;
  Model model;
  std::map<std::string, at::Tensor> g;
};

Case load_case(const std::string& name) {
  LoadOptions o;
  o.load_tokenizer = false;
  return {name, Model::load(resolve_model(gold(name)), o), ewtest::read_golden_tensors(gold(name + "_patch.safetensors"))};
}

bool have_golden() { return ewtest::exists(gold("llama_edges.json")); }

#define REQUIRE_GOLDEN() \
  if (!have_golden()) GTEST_SKIP() << "golden files absent: run ctest (fixture patch_golden)"

// GPT-2, grouped-query Llama, GPT-NeoX with parallel attention + MLP and rotary_pct 0.25
// (Pythia's block) and GPT-NeoX sequential with rotary_pct 0.5.
const char* kModels[] = {"gpt2", "llama", "neox", "neox_seq", "gemma3"};

// Masks [N, n_src, n_dst] of ones with edge i switched off in circuit i.
at::Tensor single_edge_masks(const Graph& g, const std::vector<std::string>& names) {
  at::Tensor m = full_mask(g, static_cast<int64_t>(names.size()));
  for (size_t i = 0; i < names.size(); ++i) {
    auto e = g.find_edge(names[i]);
    EXPECT_TRUE(e.has_value()) << names[i];
    if (e) m[static_cast<int64_t>(i)][e->first][e->second] = 0.0;
  }
  return m;
}

}  // namespace

TEST(Patch, AllOnesIsCleanAllZerosIsCorrupted) {
  REQUIRE_GOLDEN();
  at::NoGradGuard no_grad;
  for (const char* name : kModels) {
    Case c = load_case(name);
    const at::Tensor clean = c.g.at("clean_ids"), corrupt = c.g.at("corrupt_ids");
    const at::Tensor ref_clean = c.model.forward(clean), ref_corrupt = c.model.forward(corrupt);
    // The floor: two correct fp32 evaluations of this model (ours, transformers') differ by this.
    const double floor = max_diff(ref_clean, c.g.at("clean_logits"));
    for (bool split : {true, false}) {
      Graph g = model_graph(c.model, split);
      at::Tensor abl = ablated_values(c.model, g, Ablation::Resample, clean, corrupt);
      PatchOptions dense;
      dense.path = PatchOptions::Path::Dense;  // all ones would take the sparse path (nothing ablated)
      at::Tensor ones = patched_forward(c.model, g, clean, abl, full_mask(g, 1), dense).squeeze(0);
      at::Tensor zeros = patched_forward(c.model, g, clean, abl, at::zeros_like(full_mask(g, 1))).squeeze(0);
      // With nothing ablated the sparse path runs Model::forward's operations: bit-identical.
      const double ds = max_diff(patched_forward(c.model, g, clean, abl, full_mask(g, 1)).squeeze(0), ref_clean);
      EXPECT_EQ(ds, 0.0) << name << " (sparse path, nothing ablated)";
      const double d1 = max_diff(ones, ref_clean), d0 = max_diff(zeros, ref_corrupt);
      // Exactness below fp32 rounding: the same passes in double against transformers in double
      // (the corrupted sources recorded in double too, or their fp32 rounding would show).
      at::Tensor ones64 = full_mask(g, 1, at::kDouble);
      at::Tensor clean64 = patched_forward(c.model, g, clean, abl, ones64).squeeze(0);
      const double e1 = max_diff(clean64, c.g.at("clean_logits_f64"));
      at::Tensor abl64 = source_outputs(c.model, g, corrupt, at::kDouble);
      at::Tensor corrupt64 = patched_forward(c.model, g, clean, abl64, at::zeros_like(ones64)).squeeze(0);
      const double e0 = max_diff(corrupt64, c.g.at("corrupt_logits_f64"));
      std::printf("%s %s: all-ones vs forward %.3g (sparse path %.3g), all-zeros vs corrupted %.3g (fp32; forward vs transformers "
                  "%.3g); in double vs transformers in double: all-ones %.3g, all-zeros %.3g\n",
                  name, split ? "split" : "head-level", d1, ds, d0, floor, e1, e0);
      // The plain forward against transformers: fp32 evaluations in different op orders (SDPA vs
      // eager softmax, a parallel block's sum in another association) agree to ~1e-6 here.
      EXPECT_LE(floor, 1e-4) << name;
      EXPECT_LE(d1, 2e-5) << name;
      EXPECT_LE(d0, 2e-5) << name;
      EXPECT_LE(e1, 1e-10) << name;
      EXPECT_LE(e0, 1e-10) << name;
    }
  }
}

TEST(Patch, SingleEdgesMatchTransformersHooks) {
  REQUIRE_GOLDEN();
  at::NoGradGuard no_grad;
  for (const char* name : kModels) {
    Case c = load_case(name);
    const at::Tensor clean = c.g.at("clean_ids"), corrupt = c.g.at("corrupt_ids");
    for (bool split : {true, false}) {
      const std::vector<std::string> names = edge_names(name, split ? "edges" : "head_edges");
      if (names.empty()) continue;  // head level is checked on GPT-2 only (no grouping)
      Graph g = model_graph(c.model, split);
      at::Tensor abl = ablated_values(c.model, g, Ablation::Resample, clean, corrupt);
      at::Tensor got = patched_forward(c.model, g, clean, abl, single_edge_masks(g, names));  // [N, B, T, V]
      at::Tensor want = c.g.at(split ? "edge_logits" : "head_edge_logits");
      ASSERT_EQ(got.sizes(), want.sizes());
      PatchOptions sparse;  // the same circuits through the sparse path
      sparse.path = PatchOptions::Path::Sparse;
      // Dense and sparse associate differently (see the all-ones bound): 2e-5. With post-norms
      // (gemma3) each sublayer's rounding is divided by its output's RMS: there the bound is 4x
      // the model's own fp32 floor (our forward against transformers', 7e-6) when that is larger.
      const double floor = max_diff(c.model.forward(clean), c.g.at("clean_logits"));
      const double bound = c.model.config().block.post_norms ? std::max(2e-5, 4 * floor) : 2e-5;
      EXPECT_LE(max_diff(patched_forward(c.model, g, clean, abl, single_edge_masks(g, names), sparse), got), bound);
      double worst = 0;
      for (size_t i = 0; i < names.size(); ++i) {
        const double d = max_diff(got[static_cast<int64_t>(i)], want[static_cast<int64_t>(i)]);
        worst = std::max(worst, d);
        EXPECT_LE(d, 1e-4) << name << " " << names[i];
      }
      // The edge must matter, or the comparison proves nothing: its logits move off the clean run.
      const double moved = (want - c.g.at("clean_logits").unsqueeze(0)).abs().amax(at::IntArrayRef{1, 2, 3}).min().item<double>();
      std::printf("%s %s: %zu single edges, max |diff| vs transformers %.3g (smallest effect %.3g)\n", name,
                  split ? "split" : "head-level", names.size(), worst, moved);
      EXPECT_GT(moved, 1e-3);
    }
  }
}

TEST(Patch, ManyMasksInOnePassEqualSeparatePasses) {
  REQUIRE_GOLDEN();
  at::NoGradGuard no_grad;
  for (const char* name : kModels) {
    Case c = load_case(name);
    const at::Tensor clean = c.g.at("clean_ids"), corrupt = c.g.at("corrupt_ids");
    Graph g = model_graph(c.model, true);
    at::Tensor abl = ablated_values(c.model, g, Ablation::Resample, clean, corrupt);
    at::manual_seed(5);
    at::Tensor masks = at::rand({6, g.n_sources(), g.n_readers()});  // fractional circuits
    masks[2] = (masks[2] > 0.5).to(at::kFloat);                        // and a binary one
    at::Tensor all = patched_forward(c.model, g, clean, abl, masks);
    double worst = 0;
    for (int64_t k = 0; k < masks.size(0); ++k)
      worst = std::max(worst, max_diff(all[k], patched_forward(c.model, g, clean, abl, masks[k]).squeeze(0)));
    // In groups of 2 circuits (fold_tokens = 2 * B * T): the same logits, in order.
    PatchOptions grouped;
    grouped.fold_tokens = 2 * clean.size(0) * clean.size(1);
    const double by_group = max_diff(patched_forward(c.model, g, clean, abl, masks, grouped), all);
    std::printf("%s: K = 6 in one pass vs separate passes: %.3g, vs groups of 2: %.3g\n", name, worst, by_group);
    EXPECT_LE(worst, 1e-5);
    EXPECT_LE(by_group, 1e-5);

    // A node mask is the edge mask with the node's row set: a node off = all its out-edges off.
    at::Tensor nodes = at::ones({2, g.n_sources()});
    nodes[0][g.head_source(1, 2)] = 0.0;
    nodes[1][g.mlp_source(0)] = 0.25;
    at::Tensor edges = full_mask(g, 2);
    edges[0][g.head_source(1, 2)] = 0.0;
    edges[1][g.mlp_source(0)] = 0.25;
    EXPECT_LE(max_diff(patched_forward(c.model, g, clean, abl, edge_mask_from_nodes(g, nodes)),
                       patched_forward(c.model, g, clean, abl, edges)),
              0.0);
    // Logits at requested positions are those positions of the full logits.
    PatchOptions po;
    po.positions = at::tensor(std::vector<int64_t>{7, 3, 0, 7}).view({2, 2});
    at::Tensor sel = patched_forward(c.model, g, clean, abl, masks, po);  // [K, B, 2, V]
    at::Tensor idx = po.positions.view({1, 2, 2, 1}).expand({6, 2, 2, all.size(3)});
    EXPECT_LE(max_diff(sel, at::gather(all, 2, idx)), 1e-5);
  }
}

TEST(Patch, SparsePathEqualsDensePath) {
  REQUIRE_GOLDEN();
  at::NoGradGuard no_grad;
  for (const char* name : kModels) {
    Case c = load_case(name);
    const at::Tensor clean = c.g.at("clean_ids"), corrupt = c.g.at("corrupt_ids");
    for (bool split : {true, false}) {
      Graph g = model_graph(c.model, split);
      at::Tensor abl = ablated_values(c.model, g, Ablation::Resample, clean, corrupt);
      // 4 circuits with <= 10 edges ablated each (binary and fractional), drawn from all edges.
      at::Tensor m = full_mask(g, 4);
      std::mt19937 rng(split ? 3 : 4);
      for (int64_t k = 0; k < 4; ++k)
        for (int n = 0; n < 10;) {
          const int64_t s = rng() % g.n_sources(), d = rng() % g.n_readers();
          if (!g.is_edge(s, d)) continue;
          m[k][s][d] = k == 3 ? 0.5 : 0.0;
          ++n;
        }
      PatchOptions dense, sparse;
      dense.path = PatchOptions::Path::Dense;
      sparse.path = PatchOptions::Path::Sparse;
      const double diff = std::max(max_diff(patched_forward(c.model, g, clean, abl, m, sparse),
                                            patched_forward(c.model, g, clean, abl, m, dense)),
                                   max_diff(patched_forward(c.model, g, clean, abl, m[0], sparse),
                                            patched_forward(c.model, g, clean, abl, m[0], dense)));
      // The same in double: any term the sparse path wrongly drops or keeps shows at full size.
      at::Tensor abl64 = source_outputs(c.model, g, corrupt, at::kDouble), m64 = m.to(at::kDouble);
      const double diff64 = max_diff(patched_forward(c.model, g, clean, abl64, m64, sparse),
                                     patched_forward(c.model, g, clean, abl64, m64, dense));
      // The dense path with one GEMM chunk per layer (the default puts all of these small
      // models' layers in one chunk): the same sum, grouped differently.
      PatchOptions per_layer = dense;
      per_layer.chunk_columns = 1;
      const double chunk64 = max_diff(patched_forward(c.model, g, clean, abl64, m64, per_layer),
                                      patched_forward(c.model, g, clean, abl64, m64, dense));
      EXPECT_LE(chunk64, 1e-10);
      std::printf("%s %s: sparse vs dense path, 10 edges ablated: %.3g (in double %.3g); dense per-layer vs "
                  "chunked GEMMs in double %.3g\n", name, split ? "split" : "head-level", diff, diff64, chunk64);
      // The sparse path computes the readers without an ablated edge as Model::forward does (one
      // fused q/k/v GEMM, one o-projection); the dense path per reader: the association differs
      // as in the all-ones case, 2e-5 in fp32. In double: 1e-10, as for all-ones.
      EXPECT_LE(diff, 2e-5);
      EXPECT_LE(diff64, 1e-10);
    }
  }
}

TEST(Patch, DownstreamOnlyEqualsFullPass) {
  REQUIRE_GOLDEN();
  at::NoGradGuard no_grad;
  for (const char* name : kModels) {
    Case c = load_case(name);
    const at::Tensor clean = c.g.at("clean_ids"), corrupt = c.g.at("corrupt_ids");
    Graph g = model_graph(c.model, true);
    at::Tensor abl = ablated_values(c.model, g, Ablation::Resample, clean, corrupt);
    const CleanCache cache = clean_cache(c.model, g, clean);
    const int64_t L = g.shape().n_layers;
    ASSERT_EQ(cache.resid.size(0), L + 1);
    // The cache's sources are the plain run's sources.
    EXPECT_LE(max_diff(cache.sources, source_outputs(c.model, g, clean)), 0.0);
    // One circuit per start layer: an edge into layer l's first head (l = 1..L-1), into m{L-1},
    // into the logits; fractional ones too; and all of them together.
    at::Tensor m = full_mask(g, L + 2);
    for (int64_t l = 1; l < L; ++l) m[l - 1][g.head_source(l - 1, 1)][*g.find_reader("a" + std::to_string(l) + ".h0<q>")] = 0.0;
    m[L - 1][g.head_source(L - 1, 2)][*g.find_reader("m" + std::to_string(L - 1))] = 0.3;
    m[L][g.mlp_source(1)][*g.find_reader("logits")] = 0.0;
    m[L + 1][0][*g.find_reader("logits")] = 0.5;
    PatchOptions dense, down;
    dense.path = down.path = PatchOptions::Path::Dense;
    down.cache = &cache;
    double worst = 0;
    for (int64_t k = 0; k < m.size(0); ++k)
      worst = std::max(worst, max_diff(patched_forward(c.model, g, clean, abl, m[k], down),
                                       patched_forward(c.model, g, clean, abl, m[k], dense)));
    worst = std::max(worst, max_diff(patched_forward(c.model, g, clean, abl, m, down),
                                     patched_forward(c.model, g, clean, abl, m, dense)));
    PatchOptions sparse, both = down;  // downstream-only and sparse together, against sparse alone
    sparse.path = both.path = PatchOptions::Path::Sparse;
    const double worst_sparse = max_diff(patched_forward(c.model, g, clean, abl, m, both),
                                         patched_forward(c.model, g, clean, abl, m, sparse));
    std::printf("%s: downstream-only vs full pass: dense %.3g, sparse %.3g\n", name, worst, worst_sparse);
    // The cache holds the clean run computed as Model::forward computes it; the dense path
    // computes those layers per reader: the association differs as for all-ones, 2e-5. The
    // sparse path computes them as Model::forward does: the same operations on the same values.
    EXPECT_LE(worst, 2e-5);
    EXPECT_EQ(worst_sparse, 0.0);
    // The cache is really read, and only where the pass starts: poison the residual before the
    // final norm. A logits-only circuit (starts at L) sees it; a layer-1 circuit recomputes it.
    CleanCache poisoned{cache.resid.clone(), cache.sources, cache.tokens};
    poisoned.resid[L] += at::linspace(-1.0, 1.0, cache.resid.size(-1));  // not a constant: LayerNorm removes those
    PatchOptions bad = down;
    bad.cache = &poisoned;
    EXPECT_GT(max_diff(patched_forward(c.model, g, clean, abl, m[L], bad),
                       patched_forward(c.model, g, clean, abl, m[L], dense)), 1e-2);
    EXPECT_LE(max_diff(patched_forward(c.model, g, clean, abl, m[0], bad),
                       patched_forward(c.model, g, clean, abl, m[0], dense)), 2e-5);
    // A cache of other tokens is refused.
    bool threw = false;
    try {
      patched_forward(c.model, g, corrupt, abl, m, down);
    } catch (const Error& e) {
      threw = std::string(e.what()).find("clean cache was computed for other tokens") != std::string::npos;
    }
    EXPECT_TRUE(threw);
  }
}

TEST(Patch, MaskGradientMatchesFiniteDifferences) {
  REQUIRE_GOLDEN();
  for (const char* name : kModels) {
    Case c = load_case(name);
    const at::Tensor clean = c.g.at("clean_ids"), corrupt = c.g.at("corrupt_ids");
    for (bool split : {true, false}) {
      Graph g = model_graph(c.model, split);
      at::Tensor abl = ablated_values(c.model, g, Ablation::Resample, clean, corrupt);
      at::manual_seed(9);
      at::Tensor base = 0.3 + 0.4 * at::rand({1, g.n_sources(), g.n_readers()}, at::kDouble);
      const int64_t T = clean.size(1);
      // f = sum over prompts of the logit difference (token 3 - token 5) at the last position.
      auto f = [&](const at::Tensor& m) {
        at::Tensor lg = patched_forward(c.model, g, clean, abl, m);  // [1, B, T, V] double
        at::Tensor last = lg.select(2, T - 1);
        return (last.select(-1, 3) - last.select(-1, 5)).sum();
      };
      at::Tensor m = base.clone().requires_grad_(true);
      at::Tensor y = f(m);
      ASSERT_EQ(y.scalar_type(), at::kDouble);
      y.backward();
      at::Tensor grad = m.grad();
      // Non-edges get no gradient (their mask entries are ignored).
      const std::vector<uint8_t> real = g.real_edges();
      double off_edge = 0;
      for (int64_t s = 0; s < g.n_sources(); ++s)
        for (int64_t d = 0; d < g.n_readers(); ++d)
          if (!real[s * g.n_readers() + d]) off_edge = std::max(off_edge, std::abs(grad[0][s][d].item<double>()));
      EXPECT_EQ(off_edge, 0.0);
      // The same gradient with one GEMM chunk per layer, and for each of K = 2 circuits in one
      // pass (the backward loops over circuits): equal up to double rounding.
      {
        PatchOptions per_layer;
        per_layer.chunk_columns = 1;
        at::Tensor m1 = base.clone().requires_grad_(true);
        at::Tensor last = patched_forward(c.model, g, clean, abl, m1, per_layer).select(2, T - 1);
        (last.select(-1, 3) - last.select(-1, 5)).sum().backward();
        EXPECT_LE(max_diff(m1.grad(), grad), 1e-10) << name;
        at::Tensor m2 = at::cat({base, base}).requires_grad_(true);
        at::Tensor last2 = patched_forward(c.model, g, clean, abl, m2).select(2, T - 1);  // [2, B, V]
        (last2.select(-1, 3) - last2.select(-1, 5)).sum().backward();
        EXPECT_LE(max_diff(m2.grad()[0], grad[0]), 1e-10) << name;
        EXPECT_LE(max_diff(m2.grad()[1], grad[0]), 1e-10) << name;
      }

      std::mt19937 rng(split ? 1 : 2);
      at::NoGradGuard no_grad;
      const double h = 1e-4;
      double worst = 0, largest = 0;
      int checked = 0;
      while (checked < 16) {
        const int64_t s = rng() % g.n_sources(), d = rng() % g.n_readers();
        if (!g.is_edge(s, d)) continue;
        at::Tensor mp = base.clone(), mm = base.clone();
        mp[0][s][d] += h;
        mm[0][s][d] -= h;
        const double fd = (f(mp).item<double>() - f(mm).item<double>()) / (2 * h);
        const double an = grad[0][s][d].item<double>();
        worst = std::max(worst, std::abs(fd - an));
        largest = std::max(largest, std::abs(an));
        EXPECT_LE(std::abs(fd - an), 1e-6 + 1e-5 * std::abs(an)) << name << " " << g.edge_name(s, d);
        ++checked;
      }
      std::printf("%s %s: gradient vs central differences on 16 edges: max |diff| %.3g (max |grad| %.3g)\n", name,
                  split ? "split" : "head-level", worst, largest);
      EXPECT_GT(largest, 1e-3);  // the sampled gradients are not all zero
    }
  }
}

TEST(Patch, MeanAndZeroAblationShapes) {
  REQUIRE_GOLDEN();
  at::NoGradGuard no_grad;
  Case c = load_case("gpt2");
  const at::Tensor clean = c.g.at("clean_ids");
  Graph g = model_graph(c.model, true);
  const int64_t T = clean.size(1), D = c.model.config().d_model;
  at::Tensor src = source_outputs(c.model, g, clean);  // [n_src, B, T, D]
  // The sources and the biases sum to the final residual: input + heads + MLPs + o/down biases.
  at::Tensor mean = ablated_values(c.model, g, Ablation::Mean, clean, {});
  at::Tensor pos = ablated_values(c.model, g, Ablation::MeanPerPosition, clean, {});
  at::Tensor zero = ablated_values(c.model, g, Ablation::Zero, clean, {});
  EXPECT_EQ(mean.sizes(), (std::vector<int64_t>{g.n_sources(), 1, 1, D}));
  EXPECT_EQ(pos.sizes(), (std::vector<int64_t>{g.n_sources(), 1, T, D}));
  EXPECT_EQ(zero.sizes(), (std::vector<int64_t>{g.n_sources(), 1, 1, D}));
  EXPECT_LE(max_diff(mean.squeeze(1).squeeze(1), src.mean(at::IntArrayRef{1, 2})), 1e-6);
  // Ablating with the clean run's own outputs changes nothing, whatever the mask.
  at::Tensor m = at::rand({2, g.n_sources(), g.n_readers()});
  EXPECT_LE(max_diff(patched_forward(c.model, g, clean, src, m), patched_forward(c.model, g, clean, src, full_mask(g, 2))),
            1e-5);
  // Zero ablation of every edge leaves only the biases: logits are the same for every prompt
  // and position (GPT-2 has o and down biases, so they are not all zero).
  // In double: in fp32 the softmax over n equal scores (1/n, not exact) breaks the equality at
  // ~1e-5 already; in double the rounding is ~1e-15 relative.
  at::Tensor lz = patched_forward(c.model, g, clean, zero, at::zeros({1, g.n_sources(), g.n_readers()}, at::kDouble));
  EXPECT_LE(max_diff(lz, lz[0][0][0].expand_as(lz)), 1e-10);
  EXPECT_GT(lz.abs().max().item<double>(), 1e-3);  // the biases are there

  // Padding: row 0 has 5 real tokens (the rest is padding), row 1 all T. The mean counts real
  // tokens only. Reference: the sources of the two rows run separately, row 0 cut to its 5
  // tokens (causal attention: a real token never sees the padding after it), averaged by hand.
  const int64_t len0 = 5;
  at::Tensor lengths = at::tensor(std::vector<int64_t>{len0, T});
  at::Tensor s0 = source_outputs(c.model, g, clean.narrow(0, 0, 1).narrow(1, 0, len0));  // [n, 1, 5, D]
  at::Tensor s1 = source_outputs(c.model, g, clean.narrow(0, 1, 1));                     // [n, 1, T, D]
  at::Tensor want = (s0.sum(at::IntArrayRef{1, 2}) + s1.sum(at::IntArrayRef{1, 2})) / static_cast<double>(len0 + T);
  at::Tensor got = ablated_values(c.model, g, Ablation::Mean, clean, {}, lengths);
  // Sums of 13 fp32 terms of size ~1, in another order: 1e-6.
  EXPECT_LE(max_diff(got.squeeze(1).squeeze(1), want), 1e-6);
  EXPECT_GT(max_diff(got, mean), 1e-3);  // the padding did count before
  at::Tensor want_pos = s1.clone();     // positions >= 5: row 1 alone; before: both rows
  want_pos.narrow(2, 0, len0).add_(s0).div_(2.0);
  EXPECT_LE(max_diff(ablated_values(c.model, g, Ablation::MeanPerPosition, clean, {}, lengths), want_pos), 1e-6);
  // Over a dataset in batches of one row: the same mean (each token weighs the same).
  int64_t calls = 0;
  at::Tensor ds = dataset_mean(c.model, g, Ablation::Mean, clean, lengths, 1, [&](int64_t) { ++calls; });
  EXPECT_LE(max_diff(ds, got), 1e-6);
  EXPECT_EQ(calls, clean.size(0));
}

TEST(Patch, BadInputsFailWithMessages) {
  REQUIRE_GOLDEN();
  Case c = load_case("llama");
  const at::Tensor clean = c.g.at("clean_ids");
  Graph g = model_graph(c.model, true);
  at::Tensor zero = ablated_values(c.model, g, Ablation::Zero, clean, {});
  auto err = [&](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(err([&] { patched_forward(c.model, g, clean, zero, at::ones({1, 3, 3})); }).find("masks must be [K, "),
            std::string::npos);
  EXPECT_NE(err([&] { patched_forward(c.model, g, clean, at::zeros({2, 1, 1, 4}), full_mask(g, 1)); })
                .find("ablated values must be"),
            std::string::npos);
  Graph other(GraphShape{2, 4, 2}, true);
  EXPECT_NE(err([&] { patched_forward(c.model, other, clean, zero, full_mask(other, 1)); }).find("does not match"),
            std::string::npos);
  PatchOptions sparse;
  sparse.path = PatchOptions::Path::Sparse;
  at::Tensor mg = full_mask(g, 1).requires_grad_(true);
  EXPECT_NE(err([&] { patched_forward(c.model, g, clean, zero, mg, sparse); }).find("sparse path gives no gradients"),
            std::string::npos);
  EXPECT_NE(err([&] { ablation_from_string("median"); }).find("unknown ablation 'median'"), std::string::npos);
  EXPECT_NE(err([&] { ablated_values(c.model, g, Ablation::Resample, clean, clean.narrow(1, 0, 3)); })
                .find("must have the clean tokens' shape"),
            std::string::npos);
}
