// `edgewise --nproc N ...`: starts N local ranks of the same command, as torchrun would — each a
// copy of this program with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR (loopback) and a free
// MASTER_PORT set, and OMP_NUM_THREADS = cores / N unless the user set it — and waits for them.
// When one fails, the others are given the time their heartbeat needs to notice and say so, then
// stopped; the launcher exits with the first failure's status.
#include "launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "edgewise/distributed.h"
#include "edgewise/error.h"

extern char** environ;

namespace edgewise::cli {

namespace {

// A port nobody listens on now (the kernel's choice for port 0); rank 0 binds it moments later.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("--nproc", std::string("cannot open a socket to find a free port: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    fail("--nproc", std::string("cannot find a free port on 127.0.0.1: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::vector<pid_t> g_children;

void forward_signal(int sig) {
  for (pid_t p : g_children) ::kill(p, sig);
}

}  // namespace

int launch_if_asked(int argc, char** argv) {
  int nproc = 0, pipeline = 0;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (; i < argc; ++i) rest.push_back(argv[i]);
      break;
    }
    std::string value, opt;
    for (const char* o : {"--nproc", "--pipeline"}) {
      if (a == o) {
        if (i + 1 >= argc) fail(o, std::string(o) == "--nproc" ? "needs a number of ranks" : "needs a number of stages");
        value = argv[++i];
        opt = o;
      } else if (a.rfind(std::string(o) + "=", 0) == 0) {
        value = a.substr(std::string(o).size() + 1);
        opt = o;
      }
    }
    if (opt.empty()) {
      rest.push_back(a);
      continue;
    }
    const std::optional<int64_t> n = parse_integer(value, 1, 256);
    if (opt == "--nproc") {
      if (!n) fail("--nproc", "expected a number of ranks from 1 to 256, got '" + value + "'");
      nproc = static_cast<int>(*n);
    } else {
      if (!n) fail("--pipeline", "expected a number of pipeline stages from 1 to 256, got '" + value + "'");
      pipeline = static_cast<int>(*n);
    }
  }
  const double grace = dist::lost_seconds_from_environment() + 10;
  if (pipeline > 0) {
    // The stages reach every rank through the environment (as under torchrun, where
    // EDGEWISE_PIPELINE_STAGES is set by hand); settings_from_environment checks it divides them.
    if (nproc > 0 && nproc % pipeline != 0)
      fail("--pipeline", std::to_string(pipeline) + " stages do not divide " + std::to_string(nproc) +
                             " ranks (--nproc): each pipeline has one rank per stage");
    ::setenv("EDGEWISE_PIPELINE_STAGES", std::to_string(pipeline).c_str(), 1);
  }
  if (nproc == 0 && pipeline == 0) return -1;
  const char* ws = std::getenv("WORLD_SIZE");
  if (nproc > 0 && ws && std::string(ws) != "1")
    fail("--nproc", "this process is already one rank of " + std::string(ws) +
                        " (WORLD_SIZE is set, e.g. by torchrun): use one launcher, not both");
  // The same command without --nproc / --pipeline.
  std::vector<std::string> args = {argv[0]};
  args.insert(args.end(), rest.begin(), rest.end());
  std::vector<char*> cargs;
  for (std::string& s : args) cargs.push_back(s.data());
  cargs.push_back(nullptr);
  if (nproc <= 1) {  // one rank (or ranks torchrun started): run here, without the options
    ::execv("/proc/self/exe", cargs.data());
    fail("--nproc", std::string("cannot restart edgewise: ") + std::strerror(errno));
  }

  const int port = free_port();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max(1u, cores / static_cast<unsigned>(nproc)));

  struct sigaction sa{};
  sa.sa_handler = forward_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string v = *e;
      const std::string name = v.substr(0, v.find('='));
      if (name == "RANK" || name == "WORLD_SIZE" || name == "LOCAL_RANK" || name == "MASTER_ADDR" ||
          name == "MASTER_PORT" || name == "LOCAL_WORLD_SIZE")
        continue;
      env.push_back(v);
    }
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(port));
    if (!std::getenv("OMP_NUM_THREADS")) env.push_back("OMP_NUM_THREADS=" + threads);
    std::vector<char*> cenv;
    for (std::string& s : env) cenv.push_back(s.data());
    cenv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, cargs.data(), cenv.data());
    if (rc != 0) {
      forward_signal(SIGKILL);
      fail("--nproc", "cannot start rank " + std::to_string(r) + ": " + std::strerror(rc));
    }
    g_children.push_back(pid);
  }

  // Wait; after the first failure, give the rest the time to notice it (their heartbeat), then stop them.
  int status_out = 0, alive = nproc;
  bool failed = false;
  std::chrono::steady_clock::time_point deadline;
  while (alive > 0) {
    int st = 0;
    const pid_t p = ::waitpid(-1, &st, failed ? WNOHANG : 0);
    if (p < 0 && errno == EINTR) continue;
    if (p < 0) break;
    if (p == 0) {  // failed, others still running
      if (std::chrono::steady_clock::now() > deadline) {
        forward_signal(SIGKILL);
        deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    --alive;
    const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    if (code != 0 && !failed) {
      failed = true;
      status_out = code;
      deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(grace * 1000));
      if (WIFSIGNALED(st)) {
        int r = 0;
        for (; r < nproc && g_children[r] != p; ++r) {
        }
        std::fprintf(stderr, "edgewise: error: rank %d of %d was killed by signal %d\n", r, nproc, WTERMSIG(st));
      }
    }
  }
  return status_out;
}

}  // namespace edgewise::cli
