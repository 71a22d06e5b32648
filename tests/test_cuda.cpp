// The engine on a GPU equals the engine on the CPU: the same small random models
// (tests/reference/patch_golden.py), loaded once per device, run through the forward pass, the
// patched forward (every path and ablation), mask gradients, the attribution methods and
// circuit-tuning (node scores, training, checkpoint and resume). The
// CPU results are themselves checked against transformers / auto-circuit / finite differences by
// test_model, test_patch and test_attribution, so agreement here carries those checks over.
// Skipped where libtorch has no CUDA or no GPU is visible (CI): run on a GPU machine
// (docs/DEVICES.md says how and when it last ran).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "edgewise/attribution.h"
#include "edgewise/circuit_tuning.h"
#include "edgewise/error.h"
#include "edgewise/metrics.h"
#include "edgewise/patch.h"
#include "patch_models.h"

using namespace edgewise;

namespace {

bool have_gpu() { return at::hasCUDA() && at::detail::getCUDAHooks().deviceCount() > 0; }

#define REQUIRE_GPU() \
  if (!have_gpu()) GTEST_SKIP() << "no CUDA in this libtorch or no GPU visible"

Model load_on(const std::string& name, const std::string& device) {
  LoadOptions o;
  o.load_tokenizer = false;
  o.device = device;
  return Model::load(resolve_model(ewtest::patch_gold(name)), o);
}

// Largest |a - b| relative to the largest |b| (both moved to the CPU in double).
double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
  return (x - y).abs().max().item<double>() / std::max(1e-30, y.abs().max().item<double>());
}

// fp32 on both devices, summed in different orders (cuBLAS's and MKL's blockings; TF32 is off by
// default in libtorch): relative differences of a few 1e-6 per GEMM, a few 1e-5 after a dozen
// layers. 1e-4 relative leaves room for that and fails on any real difference (a wrong
// correction moves logits by 1e-2 or more relative on these models).
constexpr double kTol = 1e-4;

class Cuda : public ::testing::TestWithParam<std::string> {};

TEST_P(Cuda, ModelMovesAndForwardMatchesCpu) {
  REQUIRE_GOLDEN();
  REQUIRE_GPU();
  Model cpu = load_on(GetParam(), "cpu"), gpu = load_on(GetParam(), "cuda");
  EXPECT_TRUE(cpu.device().is_cpu());
  EXPECT_TRUE(gpu.device().is_cuda());
  for (const auto& [name, w] : gpu.weights()) EXPECT_TRUE(w.is_cuda()) << name;
  const Batch b = ewtest::random_prompts(cpu.config().vocab_size, 3, 9, 11);
  const at::Tensor lc = cpu.forward(b.clean), lg = gpu.forward(b.clean);  // tokens on the CPU: moved
  EXPECT_TRUE(lg.is_cuda());
  EXPECT_LE(rel_diff(lg, lc), kTol);
}

TEST_P(Cuda, PatchedForwardMatchesCpuOnEveryPath) {
  REQUIRE_GOLDEN();
  REQUIRE_GPU();
  Model cpu = load_on(GetParam(), "cpu"), gpu = load_on(GetParam(), "cuda");
  Graph g = model_graph(cpu, true);
  const Batch b = ewtest::random_prompts(cpu.config().vocab_size, 2, 7, 5);
  at::NoGradGuard ng;
  at::manual_seed(3);
  const int64_t S = g.n_sources(), R = g.n_readers();
  const at::Tensor frac = at::rand({3, S, R});
  at::Tensor few = at::ones({1, S, R});
  for (int e = 0; e < 6; ++e) few[0][1 + 3 * e][R - 1 - 5 * e] = 0.0;
  for (Ablation how : {Ablation::Resample, Ablation::Mean, Ablation::Zero}) {
    const at::Tensor ac = ablated_values(cpu, g, how, b.clean, b.corrupted);
    const at::Tensor ag = ablated_values(gpu, g, how, b.clean, b.corrupted);
    EXPECT_TRUE(ag.is_cuda());
    EXPECT_LE(rel_diff(ag, ac), kTol) << ablation_name(how);
    PatchOptions dense, sparse;
    dense.path = PatchOptions::Path::Dense;
    sparse.path = PatchOptions::Path::Sparse;
    const at::Tensor dc = patched_forward(cpu, g, b.clean, ac, frac, dense);
    const at::Tensor dg = patched_forward(gpu, g, b.clean, ag, frac, dense);  // K = 3 in one pass
    EXPECT_TRUE(dg.is_cuda());
    EXPECT_LE(rel_diff(dg, dc), kTol) << "dense " << ablation_name(how);
    // Sparse and downstream-only (a clean cache) on the GPU equal the dense path on the GPU.
    const at::Tensor fd = patched_forward(gpu, g, b.clean, ag, few, dense);
    EXPECT_LE(rel_diff(patched_forward(gpu, g, b.clean, ag, few, sparse), fd), kTol) << "sparse";
    const CleanCache cache = clean_cache(gpu, g, b.clean);
    PatchOptions down = sparse;
    down.cache = &cache;
    EXPECT_LE(rel_diff(patched_forward(gpu, g, b.clean, ag, few, down), fd), kTol) << "downstream-only";
    EXPECT_LE(rel_diff(fd, patched_forward(cpu, g, b.clean, ac, few, dense)), kTol) << "few edges";
  }
  // All masks 1 = the clean run; all 0 under resample = the corrupted run (on the GPU).
  const at::Tensor ag = ablated_values(gpu, g, Ablation::Resample, b.clean, b.corrupted);
  PatchOptions dense;
  dense.path = PatchOptions::Path::Dense;
  EXPECT_LE(rel_diff(patched_forward(gpu, g, b.clean, ag, full_mask(g, 1, at::kFloat), dense).select(0, 0),
                     gpu.forward(b.clean)),
            kTol);
  EXPECT_LE(rel_diff(patched_forward(gpu, g, b.clean, ag, at::zeros({1, S, R}), dense).select(0, 0),
                     gpu.forward(b.corrupted)),
            kTol);
}

TEST_P(Cuda, MaskGradientMatchesCpu) {
  REQUIRE_GOLDEN();
  REQUIRE_GPU();
  Model cpu = load_on(GetParam(), "cpu"), gpu = load_on(GetParam(), "cuda");
  Graph g = model_graph(cpu, true);
  const Batch b = ewtest::random_prompts(cpu.config().vocab_size, 2, 6, 8);
  at::manual_seed(4);
  const at::Tensor m0 = at::rand({1, g.n_sources(), g.n_readers()});
  auto grad = [&](const Model& m) {
    at::Tensor abl;
    {
      at::NoGradGuard ng;
      abl = ablated_values(m, g, Ablation::Resample, b.clean, b.corrupted);
    }
    at::Tensor mask = m0.clone().requires_grad_(true);  // a CPU leaf: the pass moves it
    PatchOptions po;
    po.path = PatchOptions::Path::Dense;
    po.positions = b.clean_pos.unsqueeze(1);
    const at::Tensor last = patched_forward(m, g, b.clean, abl, mask, po).select(0, 0).select(1, 0);
    metric_mean(Metric::LogitDiff, last, b).backward();
    return mask.grad();
  };
  const at::Tensor gc = grad(cpu), gg = grad(gpu);
  EXPECT_TRUE(gg.is_cpu());  // the gradient lands on the leaf's device
  EXPECT_LE(rel_diff(gg, gc), kTol);
}

TEST_P(Cuda, AttributionMethodsMatchCpu) {
  REQUIRE_GOLDEN();
  REQUIRE_GPU();
  Model cpu = load_on(GetParam(), "cpu"), gpu = load_on(GetParam(), "cuda");
  Graph g = model_graph(cpu, true);
  const Batch b = ewtest::random_prompts(cpu.config().vocab_size, 4, 6, 9);
  for (const std::string method : {"eap", "eap-ig-inputs", "eap-ig-activations", "clean-corrupted", "mask-gradient"}) {
    AttributionOptions o;
    o.steps = 3;
    o.batch_size = 2;  // two parts: the accumulation across batches too
    const at::Tensor sc = attribute(method, cpu, g, b, o), sg = attribute(method, gpu, g, b, o);
    EXPECT_LE(rel_diff(sg, sc), kTol) << method;
  }
  AttributionOptions o;
  o.exact_masks = 16;
  EXPECT_LE(rel_diff(attribute("exact", gpu, g, b, o), attribute("exact", cpu, g, b, o)), kTol) << "exact";
}

TEST_P(Cuda, CircuitTuningMatchesCpu) {
  REQUIRE_GOLDEN();
  REQUIRE_GPU();
  Model cpu = load_on(GetParam(), "cpu"), gpu = load_on(GetParam(), "cuda");
  const Batch data = ewtest::random_prompts(cpu.config().vocab_size, 12, 6, 5);
  for (Ablation how : {Ablation::Resample, Ablation::MeanPerPosition}) {
    const NodeScores c = tune_node_scores(cpu, data, how, Metric::LogitDiff, 2, 4);
    const NodeScores g = tune_node_scores(gpu, data, how, Metric::LogitDiff, 2, 4);
    EXPECT_LE(rel_diff(g.heads, c.heads), kTol) << ablation_name(how);
    EXPECT_LE(rel_diff(g.mlps, c.mlps), kTol) << ablation_name(how);
  }
  // SGD with momentum: the update is linear in the gradients, so the devices' updates agree as
  // their gradients do (AdamW's g / sqrt(v) turns rounding-level gradients into full steps).
  TuneOptions o;
  o.nodes = 3;
  o.mlp_heads = 2;
  o.rounds = 2;
  o.steps_per_round = 2;
  o.batch_size = 6;
  o.optimizer = "sgd";
  o.momentum = 0.9;
  o.lr = 0.1;
  o.weight_decay = 0.1;
  const TuneResult rc = circuit_tune(cpu, data, o);
  // The GPU run stops after 3 steps with a checkpoint (written from device memory) and resumes
  // from it (read back to the device).
  const std::string ck = ewtest::golden("tune_cases", std::string("cuda_") + GetParam() + ".ck");
  std::filesystem::create_directories(std::filesystem::path(ck).parent_path());
  std::filesystem::remove(ck);
  TuneOptions s = o;
  s.run.checkpoint = ck;
  int64_t polls = 0;
  s.run.stop = [&] { return ++polls == 3; };
  EXPECT_FALSE(circuit_tune(gpu, data, s).complete);
  s.run.stop = {};
  s.run.resume = true;
  const TuneResult rg = circuit_tune(gpu, data, s);
  ASSERT_TRUE(rg.complete);
  ASSERT_EQ(rg.rounds.size(), rc.rounds.size());
  for (size_t i = 0; i < rc.rounds.size(); ++i) EXPECT_TRUE(rg.rounds[i].parts == rc.rounds[i].parts) << "round " << i;
  EXPECT_EQ(rg.params_updated, rc.params_updated);
  ASSERT_EQ(rg.log.size(), rc.log.size());
  for (size_t i = 0; i < rc.log.size(); ++i)
    EXPECT_NEAR(rg.log[i].loss, rc.log[i].loss, kTol * std::abs(rc.log[i].loss)) << "step " << i + 1;
  for (const auto& [name, w0] : cpu.weights()) {
    const at::Tensor wg = rg.weights.at(name), wc = rc.weights.at(name);
    EXPECT_TRUE(wg.is_cuda()) << name;
    if (at::equal(wc, w0)) {
      EXPECT_TRUE(at::equal(wg.cpu(), w0)) << name << " changed on the GPU only";
    } else {
      EXPECT_LE(rel_diff(wg - w0.to(wg.device()), wc - w0), kTol) << name;  // the updates
    }
  }
  // The tuned weights run on the device; the checkpoint saved a CPU copy of them.
  EXPECT_LE(rel_diff(gpu.with_weights(rg.weights).forward(data.clean), cpu.with_weights(rc.weights).forward(data.clean)),
            kTol);
  std::filesystem::remove(ck);
}

TEST(CudaDevice, UnknownOrMissingDevicesAreClearErrors) {
  EXPECT_THROW(parse_device("tpu"), Error);
  EXPECT_THROW(parse_device("cuda:abc"), Error);
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  if (have_gpu()) {
    EXPECT_TRUE(parse_device("auto").is_cuda());
    EXPECT_THROW(parse_device("cuda:99"), Error);
  } else {
    EXPECT_TRUE(parse_device("auto").is_cpu());
    EXPECT_THROW(parse_device("cuda"), Error);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, Cuda, ::testing::Values("gpt2", "llama"));

}  // namespace
