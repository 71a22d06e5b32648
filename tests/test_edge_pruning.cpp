// Edge Pruning (src/discover/edge_pruning.cpp) on the small random GPT-2 and grouped-query Llama
// models of tests/reference/patch_golden.py:
//   1. the objective's gradient w.r.t. every kind of parameter (edge and node log-alphas, the
//      lambdas) equals central finite differences of the objective itself, in double;
//   2. with large log-alphas the sampled masks are exactly 1 and KL is 0; the trained circuit
//      of a run that cannot move (tiny learning rate) is the whole graph and reproduces the
//      model (KL 0, exact match 1);
//   3. our AdamW equals libtorch's torch::optim::AdamW (an independent implementation), and
//      the ascent variant equals it on the negated gradient;
//   4. training moves the edge sparsity to its target and the discretised circuit has exactly
//      the trained count (the largest entries of the deterministic mask);
//   5. a run stopped part-way and resumed from its checkpoint ends with the uninterrupted
//      run's circuit; a checkpoint of another run, or a damaged one, is refused naming the file.
#include <gtest/gtest.h>
#include <ATen/ATen.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "edgewise/edge_pruning.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/hard_concrete.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "patch_models.h"

using namespace edgewise;

namespace {

Model load(const std::string& name) { return ewtest::load_patch_model(name); }
Batch prompts(int64_t vocab, int64_t B, int64_t T, uint64_t seed) { return ewtest::random_prompts(vocab, B, T, seed); }

at::Tensor clean_last_of(const Model& m, const Batch& b, at::ScalarType dt) {
  at::NoGradGuard ng;
  return logits_at(m.forward(b.clean), b.clean_pos).to(dt);
}

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("ew_ep_" + std::to_string(::getpid()) + "_" + name)).string();
}

}  // namespace

// 1. d objective / d parameter by autograd = central differences of the objective (double).
// Log-alphas near 0 and noise away from the clamp boundaries keep every sampled mask strictly
// inside (0, 1), where the objective is smooth; h = 1e-5 gives truncation error ~h^2 ~ 1e-10
// relative and rounding ~1e-16 / h ~ 1e-11, so 1e-6 relative (+1e-9 absolute) has margin and
// still catches a missing factor or term (those change gradients by O(1) relative).
TEST(EdgePruning, ObjectiveGradientMatchesFiniteDifferences) {
  REQUIRE_GOLDEN();
  for (const std::string name : {"gpt2", "llama", "gemma3"}) {
    SCOPED_TRACE(name);
    Model m = load(name);
    Graph g = model_graph(m, true);
    const int64_t S = g.n_sources(), R = g.n_readers();
    Batch b = prompts(m.config().vocab_size, 3, 6, 11);
    at::Tensor abl = ablated_values(m, g, Ablation::Resample, b.clean, b.corrupted).to(at::kDouble);
    at::Tensor cl = clean_last_of(m, b, at::kDouble);
    at::Tensor valid = edge_pruning_valid(g, /*keep_embedding_edges=*/false);
    at::manual_seed(5);
    // z is inside (0, 1) when |logit(u) + la| < beta log(11) ~ 1.6: u in [0.35, 0.65] (|logit| < 0.62)
    // and |la| <= 0.9.
    at::Tensor la = (at::randn({S, R}, at::kDouble) * 0.3).clamp(-0.9, 0.9).requires_grad_(true);
    at::Tensor u = at::rand({S, R}, at::kDouble) * 0.3 + 0.35;
    at::Tensor nla = (at::randn({S}, at::kDouble) * 0.3).clamp(-0.9, 0.9).requires_grad_(true);
    at::Tensor nu = at::rand({S}, at::kDouble) * 0.3 + 0.35;
    at::Tensor lam = at::tensor({0.7, -0.4, 0.3, 0.9}, at::kDouble).requires_grad_(true);
    auto objective = [&](const at::Tensor& a, const at::Tensor& na, const at::Tensor& l) {
      return edge_pruning_objective(m, g, b, abl, cl, valid, a, u, na, nu, l, 0.6, 0.3, false);
    };
    EdgePruningObjective o = objective(la, nla, lam);
    // The masks really are fractional (the test would be vacuous at the clamps).
    at::Tensor z = hard_concrete::sample(la.detach(), u).masked_select(valid);
    ASSERT_GT(z.min().item<double>(), 0.0);
    ASSERT_LT(z.max().item<double>(), 1.0);
    o.loss.backward();
    const double h = 1e-5;
    // which: 0 edge log-alphas, 1 node log-alphas, 2 lambdas
    auto check = [&](int which, int64_t flat, const std::string& what) {
      at::NoGradGuard ng;
      const at::Tensor& p = which == 0 ? la : which == 1 ? nla : lam;
      const at::Tensor grad = p.grad();
      at::Tensor plus = p.detach().clone(), minus = p.detach().clone();
      plus.view(-1)[flat] += h;
      minus.view(-1)[flat] -= h;
      auto eval = [&](const at::Tensor& v) {
        return objective(which == 0 ? v : la.detach(), which == 1 ? v : nla.detach(), which == 2 ? v : lam.detach())
            .loss.item<double>();
      };
      const double fd = (eval(plus) - eval(minus)) / (2 * h), ad = grad.view(-1)[flat].item<double>();
      EXPECT_NEAR(ad, fd, 1e-6 * std::abs(fd) + 1e-9) << what << " entry " << flat;
    };
    // 12 sampled edges (every kind of reader is among the real edges drawn), 5 nodes, 4 lambdas.
    at::Tensor edges = valid.flatten().nonzero().flatten();
    at::Tensor pick = at::randperm(edges.numel(), at::kLong).narrow(0, 0, 12);
    for (int64_t i = 0; i < 12; ++i) check(0, edges[pick[i]].item<int64_t>(), "edge log-alpha");
    for (int64_t i : {0L, 1L, S / 2, S - 2, S - 1}) check(1, i, "node log-alpha");
    for (int64_t i = 0; i < 4; ++i) check(2, i, "lambda");
    // The Lagrangian's gradient w.r.t. lambda1 is (s - t) exactly.
    EXPECT_NEAR(lam.grad()[0].item<double>(), o.edge_sparsity.item<double>() - 0.6, 1e-12);
  }
}

// 2. Large log-alphas: every sampled mask is exactly 1 (P(z < 1) < 1e-8 per entry at 20), so
// the circuit is the model and KL is 0 up to rounding; the discretised circuit of an untrained
// run (the reference's init N(10, 0.01), learning rate ~0) keeps every edge and reproduces the
// model exactly (the patched forward with an all-ones mask is the plain forward, test_patch).
TEST(EdgePruning, LargeLogAlphasGiveTheFullModel) {
  REQUIRE_GOLDEN();
  Model m = load("gpt2");
  Graph g = model_graph(m, true);
  const int64_t S = g.n_sources(), R = g.n_readers();
  Batch b = prompts(m.config().vocab_size, 4, 6, 3);
  at::Tensor abl = ablated_values(m, g, Ablation::Resample, b.clean, b.corrupted);
  at::Tensor cl = clean_last_of(m, b, at::kFloat);
  at::Tensor valid = edge_pruning_valid(g, false);
  at::Tensor u = at::rand({S, R});
  at::Tensor la = at::full({S, R}, 20.0);
  EXPECT_EQ(hard_concrete::sample(la, u).min().item<float>(), 1.0f);
  EdgePruningObjective o =
      edge_pruning_objective(m, g, b, abl, cl, valid, la, u, {}, {}, at::zeros({4}), 0.5, 0, false);
  EXPECT_LT(std::abs(o.kl.item<double>()), 1e-6);  // fp32 log-softmax of equal logits
  EXPECT_NEAR(o.edge_sparsity.item<double>(), 0.0, 1e-7);

  EdgePruningOptions opt;
  opt.steps = 2;
  opt.lr = opt.lambda_lr = 1e-12;
  opt.batch_size = 4;
  EdgePruningResult r = edge_pruning(m, g, b, opt);
  const int64_t n_edges = valid.sum().item<int64_t>();
  EXPECT_EQ(r.edges_kept, n_edges);
  EXPECT_NEAR(r.trained_sparsity, 0.0, 1e-4);  // deterministic mask sigmoid(12) = 1 - 6e-6
  EvaluateOptions eo;
  eo.ablation = Ablation::Resample;
  eo.batch_size = 4;
  CircuitEvaluation a = evaluate_circuits(m, g, b, r.kept.to(at::kFloat).unsqueeze(0), eo);
  EXPECT_LT(std::abs(a.kl[1]), 1e-6);
  EXPECT_DOUBLE_EQ(a.exact_match[1], 1.0);
  EXPECT_DOUBLE_EQ(a.logit_diff[1], a.logit_diff[0]);
}

// 3. AdamW against libtorch's own: five steps of random gradients, weight decay on, in double so
// the only differences are association order (1e-12 absolute on values ~1).
TEST(EdgePruning, AdamWMatchesLibtorch) {
  at::manual_seed(2);
  for (bool maximize : {false, true}) {
    at::Tensor p = at::randn({7}, at::kDouble), q = p.clone().requires_grad_(true);
    torch::optim::AdamW ref({q}, torch::optim::AdamWOptions(0.05).weight_decay(0.01));
    AdamWState st;
    for (int k = 0; k < 5; ++k) {
      at::Tensor gr = at::randn({7}, at::kDouble);
      const double lr = 0.05 * (k + 1) / 5.0;
      static_cast<torch::optim::AdamWOptions&>(ref.param_groups()[0].options()).lr(lr);
      q.mutable_grad() = maximize ? -gr : gr;  // torch's C++ AdamW has no maximize: ascend = step on -g
      ref.step();
      adamw_step(p, gr, st, lr, 0.01, maximize);
      ASSERT_TRUE(at::allclose(p, q.detach(), 0, 1e-12)) << "step " << k << " maximize " << maximize;
    }
  }
}

// The optimiser module (optim.h), as circuit-tuning uses it: SGD against libtorch's; a mask of
// all entries is bit-identical to no mask; entries outside a mask keep value and state exactly.
TEST(EdgePruning, OptimiserModuleMaskedSteps) {
  at::manual_seed(3);
  at::Tensor p = at::randn({9}, at::kDouble), q = p.clone().requires_grad_(true);
  torch::optim::SGD ref({q}, torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(0.01));
  OptimState st;
  OptimOptions sgd;
  sgd.kind = OptimKind::Sgd, sgd.lr = 0.05, sgd.momentum = 0.9, sgd.weight_decay = 0.01;
  for (int k = 0; k < 4; ++k) {
    at::Tensor gr = at::randn({9}, at::kDouble);
    q.mutable_grad() = gr.clone();
    ref.step();
    optim_step(p, gr, st, sgd);
    ASSERT_TRUE(at::allclose(p, q.detach(), 0, 1e-12)) << "SGD step " << k;  // association order only
  }
  for (OptimKind kind : {OptimKind::AdamW, OptimKind::Sgd}) {
    OptimOptions o;
    o.kind = kind, o.lr = 0.03, o.weight_decay = 0.02, o.momentum = 0.5;
    at::Tensor a = at::randn({6, 5}), b = a.clone(), c = a.clone();
    OptimState sa, sb, sc;
    const at::Tensor all = at::ones({6, 5}, at::kBool), half = at::rand({6, 5}) > 0.5;
    for (int k = 0; k < 3; ++k) {
      const at::Tensor gr = at::randn({6, 5});
      const at::Tensor c_before = c.clone(), m_before = sc.m.defined() ? sc.m.clone() : at::zeros_like(c);
      optim_step(a, gr, sa, o);
      optim_step(b, gr, sb, o, all);
      optim_step(c, gr, sc, o, half);
      EXPECT_TRUE(a.equal(b)) << "all-true mask vs none, step " << k;
      EXPECT_TRUE(sa.m.equal(sb.m));
      EXPECT_TRUE(c.masked_select(half.logical_not()).equal(c_before.masked_select(half.logical_not())));
      EXPECT_TRUE(sc.m.masked_select(half.logical_not()).equal(m_before.masked_select(half.logical_not())));
      EXPECT_TRUE(c.masked_select(half).equal(a.masked_select(half)));  // entry by entry: as unmasked
      EXPECT_GT((c - c_before).abs().max().item<double>(), 1e-4);  // the masked entries moved
    }
  }
  // One seeded order: the same (seed, epoch) gives the same permutation, other epochs others.
  EXPECT_TRUE(epoch_order(50, 7, 3).equal(epoch_order(50, 7, 3)));
  EXPECT_FALSE(epoch_order(50, 7, 3).equal(epoch_order(50, 7, 4)));
  EXPECT_TRUE(std::get<0>(epoch_order(50, 7, 3).sort()).equal(at::arange(50, at::kLong)));
}

// 4. A short run on the random GPT-2 drives the sampled sparsity to the target (the Lagrangian
// at work: without it KL alone keeps every edge), and the circuit is exactly the trained count.
// Targets and step counts are small so it runs in seconds; 0.1 of slack is the sampling noise of
// one mask draw over ~500 edges plus the lag of the lambdas.
TEST(EdgePruning, ReachesTheTargetAndDiscretisesExactly) {
  REQUIRE_GOLDEN();
  Model m = load("gpt2");
  Graph g = model_graph(m, true);
  Batch b = prompts(m.config().vocab_size, 8, 6, 4);
  EdgePruningOptions opt;
  opt.edge_target = 0.5;
  opt.steps = 150;
  opt.warmup_steps = 10;
  opt.target_warmup_steps = 50;
  opt.batch_size = 4;
  opt.init_mean = 1.0;
  opt.lr = opt.lambda_lr = 0.3;
  opt.log_every = std::getenv("EW_VERBOSE") ? 5 : 50;
  opt.run.progress = [](const ProgressEvent& e) {
    if (!std::getenv("EW_VERBOSE")) return;
    std::printf("step %lld", (long long)e.done);
    for (const auto& [name, v] : e.figures) std::printf(", %s %.4f", name.c_str(), v);
    std::printf("\n");
  };
  EdgePruningResult r = edge_pruning(m, g, b, opt);
  ASSERT_TRUE(r.complete);
  ASSERT_EQ(r.log.size(), 4u);  // steps 1, 50, 100, 150
  EXPECT_LT(r.log.front().edge_sparsity, 0.35);  // it starts far from the target
  const EdgePruningLog& last = r.log.back();
  EXPECT_EQ(last.step, 150);
  EXPECT_NEAR(last.target, 0.5, 1e-12);
  EXPECT_NEAR(last.edge_sparsity, 0.5, 0.1);
  EXPECT_NEAR(r.trained_sparsity, 0.5, 0.1);
  at::Tensor valid = edge_pruning_valid(g, false);
  const int64_t n = valid.sum().item<int64_t>();
  EXPECT_EQ(r.edges_kept, std::llround((1.0 - r.trained_sparsity) * n));
  // Every kept edge's deterministic mask is >= every dropped prunable edge's.
  at::Tensor kept_min = r.mask.masked_select(r.kept & valid).min();
  at::Tensor drop_max = r.mask.masked_select(~r.kept & valid).max();
  EXPECT_GE(kept_min.item<float>(), drop_max.item<float>());
}

// 5. Stop after 7 steps (a checkpoint after every step), resume: the same circuit and parameters as one
// uninterrupted run (the noise of step k and each epoch's order are redrawn from the seed; the
// AdamW state is in the checkpoint), bit for bit. Node masks on, so their state is covered too.
TEST(EdgePruning, ResumeGivesTheUninterruptedCircuit) {
  REQUIRE_GOLDEN();
  Model m = load("llama");
  Graph g = model_graph(m, true);
  Batch b = prompts(m.config().vocab_size, 6, 5, 8);
  EdgePruningOptions opt;
  opt.edge_target = 0.6;
  opt.node_masks = true;
  opt.steps = 16;
  opt.warmup_steps = 2;
  opt.target_warmup_steps = 8;
  opt.batch_size = 4;  // 2 batches per epoch, the second short: epochs and partial batches both crossed
  opt.init_mean = 2.0;
  opt.lr = opt.lambda_lr = 0.2;
  opt.log_every = 1;
  opt.run.fingerprint = "test";
  EdgePruningResult whole = edge_pruning(m, g, b, opt);

  const std::string ck = tmp_path("resume.safetensors");
  std::filesystem::remove(ck);
  EdgePruningOptions o1 = opt;
  o1.run.checkpoint = ck;
  o1.run.checkpoint_seconds = 0;  // every step
  o1.run.resume = true;
  int calls = 0;
  o1.run.stop = [&] { return ++calls == 7; };
  EdgePruningResult part = edge_pruning(m, g, b, o1);
  EXPECT_FALSE(part.complete);
  EXPECT_EQ(part.steps_done, 7);
  o1.run.stop = {};
  EdgePruningResult rest = edge_pruning(m, g, b, o1);
  EXPECT_TRUE(rest.complete);
  EXPECT_TRUE(at::equal(rest.log_alpha, whole.log_alpha));
  EXPECT_TRUE(at::equal(rest.node_log_alpha, whole.node_log_alpha));
  EXPECT_TRUE(at::equal(rest.kept, whole.kept));
  ASSERT_EQ(rest.log.size(), whole.log.size());
  for (size_t i = 0; i < whole.log.size(); ++i) EXPECT_EQ(rest.log[i].loss, whole.log[i].loss) << "step " << i + 1;

  // Another run's checkpoint (another target) is refused, naming the file.
  EdgePruningOptions o2 = o1;
  o2.edge_target = 0.7;
  try {
    edge_pruning(m, g, b, o2);
    ADD_FAILURE() << "another run's checkpoint was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(ck), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("another run"), std::string::npos) << e.what();
  }
  // A truncated checkpoint is refused, naming the file.
  const auto size = std::filesystem::file_size(ck);
  std::filesystem::resize_file(ck, size / 2);
  try {
    edge_pruning(m, g, b, o1);
    ADD_FAILURE() << "a truncated checkpoint was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(ck), std::string::npos) << e.what();
  }
  std::filesystem::remove(ck);
}

// Bad options fail with one clear message.
TEST(EdgePruning, BadOptionsAreRefused) {
  REQUIRE_GOLDEN();
  Model m = load("gpt2");
  Graph g = model_graph(m, true);
  Batch b = prompts(m.config().vocab_size, 2, 4, 1);
  EdgePruningOptions o;
  o.steps = 0;
  EXPECT_THROW(edge_pruning(m, g, b, o), Error);
  o = {};
  o.edge_target = -1;
  EXPECT_THROW(edge_pruning(m, g, b, o), Error);
  o = {};
  EXPECT_THROW(edge_pruning(m, g, b.rows(0, 0), o), Error);
}
