// The method table and discover() (include/edgewise/discover.h): every method runs through the
// one entry point and returns the one result type; discover() gives exactly what the method's
// own function gives; sweeps fold into scores by the largest value that keeps an edge.
#include <gtest/gtest.h>
#include <ATen/ATen.h>

#include <filesystem>
#include <set>
#include <string>

#include "edgewise/discover.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/run.h"
#include "patch_models.h"

using namespace edgewise;

namespace {

DiscoverOptions small_options() {
  DiscoverOptions o;
  o.attribution.batch_size = 2;
  o.attribution.steps = 2;
  o.acdc.tau = 1e-2;
  o.acdc.metric = Metric::LogitDiff;
  o.edge_pruning.steps = 4;
  o.edge_pruning.batch_size = 2;
  o.edge_pruning.warmup_steps = 1;
  o.edge_pruning.target_warmup_steps = 2;
  o.path_patching.batch_size = 2;
  o.path_patching.importance_threshold = 1;
  o.path_patching.min_value_threshold = 1e-3;
  o.flap.lowest = 0.5, o.flap.highest = 0.9, o.flap.step = 0.2;
  o.flap.batch_size = 2;
  return o;
}

}  // namespace

// Every method in the table runs through discover() and returns scores over the graph, a circuit
// within the real edges for the search methods, and a report: on the grouped-query Llama and on
// GPT-NeoX with parallel attention + MLP (whose graph lacks the same-layer head -> MLP edges).
TEST(Discover, EveryMethodReturnsTheOneResultType) {
  REQUIRE_GOLDEN();
  for (const char* name : {"llama", "neox", "gemma3"}) {
  SCOPED_TRACE(name);
  Model m = ewtest::load_patch_model(name);
  Graph g = model_graph(m, true);
  Batch b = ewtest::random_prompts(m.config().vocab_size, 4, 8, 5);
  const at::Tensor real = full_mask(g, 1).squeeze(0).to(at::kBool);
  std::set<std::string> seen;
  for (const MethodInfo& info : discovery_methods()) {
    SCOPED_TRACE(info.key);
    EXPECT_TRUE(seen.insert(info.key).second) << "key listed twice";
    DiscoveryResult r = discover(info.key, m, g, b, small_options());
    EXPECT_EQ(r.method, info.key);
    ASSERT_TRUE(r.scores.defined());
    EXPECT_EQ(r.scores.scalar_type(), at::kDouble);
    EXPECT_EQ(r.scores.sizes(), (std::vector<int64_t>{g.n_sources(), g.n_readers()}));
    EXPECT_EQ(r.scores.masked_select(real.logical_not()).abs().sum().item<double>(), 0.0);  // 0 off the edges
    EXPECT_FALSE(r.score_sign.empty());
    EXPECT_TRUE(r.report.is_object());
    if (info.kind == MethodKind::Attribution) {
      EXPECT_FALSE(r.in_circuit.defined());
      EXPECT_GT(r.scores.abs().sum().item<double>(), 0.0);
    } else {
      ASSERT_TRUE(r.in_circuit.defined());
      EXPECT_EQ(r.in_circuit.scalar_type(), at::kBool);
      EXPECT_EQ(r.in_circuit.logical_and(real.logical_not()).sum().item<int64_t>(), 0);  // only real edges
    }
  }
  for (const char* k : {"eap", "eap-ig-inputs", "exact", "acdc", "edge-pruning", "path-patching", "flap", "app"})
    EXPECT_TRUE(seen.count(k)) << k;
  }
}

// discover() is the method's own function, not a second implementation.
TEST(Discover, SameAsTheMethodsOwnFunctions) {
  REQUIRE_GOLDEN();
  Model m = ewtest::load_patch_model("gpt2");
  Graph g = model_graph(m, true);
  Batch b = ewtest::random_prompts(m.config().vocab_size, 4, 8, 9);
  DiscoverOptions o = small_options();
  EXPECT_TRUE(discover("eap-ig-inputs", m, g, b, o).scores.equal(attribute("eap-ig-inputs", m, g, b, o.attribution)));
  const AcdcResult a = acdc(m, g, b, o.acdc);
  const DiscoveryResult d = discover("acdc", m, g, b, o);
  EXPECT_TRUE(d.in_circuit.equal(a.kept));
  EXPECT_TRUE(d.scores.equal(a.scores));
  EXPECT_EQ(d.report.at("trajectory").size(), a.trajectory.size());
  EXPECT_EQ(d.report.at("evaluations").get<int64_t>(), a.evaluations);
  const EdgePruningResult e = edge_pruning(m, g, b, o.edge_pruning);
  const DiscoveryResult de = discover("edge-pruning", m, g, b, o);
  EXPECT_TRUE(de.in_circuit.equal(e.kept));
  EXPECT_TRUE(de.scores.equal(e.mask.to(at::kDouble)));
}

// Head-set methods refuse the head-level graph; unknown keys name the known ones.
TEST(Discover, BadRequestsFailClearly) {
  REQUIRE_GOLDEN();
  Model m = ewtest::load_patch_model("gpt2");
  Graph head_level = model_graph(m, false);
  Batch b = ewtest::random_prompts(m.config().vocab_size, 2, 6, 1);
  try {
    discover("path-patching", m, head_level, b, small_options());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q/k/v"), std::string::npos) << e.what();
  }
  try {
    discovery_method("acdc-ish");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("unknown method 'acdc-ish'"), std::string::npos) << w;
    EXPECT_NE(w.find("edge-pruning"), std::string::npos) << w;
  }
}

// A sweep's circuits fold into the largest value that keeps each edge, computed here by hand.
TEST(Discover, SweepScoresAreTheLargestValueKeepingTheEdge) {
  const at::Tensor k1 = at::tensor({1, 1, 0, 1}).to(at::kBool).view({2, 2});  // tau 0.01
  const at::Tensor k2 = at::tensor({1, 0, 0, 1}).to(at::kBool).view({2, 2});  // tau 0.1
  const at::Tensor k3 = at::tensor({0, 0, 0, 1}).to(at::kBool).view({2, 2});  // tau 1
  const at::Tensor s = sweep_scores({k2, k1, k3}, {0.1, 0.01, 1.0});        // any order
  const at::Tensor want = at::tensor({0.1, 0.01, 0.0, 1.0}, at::kDouble).view({2, 2});
  EXPECT_TRUE(s.equal(want)) << s;
  // The circuits are nested here, so selecting score >= tau gives each tau's circuit back.
  for (auto [k, tau] : {std::pair{k1, 0.01}, std::pair{k2, 0.1}, std::pair{k3, 1.0}}) EXPECT_TRUE((s >= tau).equal(k));
  EXPECT_THROW(sweep_scores({k1}, {0.0}), Error);
  EXPECT_THROW(sweep_scores({k1, k2}, {0.1}), Error);
}

// discover_sweep: one run per value, each exactly discover() at that value; the folded scores
// are sweep_scores of the runs; with several values a checkpoint file and the progress stages
// carry the value; a method without a sweep option and a bad value are refused by name.
TEST(Discover, SweepIsOneRunPerValue) {
  REQUIRE_GOLDEN();
  Model m = ewtest::load_patch_model("gpt2");
  Graph g = model_graph(m, true);
  Batch b = ewtest::random_prompts(m.config().vocab_size, 4, 8, 9);
  DiscoverOptions o = small_options();
  const std::string ck = ewtest::golden("discover_cases", "sweep.ck.json");
  std::filesystem::create_directories(std::filesystem::path(ck).parent_path());
  o.acdc.run.checkpoint = ck;
  std::vector<std::string> stages;
  o.acdc.run.progress = [&](const ProgressEvent& e) {
    if (stages.empty() || stages.back() != e.stage) stages.push_back(e.stage);
  };
  const std::vector<double> taus = {0.003, 0.03};
  const SweepResult sw = discover_sweep("acdc", m, g, b, o, taus);
  ASSERT_EQ(sw.runs.size(), 2u);
  std::vector<at::Tensor> kept;
  for (size_t i = 0; i < taus.size(); ++i) {
    DiscoverOptions one = small_options();
    one.acdc.tau = taus[i];
    const DiscoveryResult r = discover("acdc", m, g, b, one);
    EXPECT_TRUE(sw.runs[i].in_circuit.equal(r.in_circuit)) << taus[i];
    EXPECT_TRUE(sw.runs[i].scores.equal(r.scores)) << taus[i];
    EXPECT_EQ(sw.runs[i].report.at("tau").get<double>(), taus[i]);
    kept.push_back(r.in_circuit);
  }
  EXPECT_TRUE(sw.scores.equal(sweep_scores(kept, taus)));
  EXPECT_TRUE(std::filesystem::exists(path_with_suffix(ck, ".tau0.003")));
  EXPECT_TRUE(std::filesystem::exists(path_with_suffix(ck, ".tau0.03")));
  EXPECT_EQ(stages, (std::vector<std::string>{"tau=0.003 readers", "tau=0.03 readers"}));
  EXPECT_EQ(path_with_suffix("dir.v2/a.json", ".t0.5"), "dir.v2/a.t0.5.json");
  EXPECT_EQ(path_with_suffix("dir.v2/a", ".t0.5"), "dir.v2/a.t0.5");
  EXPECT_THROW(discover_sweep("eap", m, g, b, o, {0.1}), Error);
  EXPECT_THROW(discover_sweep("acdc", m, g, b, o, {0.1, -1.0}), Error);
  EXPECT_THROW(discover_sweep("acdc", m, g, b, o, {}), Error);
}

// HAP: with the prefilter keeping every edge it is Edge Pruning exactly (what the issue asks);
// with a small fraction the circuit lies within the prefilter's survivors, the other edges'
// masks are 0, and the survivors are the largest |scores|.
TEST(Discover, HapIsEdgePruningWithinThePrefiltersEdges) {
  REQUIRE_GOLDEN();
  Model m = ewtest::load_patch_model("gpt2");
  Graph g = model_graph(m, true);
  Batch b = ewtest::random_prompts(m.config().vocab_size, 4, 8, 13);
  DiscoverOptions o = small_options();
  o.edge_pruning.steps = 6;
  o.edge_pruning.edge_target = 0.5;
  o.hap.keep_fraction = 1.0;
  const DiscoveryResult ep = discover("edge-pruning", m, g, b, o);
  const DiscoveryResult all = discover("hap", m, g, b, o);
  EXPECT_TRUE(all.in_circuit.equal(ep.in_circuit));
  EXPECT_TRUE(all.scores.equal(ep.scores));
  EXPECT_EQ(all.report.at("prefilter").at("candidates").get<int64_t>(), g.n_edges());

  o.hap.keep_fraction = 0.2;
  o.edge_pruning.edge_target = 0.9;
  const DiscoveryResult h = discover("hap", m, g, b, o);
  const at::Tensor cand = hap_candidates(m, g, b, o.hap, o.attribution);
  EXPECT_EQ(cand.sum().item<int64_t>(), std::llround(0.2 * g.n_edges()));
  // The target's warm-up starts where the prefilter left the sparsity (0.8 here), not at 0.
  const double start = 1.0 - static_cast<double>(cand.sum().item<int64_t>()) / static_cast<double>(g.n_edges());
  EXPECT_NEAR(h.report.at("log").at(0).at(4).get<double>(), start, 1e-12);
  EXPECT_NEAR(h.report.at("log").back().at(4).get<double>(), 0.9, 1e-12);
  EXPECT_EQ(h.report.at("prefilter").at("candidates").get<int64_t>(), cand.sum().item<int64_t>());
  EXPECT_GT(h.in_circuit.sum().item<int64_t>(), 0);
  EXPECT_EQ(h.in_circuit.logical_and(cand.logical_not()).sum().item<int64_t>(), 0);  // only survivors
  EXPECT_EQ(h.scores.masked_select(cand.logical_not()).abs().sum().item<double>(), 0.0);
  // The survivors are the largest |EAP scores|: every survivor's |score| >= every other edge's.
  const at::Tensor eap = attribute("eap", m, g, b, o.attribution).abs();
  const at::Tensor real = full_mask(g, 1).squeeze(0).to(at::kBool);
  EXPECT_GE(eap.masked_select(cand).min().item<double>(),
            eap.masked_select(real.logical_and(cand.logical_not())).max().item<double>());
  // Bad fractions and prefilters fail by name.
  o.hap.keep_fraction = 0;
  EXPECT_THROW(discover("hap", m, g, b, o), Error);
  o.hap.keep_fraction = 0.2;
  o.hap.prefilter = "acdc";
  EXPECT_THROW(discover("hap", m, g, b, o), Error);
}

// A circuit's scores and mask come back as tensors exactly as they went in.
TEST(Discover, CircuitTensorsRoundTrip) {
  REQUIRE_GOLDEN();
  Model m = ewtest::load_patch_model("gpt2");
  Graph g = model_graph(m, true);
  at::manual_seed(4);
  const at::Tensor real = full_mask(g, 1).squeeze(0);
  const at::Tensor scores = at::randn({g.n_sources(), g.n_readers()}) * real;
  const at::Tensor kept = (at::rand({g.n_sources(), g.n_readers()}) < 0.3).logical_and(real.to(at::kBool));
  const Circuit c = circuit_from_scores(m, g, scores, kept);
  EXPECT_TRUE(circuit_scores(c).equal(scores));
  EXPECT_TRUE(circuit_mask(c).equal(kept.to(at::kFloat)));
  EXPECT_EQ(c.n_edges_in(), kept.sum().item<int64_t>());
}

// Run control has one shape (run.h): each long method reports progress as (stage, done, total,
// named figures) — ACDC per reader, Edge Pruning per logged step, path patching per receiver —
// attribution and evaluation per part of the data; resume without a checkpoint file and a
// negative interval are refused by every method that checkpoints.
TEST(RunControl, OneShapeForEveryLongMethod) {
  REQUIRE_GOLDEN();
  Model m = ewtest::load_patch_model("gpt2");
  Graph g = model_graph(m, true);
  Batch b = ewtest::random_prompts(m.config().vocab_size, 4, 8, 9);
  DiscoverOptions o = small_options();
  std::vector<ProgressEvent> ev;
  auto record = [&](const ProgressEvent& e) { ev.push_back(e); };
  auto names = [](const ProgressEvent& e) {
    std::vector<std::string> n;
    for (const auto& [k, v] : e.figures) n.push_back(k);
    return n;
  };

  o.acdc.run.progress = record;
  discover("acdc", m, g, b, o);
  ASSERT_EQ(static_cast<int64_t>(ev.size()), g.n_readers());  // one per reader
  EXPECT_EQ(ev.back().stage, "readers");
  EXPECT_EQ(ev.back().done, g.n_readers());
  EXPECT_EQ(ev.back().total, g.n_readers());
  EXPECT_EQ(names(ev.back()), (std::vector<std::string>{"edges kept", "evaluations", "metric"}));

  ev.clear();
  o.edge_pruning.log_every = 2;
  o.edge_pruning.run.progress = record;
  const DiscoveryResult ep = discover("edge-pruning", m, g, b, o);
  ASSERT_EQ(ev.size(), ep.report.at("log").size());  // one per log row
  EXPECT_EQ(ev.back().stage, "steps");
  EXPECT_EQ(ev.back().done, o.edge_pruning.steps);
  EXPECT_EQ(ev.back().total, o.edge_pruning.steps);
  EXPECT_EQ(names(ev.back()), (std::vector<std::string>{"loss", "kl", "edge sparsity", "target", "lambda1", "lambda2"}));
  EXPECT_EQ(ev.back().figures[0].second, ep.report.at("log").back().at(1).get<double>());  // the row's loss

  ev.clear();
  o.path_patching.run.progress = record;
  const PathPatchingResult pp = path_patching(m, g, b, o.path_patching);
  ASSERT_FALSE(ev.empty());
  for (const ProgressEvent& e : ev) {
    EXPECT_EQ(e.stage, "receivers");
    EXPECT_LE(e.done, e.total);
  }
  EXPECT_EQ(ev.back().done, pp.steps);
  EXPECT_EQ(ev.back().total, pp.steps);  // nothing left in the queue
  EXPECT_EQ(names(ev.back()), (std::vector<std::string>{"heads", "queued", "evaluations"}));

  ev.clear();
  o.attribution.progress = record;
  discover("eap", m, g, b, o);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().stage, "eap");
  EXPECT_EQ(ev.back().done, ev.back().total);

  ev.clear();
  EvaluateOptions eo;
  eo.batch_size = 3;
  eo.progress = record;
  evaluate_circuits(m, g, b, full_mask(g, 1), eo);
  ASSERT_EQ(ev.size(), 2u);  // 4 examples in batches of 3
  EXPECT_EQ(ev.back().stage, "examples");
  EXPECT_EQ(ev.back().done, b.size());
  EXPECT_EQ(ev.back().total, b.size());

  // Resume without a file, a negative interval: refused, naming the method.
  for (const char* key : {"acdc", "edge-pruning", "path-patching"}) {
    SCOPED_TRACE(key);
    DiscoverOptions bad = small_options();
    for (RunControl* rc : {&bad.acdc.run, &bad.edge_pruning.run, &bad.path_patching.run}) rc->resume = true;
    try {
      discover(key, m, g, b, bad);
      ADD_FAILURE() << "resume without a checkpoint file was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("resume needs a checkpoint file"), std::string::npos) << e.what();
    }
    DiscoverOptions neg = small_options();
    for (RunControl* rc : {&neg.acdc.run, &neg.edge_pruning.run, &neg.path_patching.run}) rc->checkpoint_seconds = -1;
    EXPECT_THROW(discover(key, m, g, b, neg), Error);
  }
}
