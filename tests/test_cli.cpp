// Command-line behaviour on bad input: every case in cases.json (written by
// tests/reference/bad_files.py) must end with exit status 1 and exactly one line on stderr,
// "edgewise: error: ...", naming the file and the problem. A crash (signal) fails the test.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "test_helpers.h"
#include <cmath>

namespace {

struct Result {
  int status = -1;     // exit status, or -1 when killed by a signal
  int signal = 0;
  std::string out, err;
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Result run_cli(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
               const std::string& cwd = "") {
  std::string err_file = std::string(EW_GOLDEN_DIR) + "/badfiles/stderr.txt";
  std::string cmd = cwd.empty() ? "env" : "cd " + shell_quote(cwd) + " && env";
  for (const auto& [k, v] : env) cmd += " " + shell_quote(k + "=" + v);
  cmd += " " + shell_quote(EW_CLI);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " 2>" + shell_quote(err_file);
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int st = pclose(p);
  if (WIFEXITED(st)) r.status = WEXITSTATUS(st);
  if (WIFSIGNALED(st)) r.signal = WTERMSIG(st);
  std::ifstream e(err_file);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  return r;
}

TEST(Cli, BadFilesGiveOneLineErrors) {
  std::string path = ewtest::golden("badfiles", "cases.json");
  ASSERT_TRUE(ewtest::exists(path)) << path << " missing: run the ref_badfiles fixture";
  std::ifstream in(path);
  auto cases = nlohmann::json::parse(in);
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    std::map<std::string, std::string> env;
    for (auto& [k, v] : c["env"].items()) env[k] = v.get<std::string>();
    Result r = run_cli(c["args"].get<std::vector<std::string>>(), env);
    EXPECT_EQ(r.signal, 0) << "crashed with signal " << r.signal << "; stderr: " << r.err;
    EXPECT_EQ(r.status, 1) << "stderr: " << r.err;
    // One line: the message, a newline, nothing else (no backtrace, no half output).
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
    EXPECT_EQ(r.err.rfind("edgewise: error: ", 0), 0u) << r.err;
    for (const auto& s : c["expect"]) {
      std::string want = s.get<std::string>();
      std::string lo_err = r.err, lo_want = want;
      for (auto& ch : lo_err) ch = std::tolower(ch);
      for (auto& ch : lo_want) ch = std::tolower(ch);
      EXPECT_NE(lo_err.find(lo_want), std::string::npos) << "expected '" << want << "' in: " << r.err;
    }
    EXPECT_TRUE(r.out.empty()) << "printed output before failing: " << r.out;
  }
}

TEST(Cli, UnknownSubcommandAndMissingOptionExitTwo) {
  Result r = run_cli({"no-such-command"}, {});
  EXPECT_EQ(r.status, 2) << r.err;
  r = run_cli({"run"}, {});  // --prompt is required
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--prompt"), std::string::npos) << r.err;
}

TEST(Cli, HelpTeaches) {
  Result r = run_cli({"--help"}, {});
  EXPECT_EQ(r.status, 0);
  for (const char* s : {"info", "run", "generate", "tokenize", "MODEL", "Examples"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " not in --help:\n" << r.out;
}

}  // namespace

// `evaluate` and `draw` end to end on the small random GPT-2 of the model_golden fixture (real
// GPT-2 vocabulary, so the IOI generator finds its single-token names). The checks are the
// identities the engine must satisfy, not values it computed: with every edge in, the circuit
// equals the full model and the faithfulness is 1; with none, the circuit equals the empty one.
#include "edgewise/circuit.h"

namespace {

// A row of the metric table, which follows the blank line after the header block.
double field(const std::string& out, const std::string& row) {
  auto table = out.find("\n\n");
  if (table == std::string::npos) return std::nan("");
  auto p = out.find("\n" + row + " ", table);
  if (p == std::string::npos) return std::nan("");
  return std::stod(out.substr(out.find_first_not_of(' ', p + 1 + row.size())));
}

TEST(Cli, EvaluateAndDrawEndToEnd) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  ASSERT_TRUE(ewtest::exists(model + "/config.json"));
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles";
  edgewise::Circuit all = edgewise::Circuit::empty(edgewise::GraphShape{3, 4, 4}, true, 64);
  edgewise::Graph g = all.graph();
  for (int64_t j = 0; j < g.n_readers(); ++j)
    for (int64_t i = 0; i < g.reader_fan_in(j); ++i) {
      all.in_graph[i * g.n_readers() + j] = 1;
      all.scores[i * g.n_readers() + j] = 0.01f * static_cast<float>((i * 7 + j) % 11 - 5);
    }
  edgewise::Circuit none = edgewise::Circuit::empty(edgewise::GraphShape{3, 4, 4}, true, 64);
  edgewise::circuit_write(all, dir + "/all.json");
  edgewise::circuit_write(none, dir + "/none.json");

  Result r = run_cli({"evaluate", model, "--task", "ioi", "-n", "8", "--circuit", dir + "/all.json"}, {});
  ASSERT_EQ(r.status, 0) << r.err;
  const double m = field(r.out, "model"), c = field(r.out, "circuit"), e = field(r.out, "empty");
  // All masks 1 is the clean run, within the patched forward's fp32 bound (docs/PATCHING.md).
  EXPECT_NEAR(c, m, 1e-4) << r.out;
  EXPECT_NE(m, e) << "random model: the corrupted run should differ\n" << r.out;
  EXPECT_NE(r.out.find("= 1.0000"), std::string::npos) << r.out;

  r = run_cli({"evaluate", model, "--task", "ioi", "-n", "8", "--circuit", dir + "/none.json", "-a", "zero"}, {});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NEAR(field(r.out, "circuit"), field(r.out, "empty"), 1e-5) << r.out;

  // A folder named like a built-in task in the working directory does not shadow the task
  // (it once made --task fail with "unknown dataset format"); the same numbers come out.
  std::filesystem::create_directories(dir + "/cwd/ioi");
  Result shadow = run_cli({"evaluate", model, "--task", "ioi", "-n", "8", "--circuit", dir + "/none.json", "-a", "zero"},
                          {}, dir + "/cwd");
  ASSERT_EQ(shadow.status, 0) << shadow.err;
  EXPECT_EQ(field(shadow.out, "circuit"), field(r.out, "circuit")) << shadow.out;

  // The default model's graph does not fit this model: one-line error naming the circuit file.
  std::string big = ewtest::golden("circuit", "rt_12_12_qkv.json");
  if (ewtest::exists(big)) {
    r = run_cli({"evaluate", model, "--task", "ioi", "-n", "4", "--circuit", big}, {});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find(big), std::string::npos) << r.err;
  }

  r = run_cli({"draw", dir + "/all.json", "-o", dir + "/all.svg"}, {});
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream svg(dir + "/all.svg");
  std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("a2.h3"), std::string::npos);
}

// `discover` end to end on the same model: the identities again (all edges kept = the full
// model, faithfulness 1 at 100% of the curve), the files (circuit, curve CSV and SVG), and
// the errors. The scores themselves are checked in test_attribution against peer libraries.
TEST(Cli, DiscoverEndToEnd) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  ASSERT_TRUE(ewtest::exists(model + "/config.json"));
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles";
  const edgewise::Graph g(edgewise::GraphShape{3, 4, 4}, true);
  Result r = run_cli({"discover", model, "--task", "ioi", "-n", "6", "--method", "eap", "--edges",
                      std::to_string(g.n_edges()), "-o", dir + "/disc.json", "--curve", dir + "/disc.csv",
                      "--svg", dir + "/disc_circuit.svg"},
                     {});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NEAR(field(r.out, "circuit"), field(r.out, "model"), 1e-4) << r.out;
  EXPECT_NE(r.out.find("normalised faithfulness 1.0000"), std::string::npos) << r.out;
  edgewise::Circuit c = edgewise::circuit_read(dir + "/disc.json");
  EXPECT_EQ(c.n_edges_in(), g.n_edges());
  EXPECT_EQ(c.meta.at("method"), "eap");
  int64_t nonzero = 0;
  for (float v : c.scores) nonzero += v != 0.0f;
  EXPECT_GT(nonzero, g.n_edges() / 2) << "EAP scores of a random model are mostly non-zero";
  std::ifstream csv(dir + "/disc.csv");
  std::string line, last_row;
  int rows = 0;
  bool cpr = false;
  while (std::getline(csv, line)) {
    if (line.rfind("# CPR", 0) == 0) cpr = true;
    else if (!line.empty() && line[0] != 'f' && line[0] != '#') ++rows, last_row = line;
  }
  EXPECT_EQ(rows, 10);
  EXPECT_TRUE(cpr);
  EXPECT_NEAR(std::stod(last_row.substr(last_row.rfind(',') + 1)), 1.0, 1e-4) << last_row;  // 100% of edges
  EXPECT_TRUE(ewtest::exists(dir + "/disc.svg"));
  EXPECT_TRUE(ewtest::exists(dir + "/disc_circuit.svg"));

  r = run_cli({"discover", model, "--task", "ioi", "--method", "acdc-ish"}, {});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("eap-ig-inputs"), std::string::npos) << r.err;
  r = run_cli({"discover", model, "--task", "ioi", "-n", "4", "--edges", "5", "--nodes", "3"}, {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--edges or --nodes"), std::string::npos) << r.err;
}


// Counts are positive whether the examples come from a built-in task or a file (a file once took
// every example for -n -5), and an edge or node budget is refused below 1 (--edges -3 once kept
// one edge); nothing is written.
TEST(Cli, CountsMustBePositive) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  ASSERT_TRUE(ewtest::exists(model + "/config.json"));
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles";
  const std::string data = dir + "/counts.jsonl";
  {
    std::ofstream f(data);
    f << R"({"clean": "When Mary and John went to the store, John gave a drink to <predict>Mary</predict>", "corrupted": "When Mary and John went to the store, Anna gave a drink to <predict>John</predict>"})"
      << "\n";
  }
  const std::string out = dir + "/counts.json";
  for (const std::string task : {data, std::string("ioi")}) {
    SCOPED_TRACE(task);
    std::remove(out.c_str());
    Result r = run_cli({"discover", model, "--task", task, "-n", "-5", "--method", "eap", "-o", out}, {});
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("number of examples must be positive, got -5"), std::string::npos) << r.err;
    EXPECT_FALSE(ewtest::exists(out));
  }
  for (const std::string opt : {"--edges", "--nodes"}) {
    SCOPED_TRACE(opt);
    Result r = run_cli({"discover", model, "--task", "ioi", "-n", "4", "--method", "eap", opt, "-3", "-o", out}, {});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find(opt), std::string::npos) << r.err;
    EXPECT_FALSE(ewtest::exists(out));
  }
  Result r = run_cli({"tune", model, "--task", "ioi", "-n", "4", "--nodes", "0", "-o", dir + "/counts_tuned"}, {});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--nodes"), std::string::npos) << r.err;
}

// ACDC from the command line: a tau sweep writes one circuit and trajectory per tau and the
// curve; a run killed (SIGKILL) part-way and resumed from its checkpoint ends with the circuit
// of an uninterrupted run; another run's checkpoint is refused.
TEST(Cli, DiscoverAcdcSweepAndResume) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  ASSERT_TRUE(ewtest::exists(model + "/config.json"));
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles";
  const edgewise::Graph g(edgewise::GraphShape{3, 4, 4}, true);
  Result r = run_cli({"discover", model, "--task", "ioi", "-n", "8", "--method", "acdc", "--tau", "0.001,0.1", "-o",
                      dir + "/acdc.json"},
                     {});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* f : {"acdc.tau0.001.json", "acdc.tau0.1.json", "acdc.tau0.001.trajectory.csv",
                        "acdc.tau0.1.trajectory.csv", "acdc.sweep.csv", "acdc.sweep.svg"})
    EXPECT_TRUE(ewtest::exists(dir + "/" + f)) << f << "\n" << r.out;
  edgewise::Circuit c = edgewise::circuit_read(dir + "/acdc.tau0.1.json");
  EXPECT_EQ(c.meta.at("method"), "acdc");
  EXPECT_EQ(c.meta.at("acdc").at("tau").get<double>(), 0.1);
  auto lines = [](const std::string& path) {
    std::ifstream in(path);
    std::string l;
    int64_t n = 0;
    while (std::getline(in, l)) n += !l.empty();
    return n;
  };
  EXPECT_EQ(lines(dir + "/acdc.tau0.1.trajectory.csv"), g.n_edges() + 1);  // a decision per edge + header
  EXPECT_EQ(lines(dir + "/acdc.sweep.csv"), 3);                             // header + one row per tau

  // Kill and resume.
  const std::vector<std::string> base = {"discover", model, "--task", "ioi", "-n", "48", "--method", "acdc",
                                         "--tau", "0.003"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  r = run_cli(with({"-o", dir + "/acdc_full.json"}), {});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string ck = dir + "/acdc_ck.json";
  std::remove(ck.c_str());
  std::remove((dir + "/acdc_killed.json").c_str());
  // SIGKILL once the checkpoint says half the readers are done (checkpoints are written
  // atomically after every reader), so the kill lands in the middle of the search.
  std::string run = shell_quote(EW_CLI);
  for (const auto& a : with({"-o", dir + "/acdc_killed.json", "--checkpoint", ck, "--checkpoint-every", "0", "--resume"}))
    run += " " + shell_quote(a);
  const std::string half = std::to_string(g.n_readers() / 2), q = shell_quote(ck);
  const std::string script = run + " >/dev/null 2>&1 & pid=$!; while kill -0 $pid 2>/dev/null; do n=$(grep -o '\"next\":[0-9]*' " +
                             q + " 2>/dev/null | cut -d: -f2); if [ -n \"$n\" ] && [ \"$n\" -ge " + half +
                             " ]; then kill -9 $pid; break; fi; sleep 0.005; done; wait $pid";
  const int st = std::system(("bash -c " + shell_quote(script) + " 2>/dev/null").c_str());  // no "Killed" job notice
  const bool killed = WIFEXITED(st) && WEXITSTATUS(st) == 137;
  std::printf("killed once half the readers were done: %s, checkpoint %s\n", killed ? "yes" : "no (it finished)",
              ewtest::exists(ck) ? "written" : "absent");
  EXPECT_TRUE(killed) << "the run ended before half its readers were checkpointed";
  EXPECT_FALSE(ewtest::exists(dir + "/acdc_killed.json") && killed) << "a killed run left its output";
  r = run_cli(with({"-o", dir + "/acdc_killed.json", "--checkpoint", ck, "--resume"}), {});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(edgewise::circuit_read(dir + "/acdc_killed.json").in_graph,
            edgewise::circuit_read(dir + "/acdc_full.json").in_graph);
  // Another run's checkpoint.
  r = run_cli({"discover", model, "--task", "ioi", "-n", "48", "--method", "acdc", "--tau", "0.02", "-o",
               dir + "/acdc_other.json", "--checkpoint", ck, "--resume"},
              {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(ck), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("another run"), std::string::npos) << r.err;
}

// Two outputs of one run on one path (a --curve named like the sweep's table) are refused before
// any work, naming both and the path; nothing is written.
TEST(Cli, DiscoverRefusesTwoOutputsOnOnePath) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  ASSERT_TRUE(ewtest::exists(model + "/config.json"));
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles";
  std::remove((dir + "/clash.sweep.csv").c_str());
  std::remove((dir + "/clash.tau0.01.json").c_str());
  Result r = run_cli({"discover", model, "--task", "ioi", "-n", "4", "--method", "acdc", "--tau", "0.01,0.1", "-o",
                      dir + "/clash.json", "--curve", dir + "/clash.sweep.csv"},
                     {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("the curve (--curve) and the sweep's table would both be written to " + dir + "/clash.sweep.csv"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(ewtest::exists(dir + "/clash.tau0.01.json"));
  EXPECT_FALSE(ewtest::exists(dir + "/clash.sweep.csv"));
  // --trajectory naming the circuit itself.
  r = run_cli({"discover", model, "--task", "ioi", "-n", "4", "--method", "acdc", "-o", dir + "/clash.json",
               "--trajectory", dir + "/clash.json"},
              {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("the trajectory and the circuit would both be written"), std::string::npos) << r.err;
}

// Edge Pruning from the command line: outputs, a sweep, bad options, and a SIGKILL part-way
// through training followed by --resume gives the uninterrupted run's circuit.
TEST(Cli, DiscoverEdgePruningAndResume) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  ASSERT_TRUE(ewtest::exists(model + "/config.json"));
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles";
  const std::vector<std::string> base = {"discover", model, "--task", "ioi", "-n", "12", "--method", "edge-pruning",
                                         "--steps", "60", "--batch-size", "4", "--warmup-steps", "5",
                                         "--target-warmup-steps", "30", "--init-log-alpha", "2", "--lr", "0.3"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  Result r = run_cli(with({"--target", "0.3,0.6", "-o", dir + "/ep.json"}), {});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* f : {"ep.t0.3.json", "ep.t0.6.json", "ep.t0.3.log.csv", "ep.t0.6.log.csv", "ep.sweep.csv", "ep.sweep.svg"})
    EXPECT_TRUE(ewtest::exists(dir + "/" + f)) << f << "\n" << r.out;
  edgewise::Circuit c = edgewise::circuit_read(dir + "/ep.t0.6.json");
  EXPECT_EQ(c.meta.at("method"), "edge-pruning");
  EXPECT_EQ(c.meta.at("edge_pruning").at("target").get<double>(), 0.6);
  EXPECT_EQ(c.meta.at("validation").at("examples").get<int64_t>(), 2);  // 20% of 12, rounded
  EXPECT_NE(r.out.find("exact"), std::string::npos) << r.out;
  // Bad options: one clear message, exit 1.
  r = run_cli(with({"--target", "-0.5", "-o", dir + "/ep_bad.json"}), {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--target"), std::string::npos) << r.err;
  r = run_cli(with({"--target", "0.5", "--edges", "10", "-o", dir + "/ep_bad.json"}), {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--edges"), std::string::npos) << r.err;

  r = run_cli(with({"--target", "0.5", "-o", dir + "/ep_full.json"}), {});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string ck = dir + "/ep_ck.safetensors";
  std::remove(ck.c_str());
  std::remove((dir + "/ep_killed.json").c_str());
  // SIGKILL once the checkpoint (written after every step) records step 30 of 60.
  std::string run = shell_quote(EW_CLI);
  for (const auto& a : with({"--target", "0.5", "-o", dir + "/ep_killed.json", "--checkpoint", ck, "--checkpoint-every",
                             "0", "--resume"}))
    run += " " + shell_quote(a);
  const std::string q = shell_quote(ck);
  const std::string script = run + " >/dev/null 2>&1 & pid=$!; while kill -0 $pid 2>/dev/null; do n=$(grep -ao '\"step\":\"[0-9]*' " +
                             q + " 2>/dev/null | grep -o '[0-9]*$'); if [ -n \"$n\" ] && [ \"$n\" -ge 30 ]; then kill -9 $pid; break; fi; "
                             "sleep 0.005; done; wait $pid";
  const int st = std::system(("bash -c " + shell_quote(script) + " 2>/dev/null").c_str());
  const bool killed = WIFEXITED(st) && WEXITSTATUS(st) == 137;
  EXPECT_TRUE(killed) << "the run ended before step 30 was checkpointed";
  EXPECT_FALSE(ewtest::exists(dir + "/ep_killed.json") && killed) << "a killed run left its output";
  r = run_cli(with({"--target", "0.5", "-o", dir + "/ep_killed.json", "--checkpoint", ck, "--resume"}), {});
  ASSERT_EQ(r.status, 0) << r.err;
  edgewise::Circuit full = edgewise::circuit_read(dir + "/ep_full.json"), resumed = edgewise::circuit_read(dir + "/ep_killed.json");
  EXPECT_EQ(resumed.in_graph, full.in_graph);
  EXPECT_EQ(resumed.scores, full.scores);
  // Another run's checkpoint (another target) is refused, naming the file.
  r = run_cli(with({"--target", "0.4", "-o", dir + "/ep_other.json", "--checkpoint", ck, "--resume"}), {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(ck), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("another run"), std::string::npos) << r.err;
}

TEST(Cli, PathPatchingFlapAndApp) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  ASSERT_TRUE(ewtest::exists(model + "/config.json"));
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles";
  const std::vector<std::string> base = {model, "--task", "ioi", "-n", "8", "--batch-size", "4",
                                         "--importance-threshold", "1", "--min-value-threshold", "0.001"};
  auto cmd = [&](std::vector<std::string> head, std::vector<std::string> extra) {
    head.insert(head.end(), base.begin(), base.end());
    head.insert(head.end(), extra.begin(), extra.end());
    return head;
  };
  Result r = run_cli(cmd({"discover", "--method", "path-patching"}, {"--calc-flops", "-o", dir + "/pp.json"}), {});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("GFLOPs"), std::string::npos) << r.out;
  edgewise::Circuit pp = edgewise::circuit_read(dir + "/pp.json");
  EXPECT_EQ(pp.meta.at("method"), "path-patching");
  EXPECT_TRUE(ewtest::exists(dir + "/pp.report.json"));
  // prune: the sweep's curve and the circuit at the cliff.
  r = run_cli({"prune", model, "--task", "ioi", "-n", "8", "--flap", "hybrid", "--lowest", "0.5", "--highest", "0.9",
               "--step", "0.1", "-o", dir + "/flap.json"}, {});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* f : {"flap.json", "flap.flap.csv", "flap.flap.svg", "flap.report.json"})
    EXPECT_TRUE(ewtest::exists(dir + "/" + f)) << f;
  {
    // The report's per-head scores are the ones that chose the heads: hybrid keeps the union of
    // each kind's best round(n x (1 - sparsity)) heads (ties: lower index first).
    std::ifstream in(dir + "/flap.report.json");
    const nlohmann::json fl = nlohmann::json::parse(in).at("flap");
    std::set<std::string> want;
    for (const char* kind : {"vanilla", "contrastive"}) {
      const nlohmann::json& cv = fl.at("curves").at(kind);
      std::vector<std::pair<double, std::string>> order;
      for (const auto& [name, s] : cv.at("head_scores").items()) order.push_back({s.get<double>(), name});
      const size_t n = order.size();
      EXPECT_EQ(n, static_cast<size_t>(pp.shape.n_layers * pp.shape.n_heads)) << kind;
      auto index = [](const std::string& nm) {  // a{l}.h{h} -> (l, h)
        const size_t dot = nm.find(".h");
        return std::make_pair(std::stoi(nm.substr(1, dot - 1)), std::stoi(nm.substr(dot + 2)));
      };
      std::stable_sort(order.begin(), order.end(), [&](const auto& x, const auto& y) {
        return x.first != y.first ? x.first > y.first : index(x.second) < index(y.second);
      });
      const auto keep = static_cast<size_t>(std::llround(n * (1 - cv.at("sparsity").get<double>())));
      for (size_t i = 0; i < keep; ++i) want.insert(order[i].second);
    }
    std::set<std::string> got;
    for (const auto& h : fl.at("heads")) got.insert(h.get<std::string>());
    EXPECT_EQ(got, want);
  }
  // app against the plain run.
  r = run_cli(cmd({"discover", "--method", "app"}, {"--pruning", "contrastive", "--lowest", "0.5", "--highest", "0.9",
                                                    "--step", "0.1", "--pp-circuit", dir + "/pp.json", "-o", dir + "/app.json"}), {});
  ASSERT_EQ(r.status, 0) << r.err;
  edgewise::Circuit app = edgewise::circuit_read(dir + "/app.json");
  EXPECT_EQ(app.meta.at("method"), "app");
  EXPECT_TRUE(app.meta.contains("tpr"));
  EXPECT_NE(r.out.find("FLOP ratio"), std::string::npos) << r.out;
  // Bad input: one line naming the problem, exit 1.
  r = run_cli(cmd({"discover", "--method", "app"}, {"--pp-circuit", dir + "/missing.json", "-o", dir + "/app_bad.json"}), {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("missing.report.json"), std::string::npos) << r.err;
  r = run_cli(cmd({"discover", "--method", "path-patching"}, {"--edges", "10", "-o", dir + "/pp_bad.json"}), {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--edges"), std::string::npos) << r.err;
  r = run_cli({"prune", model, "--task", "ioi", "-n", "8", "--lowest", "0.9", "--highest", "0.5", "-o", dir + "/f_bad.json"}, {});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--lowest"), std::string::npos) << r.err;
  EXPECT_FALSE(ewtest::exists(dir + "/app_bad.json") || ewtest::exists(dir + "/pp_bad.json") ||
               ewtest::exists(dir + "/f_bad.json"));
}

}  // namespace

// ---- inputs that cannot silently mislead (issue 23) ----

namespace {
void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}
const char* kGoodLine =
    R"({"clean": "When Mary and John went to the store, John gave a drink to <predict>Mary</predict>", "corrupted": "When Mary and John went to the store, Anna gave a drink to <predict>John</predict>"})";
}  // namespace

// A dataset with bad lines of several kinds, found by the reader and by the answer checks,
// reports every one of them (file:line and why) in one run and writes nothing; with
// --skip-bad-lines the run goes on with the good lines and lists what it skipped.
TEST(Cli, DatasetReportsEveryBadLineAtOnce) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  ASSERT_TRUE(ewtest::exists(model + "/config.json"));
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles";
  const std::string data = dir + "/several_bad.jsonl", out = dir + "/several_bad.json";
  // GPT-2 ids by HF `tokenizers`: "  Paris" -> [" ", " Paris"]; " 1732" -> [" 17", "32"] and
  // " 1745" -> [" 17", "45"] (the same first token).
  write_text_file(data, std::string(kGoodLine) + "\n" +                                                   // 1
                            R"({"clean": "The capital of France is <predict> Paris</predict>", "corrupted": "The capital of Italy is <predict> Rome</predict>"})" + "\n" +  // 2
                            "not json\n" +                                                                 // 3
                            kGoodLine + "\n" +                                                             // 4
                            R"({"clean": "It is <predict></predict>", "corrupted": "It was"})" + "\n" +     // 5
                            R"({"clean": "From the year", "corrupted": "To the year", "correct": " 1732", "incorrect": " 1745"})" + "\n" +  // 6
                            R"({"clean": "The capital of France is<predict>  Paris</predict>", "corrupted": "The capital of Italy is<predict> Rome</predict>"})" + "\n" +  // 7
                            R"({"clean": "a", "corrupted": "b", "correct": " x", "split": "test"})" + "\n");  // 8
  std::remove(out.c_str());
  Result r = run_cli({"discover", model, "--task", data, "--method", "eap", "-o", out}, {});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("6 bad lines"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--skip-bad-lines"), std::string::npos) << r.err;
  const std::vector<std::pair<int, std::string>> want = {
      {2, "a space before <predict> and another inside it"},
      {3, "not valid JSON"},
      {5, "empty answer"},
      {6, "both begin with token 1596 \" 17\""},
      {7, "begins with token 220 \" \", only spaces"},
      {8, "split must be"}};
  size_t last = 0;
  for (const auto& [line, why] : want) {
    const size_t at = r.err.find(data + ":" + std::to_string(line) + ": ");
    ASSERT_NE(at, std::string::npos) << "line " << line << " not reported: " << r.err;
    EXPECT_GT(at, last) << "lines out of order: " << r.err;  // sorted by line
    last = at;
    const size_t eol = r.err.find('\n', at);
    EXPECT_NE(r.err.substr(at, eol - at).find(why), std::string::npos) << "line " << line << ": " << r.err;
  }
  for (int good : {1, 4}) EXPECT_EQ(r.err.find(data + ":" + std::to_string(good) + ":"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_FALSE(ewtest::exists(out));

  r = run_cli({"discover", model, "--task", data, "--method", "eap", "-o", out, "--skip-bad-lines"}, {});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("skipped 6 bad lines"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(data + ":6: "), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("(2 examples"), std::string::npos) << r.out;
  EXPECT_TRUE(ewtest::exists(out));

  // Every line bad: skipping leaves nothing, and the message says so.
  write_text_file(data, "not json\n{}\n");
  r = run_cli({"evaluate", model, "--task", data, "-c", out, "--skip-bad-lines"}, {});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("no usable examples: all 2 lines were bad"), std::string::npos) << r.err;
}

// Multi-token answers are allowed but announced: how many, where, and what the metrics use.
// A folder or a missing file given as the dataset says what it is.
TEST(Cli, DatasetWarningsFoldersAndMissingFiles) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles";
  const std::string data = dir + "/multi.jsonl", out = dir + "/multi.json";
  // " Mariana" -> [" Mar", "iana"] (HF tokenizers): two tokens.
  write_text_file(data, std::string(kGoodLine) + "\n" +
                            R"({"clean": "When Mariana and John went to the store, John gave a drink to <predict>Mariana</predict>", "corrupted": "When Mariana and John went to the store, Anna gave a drink to <predict>John</predict>"})" +
                            "\n");
  Result r = run_cli({"discover", model, "--task", data, "--method", "eap", "-o", out}, {});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("warning: " + data + ": 1 of 2 examples have answers of several tokens (1 answers; " + data +
                       ":2): the metrics use the first token of each answer"),
            std::string::npos)
      << r.err;

  const std::string folder = dir + "/a_folder.jsonl";
  std::filesystem::create_directories(folder);
  r = run_cli({"evaluate", model, "--task", folder, "-c", out}, {});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find(folder + ": is a folder; expected a dataset file"), std::string::npos) << r.err;
  r = run_cli({"evaluate", model, "--task", dir + "/no_such.jsonl", "-c", out}, {});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("no_such.jsonl: no such dataset file"), std::string::npos) << r.err;
}

// An embedding with more rows than the tokenizer has ids (model_golden's qwen2_padded: 1000
// rows, 256 ids): `run --top-k` lists every row transformers ranks, the rows beyond the
// tokenizer by id.
TEST(Cli, PaddedVocabularyRowsShownById) {
  const std::string model = ewtest::golden("model_golden", "qwen2_padded");
  ASSERT_TRUE(ewtest::exists(model + "/tokenizer.json")) << "rerun the model_golden fixture";
  std::ifstream mf(ewtest::golden("model_golden", "manifest.json"));
  const auto ref = nlohmann::json::parse(mf).at("padded");
  const auto top = ref.at("top_ids").get<std::vector<int64_t>>();
  Result r = run_cli({"run", model, "--prompt", ref.at("prompt").get<std::string>(), "--top-k",
                      std::to_string(top.size())},
                     {});
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  size_t rank = 0, padding_rows = 0;
  while (std::getline(lines, line)) {
    long long rk = 0, id = 0;
    if (std::sscanf(line.c_str(), "%lld %lld", &rk, &id) != 2 || rk != static_cast<long long>(rank) + 1) continue;
    ASSERT_LT(rank, top.size());
    // Ties in float32 could swap neighbours; the random model's top logits are well apart.
    EXPECT_EQ(id, top[rank]) << line;
    const bool pad_row = id >= 256;
    padding_rows += pad_row;
    EXPECT_EQ(line.find("<id " + std::to_string(id) + ">") != std::string::npos, pad_row) << line;
    ++rank;
  }
  EXPECT_EQ(rank, top.size()) << r.out;
  EXPECT_GT(padding_rows, 0u);
  EXPECT_NE(r.out.find("beyond the tokenizer's 256 ids"), std::string::npos) << r.out;
  r = run_cli({"generate", model, "--prompt", "hello", "-n", "8"}, {});
  EXPECT_EQ(r.status, 0) << r.err;
}

// `tokenize --ids` prints the ids alone (transformers' ids for the manifest's text); an empty
// text, given either way, is an empty text.
TEST(Cli, TokenizeIdsAndEmptyText) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  std::ifstream mf(ewtest::golden("model_golden", "manifest.json"));
  const auto ref = nlohmann::json::parse(mf).at("gpt2_text");
  Result r = run_cli({"tokenize", model, "--ids", "--text", ref.at("text").get<std::string>()}, {});
  ASSERT_EQ(r.status, 0) << r.err;
  std::string want;
  for (const auto& id : ref.at("ids")) want += (want.empty() ? "" : " ") + std::to_string(id.get<int64_t>());
  EXPECT_EQ(r.out, want + "\n");
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--text", ""}, {"--text="}, {"-t", ""}}) {
    std::vector<std::string> a = {"tokenize", model};
    a.insert(a.end(), args.begin(), args.end());
    r = run_cli(a, {});
    EXPECT_EQ(r.status, 0) << args[0] << ": " << r.err;
    EXPECT_EQ(r.out.rfind("0 tokens\n", 0), 0u) << args[0] << ": " << r.out;
  }
}

// Every output path is checked before the model is loaded: a long ACDC run given a --svg into a
// missing folder fails at once, naming the path; an unwritable -o, a file where a folder should
// be, a --curve into a missing folder, tune's and draw's outputs likewise. Nothing is written.
TEST(Cli, OutputPathsCheckedBeforeAnyWork) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles/outputs";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string out = dir + "/c.json", a_file = dir + "/a_file";
  write_text_file(a_file, "x");
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<std::string> acdc = {"discover", model, "--task", "ioi", "-n", "200", "--method", "acdc"};
  auto with = [&](std::vector<std::string> base, const std::vector<std::string>& more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };
  const std::vector<Case> cases = {
      {with(acdc, {"-o", out, "--svg", dir + "/missing/c.svg"}),
       "the drawing " + dir + "/missing/c.svg: cannot be written: the folder " + dir + "/missing does not exist"},
      {with(acdc, {"-o", "/proc/edgewise-c.json"}), "no new file can be created in /proc"},
      {with(acdc, {"-o", a_file + "/c.json"}), "cannot be written: " + a_file + " is a file, not a folder"},
      {with(acdc, {"-o", dir}), "is a folder; expected a file name"},
      {with(acdc, {"-o", out, "--curve", dir + "/missing/curve.csv"}), "the folder " + dir + "/missing does not exist"},
      {with(acdc, {"-o", out, "--checkpoint", dir + "/missing/ck.json"}), "the checkpoint (--checkpoint)"},
      {{"discover", model, "--task", "ioi", "-n", "50", "--method", "path-patching", "-o", out, "--svg",
        dir + "/missing/pp.svg"},
       dir + "/missing does not exist"},
      {{"prune", model, "--task", "ioi", "-n", "50", "-o", out, "--curve", a_file + "/flap.csv"}, "is a file, not a folder"},
      {{"tune", model, "--task", "ioi", "-n", "50", "-o", dir + "/tuned", "--log", dir + "/missing/log.csv"},
       "the training log (--log)"},
      {{"tune", model, "--task", "ioi", "-n", "50", "-o", a_file}, "is a file; expected a folder"},
      {{"draw", ewtest::golden("model_golden", "gpt2/config.json"), "-o", dir + "/missing/d.svg"}, "does not exist"},
  };
  // The process start alone (loading libtorch: ~0.5 s here, more on a loaded machine) is the
  // baseline; what a case spends beyond it is its work before failing.
  auto start_time = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(run_cli({"--version"}, {}).status, 0);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const double start = std::min(start_time(), start_time());
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expect);
    const auto t0 = std::chrono::steady_clock::now();
    Result r = run_cli(c.args, {});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    // Under a second beyond the process start (the ACDC run itself takes ~20 s here).
    EXPECT_LT(seconds - start, 1.0) << "the check came after work: " << seconds << " s, start " << start << " s";
  }
  // Nothing written: only the two files this test made.
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"a_file"});
}

// A run that fails after its method (here Graphviz, replaced by a `dot` that fails) leaves no
// file that looks like a result: the circuit, already computed, is not published either.
TEST(Cli, FailedRunLeavesNoOutputs) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles/failed_run";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/bin");
  write_text_file(dir + "/bin/dot", "#!/bin/sh\necho 'dot: simulated failure' >&2\nexit 1\n");
  std::filesystem::permissions(dir + "/bin/dot", std::filesystem::perms::owner_all);
  Result r = run_cli({"discover", model, "--task", "ioi", "-n", "4", "--method", "eap", "-o", dir + "/c.json", "--svg",
                      dir + "/c.svg", "--curve", dir + "/curve.csv"},
                     {{"PATH", dir + "/bin:" + std::string(std::getenv("PATH"))}});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("simulated failure"), std::string::npos) << r.err;
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"bin"}) << "a failed run left files";
  // The same run with the real Graphviz publishes all of them.
  r = run_cli({"discover", model, "--task", "ioi", "-n", "4", "--method", "eap", "-o", dir + "/c.json", "--svg",
               dir + "/c.svg", "--curve", dir + "/curve.csv"},
              {});
  EXPECT_EQ(r.status, 0) << r.err;
  for (const char* f : {"c.json", "c.svg", "curve.csv", "curve.svg"}) EXPECT_TRUE(ewtest::exists(dir + "/" + f)) << f;
}

// Budget options below their range are refused by the command line (exit 2, naming the option)
// before anything loads: each used to be taken (a batch of 0 examples, -1 warm-up steps).
TEST(Cli, BudgetOptionsValidatedUpFront) {
  const std::string model = ewtest::golden("model_golden", "gpt2");
  const std::string out = std::string(EW_GOLDEN_DIR) + "/badfiles/budget.json";
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"--batch-size", {"prune", model, "--batch-size", "0", "-o", out}},
      {"--max-masks", {"discover", model, "--method", "path-patching", "--max-masks", "0", "-o", out}},
      {"--warmup-steps", {"discover", model, "--method", "edge-pruning", "--warmup-steps", "-1", "-o", out}},
      {"--target-warmup-steps", {"discover", model, "--method", "edge-pruning", "--target-warmup-steps", "-2", "-o", out}},
      {"--cache-mb", {"discover", model, "--method", "edge-pruning", "--cache-mb", "-1", "-o", out}},
      {"--warmup-steps", {"tune", model, "--warmup-steps", "-1", "-o", out + ".d"}},
  };
  for (const auto& [opt, args] : cases) {
    SCOPED_TRACE(opt);
    Result r = run_cli(args, {});
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find(opt), std::string::npos) << r.err;
    EXPECT_FALSE(ewtest::exists(out));
  }
}

// A Llama checkpoint in CodeLlama's layout with a SentencePiece vocabulary (random weights, the
// BPE model tests/reference/sentencepiece_golden.py trains; tokenizer.json + tokenizer.model):
// every command runs on it, every discovery method through the command line, on a dataset file
// whose answers are single pieces of that vocabulary.
TEST(Cli, SentencePieceLlamaRunsEveryCommand) {
  const std::string model = ewtest::golden("sentencepiece_golden", "codellama");
  const std::string data = ewtest::golden("sentencepiece_golden", "codellama_data.jsonl");
  ASSERT_TRUE(ewtest::exists(model + "/config.json") && ewtest::exists(data));
  const std::string dir = std::string(EW_GOLDEN_DIR) + "/badfiles/codellama_runs";
  std::filesystem::create_directories(dir);
  Result r = run_cli({"info", model}, {});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("SentencePiece BPE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("architecture  llama"), std::string::npos) << r.out;
  r = run_cli({"tokenize", model, "--text", "def main():\n    return 42  # résumé"}, {});
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_cli({"run", model, "-p", "The model and the graph", "-k", "3"}, {});
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_cli({"generate", model, "-p", "The model", "-n", "3"}, {});
  EXPECT_EQ(r.status, 0) << r.err;
  const std::vector<std::string> common = {"--task", data, "-n", "8", "--batch-size", "4"};
  auto with = [&](std::vector<std::string> a, const std::vector<std::string>& more) {
    a.insert(a.end(), common.begin(), common.end());
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  const std::vector<std::pair<std::string, std::vector<std::string>>> methods = {
      {"eap", {}}, {"eap-ig-inputs", {}}, {"eap-ig-activations", {}}, {"clean-corrupted", {}},
      {"mask-gradient", {}}, {"mask-gradient-ig", {}}, {"exact", {}}, {"acdc", {"--tau", "0.05"}},
      {"edge-pruning", {"--steps", "6", "--warmup-steps", "2", "--target", "0.5"}},
      {"hap", {"--steps", "6", "--warmup-steps", "2", "--target", "0.5"}},
      {"path-patching", {}}, {"flap", {}}, {"app", {}}};
  for (const auto& [m, extra] : methods) {
    std::vector<std::string> more = {"--method", m, "-o", dir + "/" + m + ".json"};
    more.insert(more.end(), extra.begin(), extra.end());
    r = run_cli(with({"discover", model}, more), {});
    EXPECT_EQ(r.status, 0) << m << ": " << r.err;
    EXPECT_TRUE(ewtest::exists(dir + "/" + m + ".json")) << m;
  }
  r = run_cli(with({"evaluate", model, "--circuit", dir + "/eap.json"}, {}), {});
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_cli({"draw", dir + "/eap.json", "-o", dir + "/eap.svg"}, {});
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_cli({"view", dir + "/eap.json", dir + "/acdc.json", "-o", dir + "/view.html"}, {});
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_cli(with({"prune", model}, {"-o", dir + "/prune.json"}), {});
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_cli({"tune", model, "--task", data, "-n", "16", "--rounds", "1", "--steps-per-round", "2", "--batch-size",
               "4", "--discovery-examples", "4", "--nodes", "4", "-o", dir + "/tuned"},
              {});
  ASSERT_EQ(r.status, 0) << r.err;
  // The tuned model saves its SentencePiece vocabulary and loads back.
  r = run_cli({"info", dir + "/tuned"}, {});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("SentencePiece BPE"), std::string::npos) << r.out;
}
