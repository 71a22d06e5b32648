// Circuit files: exact round trip, atomic writes, pruning, drawing, and bad files. Writes
// ${golden}/circuit/*.json for tests/reference/circuit_check.py, which reads them the way
// EAP-IG's Graph.from_json does.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "edgewise/circuit.h"
#include "edgewise/error.h"
#include "test_helpers.h"

namespace fs = std::filesystem;
using edgewise::Circuit;
using edgewise::Graph;
using edgewise::GraphShape;

namespace {

std::string out_dir() {
  std::string d = std::string(EW_GOLDEN_DIR) + "/circuit";
  fs::create_directories(d);
  return d;
}

Circuit random_circuit(GraphShape s, bool split, uint32_t seed) {
  Circuit c = Circuit::empty(s, split, 64);
  Graph g = c.graph();
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1e-2f);
  std::bernoulli_distribution in(0.2);
  for (int64_t j = 0; j < g.n_readers(); ++j)
    for (int64_t i = 0; i < g.reader_fan_in(j); ++i) {
      c.scores[i * g.n_readers() + j] = nd(rng);
      c.in_graph[i * g.n_readers() + j] = in(rng);
    }
  c.meta = {{"model", "test"}, {"task", "ioi"}, {"method", "random"}, {"options", {{"seed", seed}}}};
  return c;
}

TEST(Circuit, RoundTripIsExact) {
  for (auto [shape, split] : {std::pair{GraphShape{12, 12, 12}, true}, std::pair{GraphShape{3, 4, 2}, true},
                              std::pair{GraphShape{2, 3, 3}, false}, std::pair{GraphShape{3, 4, 4, true}, true}}) {
    Circuit c = random_circuit(shape, split, 7);
    std::string p = out_dir() + "/rt_" + std::to_string(shape.n_layers) + "_" + std::to_string(shape.n_kv_heads) +
                    (split ? "_qkv" : "_heads") + (shape.parallel ? "_parallel" : "") + ".json";
    edgewise::circuit_write(c, p);
    Circuit r = edgewise::circuit_read(p);
    EXPECT_EQ(r.shape.n_layers, shape.n_layers);
    EXPECT_EQ(r.shape.n_kv_heads, shape.n_kv_heads);
    EXPECT_EQ(r.shape.parallel, shape.parallel);
    EXPECT_EQ(r.split_qkv, split);
    EXPECT_EQ(r.in_graph, c.in_graph);
    ASSERT_EQ(r.scores.size(), c.scores.size());
    for (size_t k = 0; k < c.scores.size(); ++k) ASSERT_EQ(r.scores[k], c.scores[k]) << k;  // bit-exact
    EXPECT_EQ(r.meta["task"], "ioi");
    EXPECT_EQ(r.meta["options"]["seed"], 7);
  }
}

TEST(Circuit, PruneKeepsOnlyInputToLogitsPaths) {
  Circuit c = Circuit::empty(GraphShape{2, 2, 2}, true, 8);
  Graph g = c.graph();
  const int64_t R = g.n_readers();
  auto set = [&](const std::string& e) {
    auto idx = g.find_edge(e);
    ASSERT_TRUE(idx) << e;
    c.in_graph[idx->first * R + idx->second] = 1;
  };
  set("input->a0.h0<q>");
  set("a0.h0->m1");
  set("m1->logits");       // a complete path
  set("a0.h1->logits");    // a0.h1 has no input: dangling
  set("input->a1.h1<v>");  // a1.h1 has an input but no output: dangling
  c.prune();
  EXPECT_EQ(c.n_edges_in(), 3);
  EXPECT_TRUE(c.in_graph[g.find_edge("m1->logits")->first * R + g.find_edge("m1->logits")->second]);
  EXPECT_FALSE(c.in_graph[g.find_edge("a0.h1->logits")->first * R + g.find_edge("a0.h1->logits")->second]);
  // A grouped model: a k edge into key/value head 0 keeps heads 0 and 1 fed.
  Circuit q = Circuit::empty(GraphShape{2, 4, 2}, true, 8);
  Graph gq = q.graph();
  auto setq = [&](const std::string& e) {
    auto idx = gq.find_edge(e);
    ASSERT_TRUE(idx) << e;
    q.in_graph[idx->first * gq.n_readers() + idx->second] = 1;
  };
  setq("input->a0.kv0<k>");
  setq("a0.h1->logits");
  q.prune();
  EXPECT_EQ(q.n_edges_in(), 2);
}

TEST(Circuit, WriteIsAtomicAndErrorsNameTheFile) {
  std::string dir = out_dir();
  Circuit c = random_circuit(GraphShape{2, 2, 2}, true, 1);
  EXPECT_THROW(edgewise::circuit_write(c, dir + "/no/such/dir/c.json"), edgewise::Error);
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << "left a temporary file";
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  };
  std::string bad_json = write("bad_json.json", "{\"cfg\": ");
  std::string no_edges = write("no_edges.json", R"({"cfg": {"n_layers": 1, "n_heads": 1}, "nodes": {}})");
  std::string bad_edge = write("bad_edge.json",
                               R"({"cfg": {"n_layers": 1, "n_heads": 1, "d_model": 4}, "nodes": {},
                                   "edges": {"m0->a0.h0<q>": {"score": 1.0, "in_graph": true}}})");
  for (const auto& [p, want] : {std::pair{bad_json, "JSON"}, std::pair{no_edges, "edges"}, std::pair{bad_edge, "m0->a0.h0<q>"}}) {
    try {
      edgewise::circuit_read(p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const edgewise::Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(p), std::string::npos) << m;
      EXPECT_NE(m.find(want), std::string::npos) << m;
    }
  }
}

TEST(Circuit, DrawSvg) {
  Circuit c = random_circuit(GraphShape{3, 4, 2}, true, 3);
  c.prune();
  std::string p = out_dir() + "/drawn.svg";
  edgewise::circuit_draw_svg(c, p);
  std::ifstream in(p);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("logits"), std::string::npos);
}

}  // namespace

TEST(Circuit, WrittenFilesGetPlainCreatePermissions) {
  // The temporary file behind an atomic write is created 0600; the result must not stay that
  // way (outputs are shared): 0666 less the umask, as a plain create gives.
  const std::string path = (std::filesystem::temp_directory_path() / "edgewise_perm_test.txt").string();
  const mode_t mask = ::umask(022);
  edgewise::write_file_atomic(path, "x");
  ::umask(mask);
  const auto perms = std::filesystem::status(path).permissions();
  EXPECT_EQ(perms, std::filesystem::perms(0644));
  std::filesystem::remove(path);
}

// ---------------------------------------------------------------- fuzz regressions
// Inputs that crashed fuzz/fuzz_circuit.cpp (fuzz/regressions/fuzz_circuit/, replayed by
// `scripts/fuzz.sh smoke`; docs/FUZZING.md): each is an Error naming the file.
TEST(CircuitFuzz, BadFilesAreErrorsNamingTheFile) {
  const fs::path dir = fs::temp_directory_path() / ("ew_test_circuit_fuzz_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::vector<std::pair<std::string, std::string>> cases = {
      // a cfg whose dense score table would take 10^10 x 3 * 10^10 entries (it was allocated)
      {R"({"cfg": {"n_layers": 100000, "n_heads": 100000}, "nodes": {}, "edges": {}})",
       "describes a graph of 10000100001 sources x 30000100001 readers, more score entries than the 134217728"},
      // nlohmann's type_error escaped circuit_read
      {R"({"cfg": {"n_layers": 1, "n_heads": 1}, "nodes": {}, "edges": {}, "edgewise": {"split_qkv": 1}})",
       "edgewise.split_qkv must be true or false, found 1"},
      // the reader name "a1." made Graph::find_reader call substr(1) on "" (std::out_of_range)
      {R"({"cfg":{"n_heads":2,"n_layers":3},"nodes":{},"edges":{"->a1.":true}})",
       "edge '->a1.' is not an edge of a graph"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string p = (dir / ("fuzz_" + std::to_string(i) + ".json")).string();
    std::ofstream(p) << cases[i].first;
    try {
      edgewise::circuit_read(p);
      ADD_FAILURE() << "no error for case " << i;
    } catch (const edgewise::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(p), std::string::npos) << m;
      EXPECT_NE(m.find(cases[i].second), std::string::npos) << m;
    }
  }
  const Graph g(GraphShape{3, 2, 2}, true);
  for (const char* name : {"a1.", "a1.<q>", "a.h0<q>", "a1", "m", "a1.kv<k>"}) EXPECT_FALSE(g.find_reader(name)) << name;
  // The largest graph edgewise supports reading is well above a 70B Llama's (5201 x 6481).
  const fs::path big = dir / "llama70b.json";
  std::ofstream(big) << R"({"cfg": {"n_layers": 80, "n_heads": 64, "n_kv_heads": 8}, "nodes": {}, "edges": {}})";
  const Circuit c = edgewise::circuit_read(big.string());
  EXPECT_EQ(c.scores.size(), size_t{5201} * 6481);
  fs::remove_all(dir);
}
