// ACDC (src/discover/acdc.cpp) on the small random GPT-2 and grouped-query Llama models of
// tests/reference/patch_golden.py, against a slow reference written here: the classic loop with
// one full patched forward per edge (dense path, no cache, no batching, no skipping of
// disconnected readers), in double.
//   1. classic ACDC returns exactly the reference's edge set, for several tau, on split q/k/v
//      graphs of both models and GPT-2's head-level graph; every decision's metric agrees;
//   2. the running metric of ACDC's final circuit (classic, group testing, rollback) equals a
//      fresh patched forward of that circuit; the variants stay within their documented bound;
//   3. a run stopped at a checkpoint and resumed ends with the uninterrupted run's circuit;
//      a checkpoint of another run, or a damaged one, is refused naming the file.
//
// Tolerances: both sides compute in double; the reference's values and ACDC's differ only by
// association (incremental updates of the state vs a fresh pass): ~1e-15 relative, amplified by
// four layers; 1e-9 absolute on KL values of ~1e-3..1 leaves six orders of margin and still
// catches any missing term (a dropped edge changes KL by >= 1e-6 on these models).
#include <gtest/gtest.h>
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "edgewise/acdc.h"
#include "edgewise/error.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "patch_models.h"

using namespace edgewise;

namespace {

Model load(const std::string& name) { return ewtest::load_patch_model(name); }
Batch prompts(int64_t vocab, int64_t B, int64_t T, uint64_t seed) { return ewtest::random_prompts(vocab, B, T, seed); }

struct Slow {
  at::Tensor kept;              // [S, R] bool
  std::vector<double> values;   // metric after each tried edge
  double final_value = 0;
};

// The logits [B, V] at the prediction positions of the circuit `keep` ([S, R] double) by a fresh
// patched forward (dense, no cache).
at::Tensor circuit_logits(const Model& m, const Graph& g, const Batch& b, const at::Tensor& abl, const at::Tensor& keep) {
  PatchOptions po;
  po.path = PatchOptions::Path::Dense;
  po.positions = b.clean_pos.unsqueeze(1);
  return patched_forward(m, g, b.clean, abl, keep.unsqueeze(0), po).select(0, 0).select(1, 0);
}
double circuit_value(const Model& m, const Graph& g, const Batch& b, const at::Tensor& abl, const at::Tensor& keep,
                     Metric metric, const at::Tensor& clean_last) {
  return metric_mean(metric, circuit_logits(m, g, b, abl, keep), b, clean_last).item<double>();
}

at::Tensor real_edges(const Graph& g) {
  std::vector<uint8_t> r = g.real_edges();
  return at::from_blob(r.data(), {g.n_sources(), g.n_readers()}, at::kByte).to(at::kDouble);
}

// What the reference computations share: the corrupted sources in double and the full model's
// logits at the prediction positions.
struct Reference {
  at::Tensor abl, clean_last;
};
Reference reference(const Model& m, const Graph& g, const Batch& b) {
  at::NoGradGuard ng;
  Reference r;
  r.abl = source_outputs(m, g, b.corrupted, at::kDouble);
  r.clean_last = circuit_logits(m, g, b, r.abl, real_edges(g));
  return r;
}

// Classic ACDC, the slow way: every edge in the reference's order, one full forward each.
Slow slow_acdc(const Model& m, const Graph& g, const Batch& b, double tau, Metric metric) {
  at::NoGradGuard ng;
  const auto [abl, clean_last] = reference(m, g, b);
  at::Tensor keep = real_edges(g);
  const double sign = metric_higher_is_better(metric) ? -1.0 : 1.0;
  Slow out;
  double cur = circuit_value(m, g, b, abl, keep, metric, clean_last);
  for (int64_t d = g.n_readers() - 1; d >= 0; --d)
    for (int64_t s = g.reader_fan_in(d) - 1; s >= 0; --s) {
      at::Tensor trial = keep.clone();
      trial[s][d] = 0.0;
      const double v = circuit_value(m, g, b, abl, trial, metric, clean_last);
      out.values.push_back(v);
      if (sign * (v - cur) < tau) {
        keep = trial;
        cur = v;
      }
    }
  out.kept = keep.to(at::kBool);
  out.final_value = cur;
  return out;
}

int64_t count(const at::Tensor& t) { return t.sum().item<int64_t>(); }

AcdcOptions options(double tau, Metric metric = Metric::KL) {
  AcdcOptions o;
  o.tau = tau;
  o.metric = metric;
  o.double_precision = true;
  o.max_candidates = 8;
  return o;
}

}  // namespace

TEST(Acdc, ClassicEqualsSlowReference) {
  REQUIRE_GOLDEN();
  int64_t partial = 0, skipped = 0, last_only = 0;
  struct Run {
    const char* model;
    bool split;
    Metric metric;
    std::vector<double> taus;
  };
  const Run runs[] = {{"gpt2", true, Metric::KL, {3e-4, 3e-3, 3e-2}},
                      {"gpt2", false, Metric::LogitDiff, {1e-3, 1e-2}},
                      {"llama", true, Metric::KL, {3e-4, 3e-3, 3e-2}},
                      // Parallel attention + MLP (the MLP reads the block's input), partial rotary.
                      {"neox", true, Metric::KL, {3e-3, 3e-2}},
                      // Post-norms (each head's output its share of the normed sum: the evaluator
                      // recomputes every head of a layer whose norm scale changes), q/k norms,
                      // sliding-window layers.
                      {"gemma3", true, Metric::KL, {3e-3, 3e-2}},
                      {"gemma3", false, Metric::LogitDiff, {1e-2}}};
  for (const Run& run : runs) {
    Model m = load(run.model);
    Graph g = model_graph(m, run.split);
    Batch b = prompts(m.config().vocab_size, 4, 8, 7);
    for (double tau : run.taus) {
      Slow ref = slow_acdc(m, g, b, tau, run.metric);
      AcdcResult r = acdc(m, g, b, options(tau, run.metric));
      ASSERT_TRUE(r.complete);
      const int64_t nk = count(r.kept), nr = count(ref.kept);
      std::printf("%s %s %s tau %g: %lld of %lld edges kept (reference %lld), %lld evaluations (%lld skipped, %lld "
                  "passes, %lld at the prediction position only), final metric %.6g (reference %.6g)\n",
                  run.model, run.split ? "split" : "head-level", metric_name(run.metric), tau, (long long)nk,
                  (long long)g.n_edges(), (long long)nr, (long long)r.evaluations, (long long)r.skipped,
                  (long long)r.passes, (long long)r.last_position_evaluations, r.metric_final, ref.final_value);
      EXPECT_TRUE(r.kept.equal(ref.kept)) << run.model << " tau " << tau << ": edge sets differ";
      EXPECT_NEAR(r.metric_final, ref.final_value, 1e-9);
      // Every evaluated decision saw the reference's value for the same edge.
      ASSERT_EQ(static_cast<int64_t>(r.trajectory.size()), g.n_edges());
      double worst = 0;
      for (size_t i = 0; i < r.trajectory.size(); ++i)
        if (r.trajectory[i].decision != AcdcStep::Decision::Skipped)
          worst = std::max(worst, std::abs(r.trajectory[i].metric - ref.values[i]));
      EXPECT_LE(worst, 1e-9) << run.model << " tau " << tau;
      // Fewer evaluations than edges: the speculation and the skipping work.
      EXPECT_LT(r.evaluations + r.skipped, 2 * g.n_edges());
      partial += nk > 0 && nk < g.n_edges();
      skipped += r.skipped;
      last_only += r.last_position_evaluations;
    }
  }
  // The cases are not trivial: some circuits are proper subsets, and skipping happened.
  EXPECT_GE(partial, 4);
  EXPECT_GT(skipped, 0);
  EXPECT_GT(last_only, 0);  // the prediction-position-only evaluator was compared too
}

// A caller's metric (MetricFn) drives ACDC like the built-in one: a logit difference written
// here by hand gives the same circuit and the same decisions' values (1e-9: double precision,
// different reduction order only).
TEST(Acdc, CallableMetricGivesTheBuiltInCircuit) {
  REQUIRE_GOLDEN();
  Model m = load("gpt2");
  Graph g = model_graph(m, true);
  Batch b = prompts(m.config().vocab_size, 4, 8, 7);
  MetricFn hand;
  hand.name = "hand-written logit difference";
  hand.higher_is_better = true;
  hand.fn = [](const at::Tensor& last, const Batch& bb, const at::Tensor&) {
    const at::Tensor c = bb.correct.to(last.device(), at::kLong), w = bb.incorrect.to(last.device(), at::kLong);
    return last.gather(1, c).select(1, 0) - last.gather(1, w).select(1, 0);
  };
  int64_t partial = 0;
  for (double tau : {1e-3, 1e-2}) {
    AcdcResult ref = acdc(m, g, b, options(tau, Metric::LogitDiff));
    AcdcOptions o = options(tau, Metric::KL);  // the callable replaces the metric and its direction
    o.metric_fn = hand;
    AcdcResult r = acdc(m, g, b, o);
    EXPECT_TRUE(r.kept.equal(ref.kept)) << "tau " << tau;
    EXPECT_NEAR(r.metric_final, ref.metric_final, 1e-9);
    EXPECT_LE((r.scores - ref.scores).abs().max().item<double>(), 1e-9) << "tau " << tau;
    const int64_t nk = count(r.kept);
    partial += nk > 0 && nk < g.n_edges();
  }
  EXPECT_GE(partial, 1);  // not a trivial all-or-nothing circuit
}

TEST(Acdc, VariantsStayWithinTheirBound) {
  REQUIRE_GOLDEN();
  for (const char* name : {"gpt2", "llama", "gemma3"}) {
    Model m = load(name);
    Graph g = model_graph(m, true);
    Batch b = prompts(m.config().vocab_size, 4, 8, 11);
    at::NoGradGuard ng;
    const auto [abl, clean_last] = reference(m, g, b);
    const double tau = 3e-3;
    AcdcResult classic = acdc(m, g, b, options(tau));
    for (auto mode : {AcdcOptions::Mode::Classic, AcdcOptions::Mode::Group, AcdcOptions::Mode::Rollback}) {
      AcdcOptions o = options(tau);
      o.mode = mode;
      AcdcResult r = mode == AcdcOptions::Mode::Classic ? classic : acdc(m, g, b, o);
      // ACDC's running metric is the metric of the circuit it returns.
      const double fresh = circuit_value(m, g, b, abl, r.kept.to(at::kDouble), Metric::KL, clean_last);
      EXPECT_NEAR(r.metric_final, fresh, 1e-9) << name << " " << acdc_mode_name(mode);
      // Each accepted step raised KL by less than its threshold (tau; rollback's joint steps 40 tau).
      int64_t steps = 0;
      double last = -1;
      for (const AcdcStep& s : r.trajectory)
        if (s.decision == AcdcStep::Decision::Removed && s.metric != last) ++steps, last = s.metric;
      const double bound = (mode == AcdcOptions::Mode::Rollback ? 40 : 1) * tau * steps;
      std::printf("%s %-8s: %lld edges kept, KL %.5f (classic %.5f), %lld evaluations, %lld passes, %lld accepted "
                  "steps, bound %.4f\n",
                  name, acdc_mode_name(mode), (long long)count(r.kept), r.metric_final, classic.metric_final,
                  (long long)r.evaluations, (long long)r.passes, (long long)steps, bound);
      EXPECT_LE(r.metric_final - r.metric_full, bound);
      EXPECT_LE(std::abs(r.metric_final - classic.metric_final), std::max(bound, (double)tau * count(classic.kept)));
    }
  }
}

TEST(Acdc, ResumeAfterStopGivesTheSameCircuit) {
  REQUIRE_GOLDEN();
  Model m = load("llama");
  Graph g = model_graph(m, true);
  Batch b = prompts(m.config().vocab_size, 4, 8, 3);
  const std::string ck = (std::filesystem::temp_directory_path() / "edgewise_test_acdc_ck.json").string();
  std::filesystem::remove(ck);
  AcdcResult full = acdc(m, g, b, options(3e-3));

  AcdcOptions o = options(3e-3);
  o.run.checkpoint = ck;
  o.run.checkpoint_seconds = 0;
  o.run.resume = true;
  int polls = 0;
  o.run.stop = [&] { return ++polls > g.n_readers() / 2; };  // "killed" half way
  AcdcResult part = acdc(m, g, b, o);
  EXPECT_FALSE(part.complete);
  ASSERT_TRUE(std::filesystem::exists(ck));
  o.run.stop = nullptr;
  AcdcResult resumed = acdc(m, g, b, o);
  EXPECT_TRUE(resumed.complete);
  EXPECT_TRUE(resumed.kept.equal(full.kept));
  EXPECT_EQ(resumed.trajectory.size(), full.trajectory.size());
  EXPECT_NEAR(resumed.metric_final, full.metric_final, 1e-12);
  for (size_t i = 0; i < std::min(resumed.trajectory.size(), full.trajectory.size()); ++i) {
    const AcdcStep &x = resumed.trajectory[i], &y = full.trajectory[i];
    ASSERT_TRUE(x.src == y.src && x.dst == y.dst && x.decision == y.decision) << "step " << i;
    ASSERT_NEAR(x.metric, y.metric, 1e-9) << "step " << i;
  }
  std::printf("stopped after %lld of %lld trajectory steps, resumed: %lld edges kept (uninterrupted %lld)\n",
              (long long)part.trajectory.size(), (long long)full.trajectory.size(), (long long)count(resumed.kept),
              (long long)count(full.kept));

  // Another run's checkpoint is refused, naming the file.
  AcdcOptions other = o;
  other.tau = 1e-2;
  try {
    acdc(m, g, b, other);
    ADD_FAILURE() << "a checkpoint of another run was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(ck), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("another run"), std::string::npos) << e.what();
  }
  // A damaged one too.
  {
    std::ofstream f(ck, std::ios::trunc);
    f << "{\"format\": \"edgewise-acdc-check";
  }
  try {
    acdc(m, g, b, o);
    ADD_FAILURE() << "a damaged checkpoint was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(ck), std::string::npos) << e.what();
  }
  std::filesystem::remove(ck);
}

TEST(Acdc, Float32RunsAndBadOptionsFail) {
  REQUIRE_GOLDEN();
  Model m = load("gpt2");
  Graph g = model_graph(m, true);
  Batch b = prompts(m.config().vocab_size, 4, 8, 5);
  AcdcOptions o = options(3e-3);
  o.double_precision = false;
  AcdcResult r = acdc(m, g, b, o);
  // fp32 state vs a fresh double pass of the same circuit: fp32 rounding of KL ~1e-7 per step,
  // accumulated over a few hundred incremental updates: 1e-4.
  at::NoGradGuard ng;
  const auto [abl, clean_last] = reference(m, g, b);
  EXPECT_NEAR(r.metric_final, circuit_value(m, g, b, abl, r.kept.to(at::kDouble), Metric::KL, clean_last), 1e-4);
  for (double tau : {0.0, -1.0, std::nan("")}) {
    AcdcOptions bad = options(tau);
    EXPECT_THROW(acdc(m, g, b, bad), Error) << tau;
  }
  AcdcOptions bad = options(1e-3);
  bad.ablation = Ablation::Resample;
  Batch unaligned = b;
  unaligned.aligned = false;
  EXPECT_THROW(acdc(m, g, unaligned, bad), Error);
}
