// Command-line behaviour on bad input: every case in cases.json (written by
// tests/reference/bad_files.py) must end with exit status 1 and exactly one line on stderr,
// "edgewise: error: ...", naming the file and the problem. A crash (signal) fails the test.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_helpers.h"

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

Result run_cli(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  std::string err_file = std::string(EW_GOLDEN_DIR) + "/badfiles/stderr.txt";
  std::string cmd = "env";
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
