// ROC curves and AUC (include/edgewise/roc.h). The hand-worked cases here; sklearn's
// roc_auc_score on random scores and truths, ties included, in tests/reference/roc_check.py
// (ctest ref_roc_sklearn).
#include <gtest/gtest.h>

#include <cmath>

#include "edgewise/error.h"
#include "edgewise/roc.h"

using namespace edgewise;

TEST(Roc, HandWorkedCurveAndAuc) {
  // Ranked: P(0.9) N(0.8) P(0.7) N(0.1). Mann-Whitney: 3 of the 4 (P, N) pairs ordered right.
  const RocCurve c = roc_curve({0.9, 0.8, 0.7, 0.1}, {1, 0, 1, 0});
  EXPECT_EQ(c.positives, 2);
  EXPECT_EQ(c.negatives, 2);
  EXPECT_EQ(c.fpr, (std::vector<double>{0, 0, 0.5, 0.5, 1}));
  EXPECT_EQ(c.tpr, (std::vector<double>{0, 0.5, 0.5, 1, 1}));
  EXPECT_TRUE(std::isinf(c.thresholds[0]));
  EXPECT_DOUBLE_EQ(c.auc, 0.75);
}

TEST(Roc, TiesAreOneStepAndCountHalf) {
  // A positive tied with a negative, above another negative: (1/2 + 1) / 2.
  const RocCurve c = roc_curve({1, 1, 0}, {1, 0, 0});
  EXPECT_EQ(c.fpr, (std::vector<double>{0, 0.5, 1}));
  EXPECT_EQ(c.tpr, (std::vector<double>{0, 1, 1}));
  EXPECT_DOUBLE_EQ(c.auc, 0.75);
  EXPECT_DOUBLE_EQ(roc_curve({2, 2, 2, 2}, {1, 0, 1, 0}).auc, 0.5);  // all tied: chance
  EXPECT_DOUBLE_EQ(roc_curve({3, 2, 1}, {1, 1, 0}).auc, 1.0);
  EXPECT_DOUBLE_EQ(roc_curve({1, 2, 3}, {1, 1, 0}).auc, 0.0);
  EXPECT_TRUE(std::isnan(roc_curve({1, 2}, {1, 1}).auc));  // no negative
  EXPECT_THROW(roc_curve({1, 2}, {1}), Error);
  EXPECT_THROW(roc_curve({NAN, 2}, {1, 0}), Error);
}

TEST(Roc, EdgeNodeAndMergedItems) {
  // 2 layers x 1 head, q/k/v readers.
  Circuit scored = Circuit::empty(GraphShape{2, 1, 1}, true, 8), truth = scored;
  const Graph g = scored.graph();
  auto set = [&](Circuit& c, const std::string& name, float score, bool in) {
    const auto e = g.find_edge(name);
    ASSERT_TRUE(e) << name;
    const size_t i = static_cast<size_t>(e->first * g.n_readers() + e->second);
    c.scores[i] = score;
    c.in_graph[i] = in;
  };
  set(truth, "input->a1.h0<q>", 1, true);
  set(truth, "a1.h0->logits", 1, true);
  set(scored, "input->a1.h0<q>", -0.5f, true);  // |score| ranks it
  set(scored, "input->a1.h0<k>", 0.25f, false);
  set(scored, "a1.h0->logits", 0.75f, true);
  set(scored, "m0->logits", 0.1f, true);
  RocOptions o;
  const RocItems e = roc_edge_items(scored, truth, o);
  EXPECT_EQ(static_cast<int64_t>(e.names.size()), g.n_edges());
  const RocLevel le = roc_level(e);
  EXPECT_DOUBLE_EQ(le.curve.auc, 1.0);  // both true edges above every other
  EXPECT_EQ(le.chosen, 3);
  EXPECT_DOUBLE_EQ(le.tpr_chosen, 1.0);
  EXPECT_DOUBLE_EQ(le.fpr_chosen, 1.0 / (g.n_edges() - 2));
  o.absolute = false;  // signed: -0.5 now ranks below every 0
  EXPECT_LT(roc_level(roc_edge_items(scored, truth, o)).curve.auc, 1.0);
  o.absolute = true;
  o.merge_qkv = true;
  const RocItems m = roc_edge_items(scored, truth, o);
  int64_t into_a1 = 0;
  for (const auto& n : m.names) into_a1 += n == "input->a1.h0";
  EXPECT_EQ(into_a1, 1);
  // a1.h0's q, k, v each read 3 sources (9 edges -> 3), a0.h0's read the input (3 -> 1).
  EXPECT_EQ(static_cast<int64_t>(m.names.size()), g.n_edges() - 6 - 2);
  const RocItems n = roc_node_items(scored, truth, o);
  EXPECT_EQ(n.names, (std::vector<std::string>{"input", "a0.h0", "m0", "a1.h0", "m1"}));
  EXPECT_EQ(n.truth, (std::vector<uint8_t>{1, 0, 0, 1, 0}));
  EXPECT_DOUBLE_EQ(roc_level(n).curve.auc, 1.0);
  Circuit other = Circuit::empty(GraphShape{3, 1, 1}, true, 8);
  EXPECT_THROW(roc_edge_items(scored, other, o), Error);
}
