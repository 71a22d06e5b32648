// Graph sizes and names. The edge counts are the figures EAP-IG / MIB report for GPT-2 small
// (12 layers, 12 heads): 32,491 edges with split q/k/v readers and 11,611 at head level.
#include <gtest/gtest.h>

#include "edgewise/graph.h"

using edgewise::Graph;
using edgewise::GraphShape;

TEST(Graph, Gpt2SmallEdgeCounts) {
  Graph split(GraphShape{12, 12, 12}, true);
  EXPECT_EQ(split.n_edges(), 32491);
  EXPECT_EQ(split.n_sources(), 1 + 12 * 13);
  Graph heads(GraphShape{12, 12, 12}, false);
  EXPECT_EQ(heads.n_edges(), 11611);
}

TEST(Graph, CountsAgreeWithRealEdgeMask) {
  for (bool split : {true, false}) {
    Graph g(GraphShape{4, 6, 2}, split);
    auto m = g.real_edges();
    int64_t n = 0;
    for (auto v : m) n += v;
    EXPECT_EQ(n, g.n_edges());
  }
}

TEST(Graph, NamesRoundTrip) {
  for (GraphShape s : {GraphShape{3, 4, 4}, GraphShape{3, 4, 2}}) {
    for (bool split : {true, false}) {
      Graph g(s, split);
      for (int64_t i = 0; i < g.n_sources(); ++i) EXPECT_EQ(g.find_source(g.source_name(i)), i);
      for (int64_t j = 0; j < g.n_readers(); ++j) EXPECT_EQ(g.find_reader(g.reader_name(j)), j);
      for (int64_t j = 0; j < g.n_readers(); ++j)
        for (int64_t i = 0; i < g.n_sources(); ++i) {
          auto e = g.find_edge(g.edge_name(i, j));
          if (g.is_edge(i, j)) {
            ASSERT_TRUE(e.has_value()) << g.edge_name(i, j);
            EXPECT_EQ(e->first, i);
            EXPECT_EQ(e->second, j);
          } else {
            EXPECT_FALSE(e.has_value()) << g.edge_name(i, j);
          }
        }
    }
  }
}

TEST(Graph, EapIgNamesAndRules) {
  Graph g(GraphShape{2, 2, 2}, true);  // not grouped: k/v readers named by head
  EXPECT_TRUE(g.find_edge("input->a0.h1<k>").has_value());
  EXPECT_TRUE(g.find_edge("a0.h1->m0").has_value());       // heads feed their own layer's MLP
  EXPECT_FALSE(g.find_edge("a0.h1->a0.h0<q>").has_value());  // never their own layer's heads
  EXPECT_FALSE(g.find_edge("m0->m0").has_value());
  EXPECT_TRUE(g.find_edge("m1->logits").has_value());
  EXPECT_FALSE(g.find_edge("a5.h0->logits").has_value());
  EXPECT_FALSE(g.find_edge("input-logits").has_value());
  Graph q(GraphShape{2, 4, 2}, true);  // grouped-query: one k and one v reader per kv head
  EXPECT_TRUE(q.find_edge("a0.h3->a1.kv1<v>").has_value());
  EXPECT_FALSE(q.find_edge("a0.h3->a1.h3<v>").has_value());
  EXPECT_EQ(q.n_readers(), 2 * (4 + 2 + 2 + 1) + 1);
}

TEST(Graph, ParallelBlocksHaveNoSameLayerHeadToMlpEdges) {
  // A parallel block (GPT-NeoX, GPT-J) feeds its MLP the block's input: the MLP of layer l reads
  // what the attention of layer l reads, so each of the L * H head -> same-layer MLP edges of the
  // sequential graph is absent; nothing else changes.
  for (bool split : {true, false}) {
    const Graph seq(GraphShape{3, 4, 4, false}, split), par(GraphShape{3, 4, 4, true}, split);
    EXPECT_EQ(par.n_edges(), seq.n_edges() - 3 * 4);
    for (int64_t l = 0; l < 3; ++l) {
      const std::string m = "m" + std::to_string(l);
      for (int64_t h = 0; h < 4; ++h) {
        const std::string e = "a" + std::to_string(l) + ".h" + std::to_string(h) + "->" + m;
        EXPECT_TRUE(seq.find_edge(e).has_value()) << e;
        EXPECT_FALSE(par.find_edge(e).has_value()) << e;
      }
      if (l > 0) EXPECT_TRUE(par.find_edge("a" + std::to_string(l - 1) + ".h0->" + m).has_value());
      EXPECT_TRUE(par.find_edge("input->" + m).has_value());
    }
    EXPECT_TRUE(par.find_edge("a2.h3->logits").has_value());
    EXPECT_TRUE(par.find_edge("m2->logits").has_value());
    int64_t n = 0;
    for (auto v : par.real_edges()) n += v;
    EXPECT_EQ(n, par.n_edges());
  }
}

// The nodes a reader feeds, by name: a grouped k / v reader feeds every head of its group.
TEST(Graph, ReaderNodes) {
  const Graph g(GraphShape{2, 6, 2}, true);
  auto fed = [&](const std::string& reader) {
    std::vector<std::string> out;
    for (int64_t s : g.reader_nodes(*g.find_reader(reader))) out.push_back(g.source_name(s));
    return out;
  };
  EXPECT_EQ(fed("a1.h4<q>"), (std::vector<std::string>{"a1.h4"}));
  EXPECT_EQ(fed("a1.kv1<k>"), (std::vector<std::string>{"a1.h3", "a1.h4", "a1.h5"}));
  EXPECT_EQ(fed("a0.kv0<v>"), (std::vector<std::string>{"a0.h0", "a0.h1", "a0.h2"}));
  EXPECT_EQ(fed("m1"), (std::vector<std::string>{"m1"}));
  EXPECT_TRUE(fed("logits").empty());
  const Graph h(GraphShape{2, 6, 2}, false);
  EXPECT_EQ(h.source_name(h.reader_nodes(*h.find_reader("a1.h5"))[0]), "a1.h5");
}
