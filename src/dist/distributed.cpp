// The process group behind edgewise/distributed.h: libtorch's TCPStore and ProcessGroupGloo, a
// heartbeat thread that notices lost ranks, and the shares of work. Compiled without the
// precompiled header: ProcessGroupGloo.hpp needs USE_C10D_GLOO (and gloo's headers, Debian's
// libgloo-dev; the torch wheel ships c10d's headers but not gloo's). Without them (EDGEWISE_NO_GLOO)
// one rank works and init() with more says how to get them.
#ifndef EDGEWISE_NO_GLOO
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#include <ATen/ATen.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "edgewise/distributed.h"
#include "edgewise/error.h"

namespace edgewise::dist {

namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// An exception's message; c10's without the C++ backtrace it appends.
std::string message_of(const std::exception& e) {
  const auto* ce = dynamic_cast<const c10::Error*>(&e);
  return ce ? ce->what_without_backtrace() : e.what();
}

struct State {
  Settings s;
  bool active = false;
#ifndef EDGEWISE_NO_GLOO
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  // The data group (ranks at this stage) and this rank's pipeline; either may be `pg` itself, or
  // none (a group of one).
  c10::intrusive_ptr<c10d::ProcessGroupGloo> data_pg, pipe_pg;
  c10::intrusive_ptr<c10d::Store> client;  // the heartbeat's connection
#endif
  std::thread watchdog;
  std::mutex mu;
  std::condition_variable cv;
  bool stop_watchdog = false;
  std::vector<std::function<void()>> abort_hooks;
  std::mutex abort_mu;
  Traffic traffic;
  int message_fd = 2;
  // A process that ends without shutdown() (a Python script that never called it) must not
  // die in std::thread's destructor: the heartbeat stops here; the other ranks then see this one
  // go quiet, as they would see any rank that left.
  ~State() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop_watchdog = true;
    }
    cv.notify_all();
    if (watchdog.joinable()) watchdog.join();
  }
};

State& state() {
  static State st;
  return st;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

int64_t env_int(const char* name, const std::string& v, int64_t lo, int64_t hi) {
  const std::optional<int64_t> x = parse_integer(v, lo, hi);
  if (!x)
    fail(std::string("environment variable ") + name,
         "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
  return *x;
}

double env_seconds(const char* name, double fallback) {
  const std::string v = env(name);
  if (v.empty()) return fallback;
  size_t used = 0;
  double x = -1;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || !(x > 0) || x > 1e7)
    fail(std::string("environment variable ") + name, "expected a number of seconds > 0, got '" + v + "'");
  return x;
}

std::string who(int r) { return "rank " + std::to_string(r) + " of " + std::to_string(state().s.world_size); }

// Prints the error, runs the abort hooks and ends the process: another rank is gone, and this
// one may be blocked inside a collective that would otherwise wait for it. `announce`: tell the
// other ranks first (the first to notice names the lost rank for all; rank 0, whose process hosts
// the store, stays a little longer so that they read it rather than see the store vanish).
[[noreturn]] void abort_job(const std::string& message, bool announce = true) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.abort_mu);
#ifndef EDGEWISE_NO_GLOO
  if (announce && st.client) {
    try {
      st.client->set("edgewise/lost", std::vector<uint8_t>(message.begin(), message.end()));
      if (st.s.rank == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    } catch (const std::exception&) {
    }
  }
#else
  (void)announce;
#endif
  std::fflush(stderr);
  dprintf(st.message_fd, "edgewise: error (rank %d of %d): %s\n", st.s.rank, st.s.world_size, message.c_str());
  for (auto& f : st.abort_hooks) {
    try {
      f();
    } catch (...) {
    }
  }
  std::fflush(stdout);
  std::_Exit(1);
}

#ifndef EDGEWISE_NO_GLOO
std::string key(const char* what, int r) { return std::string("edgewise/") + what + "/" + std::to_string(r); }
std::vector<uint8_t> bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// Every second: this rank's heartbeat, then the others' — a failure message, a finished rank, or
// a heartbeat that has not moved for lost_seconds.
void watch() {
  State& st = state();
  c10d::Store* client = st.client.get();
  const int me = st.s.rank, W = st.s.world_size;
  std::vector<std::string> last(W);
  std::vector<Clock::time_point> seen(W, Clock::now());
  std::vector<uint8_t> done(W, 0);
  int64_t beat = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(st.mu);
      if (st.cv.wait_for(lock, std::chrono::seconds(1), [&] { return st.stop_watchdog; })) return;
    }
    try {
      client->set(key("heartbeat", me), bytes(std::to_string(++beat)));
      if (client->check({"edgewise/lost"})) {  // another rank noticed first
        const std::vector<uint8_t> m = client->get("edgewise/lost");
        abort_job(std::string(m.begin(), m.end()), false);
      }
      for (int r = 0; r < W; ++r) {
        if (r == me || done[r]) continue;
        if (client->check({key("failed", r)})) {
          const std::vector<uint8_t> m = client->get(key("failed", r));
          abort_job(who(r) + " failed: " + std::string(m.begin(), m.end()));
        }
        if (client->check({key("done", r)})) {
          done[r] = 1;
          continue;
        }
        const std::vector<uint8_t> v = client->get(key("heartbeat", r));
        std::string now(v.begin(), v.end());
        if (now != last[r]) {
          last[r] = std::move(now);
          seen[r] = Clock::now();
        } else if (std::chrono::duration<double>(Clock::now() - seen[r]).count() > st.s.lost_seconds) {
          abort_job(who(r) + " was lost: no heartbeat for " + std::to_string(static_cast<int>(st.s.lost_seconds)) +
                    " s (the process died or hangs); stopping this rank too");
        }
      }
    } catch (const std::exception& e) {
      {
        std::lock_guard<std::mutex> lock(st.mu);
        if (st.stop_watchdog) return;
      }
      abort_job("the rendezvous store at " + st.s.master_addr + ":" + std::to_string(st.s.master_port) +
                    " stopped answering: its host (" +
                    (env("TORCHELASTIC_USE_AGENT_STORE") == "True" ? std::string("torchrun's agent") : who(0)) +
                    ") was lost (" + message_of(e) + ")",
                false);
    }
  }
}

void stop_watch() {
  State& st = state();
  {
    std::lock_guard<std::mutex> lock(st.mu);
    st.stop_watchdog = true;
  }
  st.cv.notify_all();
  if (st.watchdog.joinable() && st.watchdog.get_id() != std::this_thread::get_id()) st.watchdog.join();
}

// A collective that threw: usually a peer's connection closed because it died. The heartbeat
// thread names the lost rank within lost_seconds and ends the process (during this wait); if it
// does not, the failure is this rank's own.
[[noreturn]] void collective_failed(const char* what, const std::exception& e) {
  std::this_thread::sleep_for(ms(state().s.lost_seconds + 5));
  fail(what, "the exchange between ranks failed: " + message_of(e));
}

template <class F>
void run_collective(const char* what, F&& f) {
  try {
    f();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    collective_failed(what, e);
  }
}
#endif

void count(const at::Tensor& t) {
  Traffic& tr = state().traffic;
  ++tr.collectives;
  tr.bytes += t.numel() * static_cast<int64_t>(t.element_size());
}

}  // namespace

Settings settings_from_environment() {
  Settings s;
  const std::string rank = env("RANK"), world = env("WORLD_SIZE");
  const std::string srank = env("SLURM_PROCID"), sworld = env("SLURM_NTASKS");
  if (!world.empty() || !rank.empty()) {
    if (world.empty() || rank.empty())
      fail("environment variables RANK / WORLD_SIZE", "both or neither must be set (RANK='" + rank +
                                                          "', WORLD_SIZE='" + world + "')");
    s.world_size = static_cast<int>(env_int("WORLD_SIZE", world, 1, 1 << 20));
    s.rank = static_cast<int>(env_int("RANK", rank, 0, s.world_size - 1));
    const std::string lr = env("LOCAL_RANK");
    s.local_rank = lr.empty() ? s.rank : static_cast<int>(env_int("LOCAL_RANK", lr, 0, s.world_size - 1));
    s.source = "torchrun";
  } else if (!sworld.empty() && !srank.empty()) {
    s.world_size = static_cast<int>(env_int("SLURM_NTASKS", sworld, 1, 1 << 20));
    s.rank = static_cast<int>(env_int("SLURM_PROCID", srank, 0, s.world_size - 1));
    const std::string lr = env("SLURM_LOCALID");
    s.local_rank = lr.empty() ? 0 : static_cast<int>(env_int("SLURM_LOCALID", lr, 0, 1 << 20));
    s.source = "SLURM";
  }
  if (s.world_size > 1) {
    const std::string addr = env("MASTER_ADDR"), port = env("MASTER_PORT");
    if (addr.empty()) fail("environment variable MASTER_ADDR", "must name rank 0's host when WORLD_SIZE > 1 (" + s.source + ")");
    s.master_addr = addr;
    if (!port.empty()) s.master_port = static_cast<int>(env_int("MASTER_PORT", port, 1, 65535));
    // A script that also runs torch.distributed (on MASTER_PORT) gives edgewise's store its own.
    const std::string own = env("EDGEWISE_MASTER_PORT");
    if (!own.empty()) s.master_port = static_cast<int>(env_int("EDGEWISE_MASTER_PORT", own, 1, 65535));
  }
  const std::string stages = env("EDGEWISE_PIPELINE_STAGES");
  if (!stages.empty()) {
    s.stages = static_cast<int>(env_int("EDGEWISE_PIPELINE_STAGES", stages, 1, s.world_size));
    if (s.world_size % s.stages != 0)
      fail("environment variable EDGEWISE_PIPELINE_STAGES",
           std::to_string(s.stages) + " pipeline stages do not divide " + std::to_string(s.world_size) +
               " ranks (each pipeline has one rank per stage)");
  }
  s.timeout_seconds = env_seconds("EDGEWISE_DIST_TIMEOUT", s.timeout_seconds);
  s.lost_seconds = lost_seconds_from_environment();
  return s;
}

double lost_seconds_from_environment() { return env_seconds("EDGEWISE_RANK_LOST_SECONDS", Settings{}.lost_seconds); }

void init(const Settings& s) {
  State& st = state();
  if (st.active) fail("distributed", "the process group is already initialised");
  if (s.world_size < 1 || s.rank < 0 || s.rank >= s.world_size)
    fail("distributed", "rank " + std::to_string(s.rank) + " is outside a world of " + std::to_string(s.world_size));
  if (s.stages < 1 || s.world_size % s.stages != 0)
    fail("distributed", std::to_string(s.stages) + " pipeline stages do not divide " + std::to_string(s.world_size) +
                            " ranks");
  st.s = s;
  if (s.world_size == 1) return;
#ifdef EDGEWISE_NO_GLOO
  fail("distributed", "this edgewise was built without Gloo, so it runs one rank only (WORLD_SIZE=" +
                          std::to_string(s.world_size) + "): install libgloo-dev and rebuild (scripts/setup.sh)");
#else
  const std::string where = "rendezvous at " + s.master_addr + ":" + std::to_string(s.master_port);
  // A write to a lost rank's closed socket must be an error the heartbeat explains, not SIGPIPE
  // ending this process without a word (Python, and so torch.distributed, ignores SIGPIPE too).
  std::signal(SIGPIPE, SIG_IGN);
  try {
    // Under torchrun the agent already hosts a store on MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE):
    // every rank is its client, and edgewise's keys live under a prefix of their own (with the
    // restart count, so that a restarted job never reads the last attempt's heartbeats).
    const bool agent_store = env("TORCHELASTIC_USE_AGENT_STORE") == "True";
    const std::string prefix = "edgewise/" + env("TORCHELASTIC_RESTART_COUNT");
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(s.master_port);
    so.isServer = s.rank == 0 && !agent_store;
    so.numWorkers = s.world_size;  // every rank counts itself in (as torch.distributed's clients do)
    so.timeout = ms(s.timeout_seconds);
    st.store = c10::make_intrusive<c10d::PrefixStore>(prefix, c10::make_intrusive<c10d::TCPStore>(s.master_addr, so));
    // The heartbeat's own connection, so that it never waits behind another request.
    c10d::TCPStoreOptions co = so;
    co.isServer = false;
    co.numWorkers = std::nullopt;
    co.waitWorkers = false;
    co.timeout = ms(std::max(5.0, s.lost_seconds));
    c10::intrusive_ptr<c10d::Store> client =
        c10::make_intrusive<c10d::PrefixStore>(prefix, c10::make_intrusive<c10d::TCPStore>(s.master_addr, co));
    client->set(key("heartbeat", s.rank), bytes("0"));
    auto opts = c10d::ProcessGroupGloo::Options::create(ms(s.timeout_seconds));
    // On one machine (a loopback MASTER_ADDR) the ranks talk over loopback; across machines each
    // binds to the address its host name resolves to, as torch.distributed's default does.
    const bool loopback = s.master_addr == "localhost" || s.master_addr.rfind("127.", 0) == 0;
    opts->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 1;
    st.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(st.store, s.rank, s.world_size, opts);
    // Rank = pipeline * P + stage. Subgroups rendezvous under keys of their own.
    const int P = s.stages, stage = s.rank % P, pipe = s.rank / P, D = s.world_size / P;
    if (P == 1) {
      st.data_pg = st.pg;
    } else if (D == 1) {
      st.pipe_pg = st.pg;
    } else {
      st.data_pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
          c10::make_intrusive<c10d::PrefixStore>("data/" + std::to_string(stage), st.store), pipe, D, opts);
      st.pipe_pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
          c10::make_intrusive<c10d::PrefixStore>("pipe/" + std::to_string(pipe), st.store), stage, P, opts);
    }
    st.stop_watchdog = false;
    st.active = true;
    st.client = client;
    st.watchdog = std::thread(watch);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail(where, "could not join " + std::to_string(s.world_size) + " ranks as rank " + std::to_string(s.rank) + ": " +
                    message_of(e));
  }
  barrier("joining the ranks");
#endif
}

void shutdown() {
  State& st = state();
  if (!st.active) return;
#ifndef EDGEWISE_NO_GLOO
  try {
    st.store->set(key("done", st.s.rank), bytes("1"));
  } catch (const std::exception&) {
  }
  stop_watch();
  run_collective("leaving the ranks", [&] { st.pg->barrier()->wait(); });
  st.data_pg.reset();
  st.pipe_pg.reset();
  st.pg.reset();
  st.client.reset();
  st.store.reset();
#endif
  st.active = false;
}

bool active() { return state().active; }
int rank() { return state().s.rank; }
int world_size() { return state().s.world_size; }
bool is_root() { return state().s.rank == 0; }

int data_rank() { return state().s.rank / state().s.stages; }
int data_size() { return state().s.world_size / state().s.stages; }
int stages() { return state().s.stages; }
int stage() { return state().s.rank % state().s.stages; }

#ifndef EDGEWISE_NO_GLOO
namespace {

// Runs `op` on a CPU, contiguous stand-in for t (Gloo's tensors), copying back when `back`.
template <class Op>
void on_cpu(at::Tensor& t, bool back, const char* what, Op&& op) {
  const bool direct = t.is_contiguous() && t.device().is_cpu();
  std::vector<at::Tensor> v = {direct ? t : t.to(at::kCPU).contiguous()};
  count(v[0]);
  run_collective(what, [&] { op(v)->wait(); });
  if (back && !direct) t.copy_(v[0]);
}

}  // namespace
#endif

void all_reduce_sum(at::Tensor& t, const char* what) {
  if (!active()) return;
#ifndef EDGEWISE_NO_GLOO
  if (!state().data_pg) return;
  on_cpu(t, true, what, [&](std::vector<at::Tensor>& v) { return state().data_pg->allreduce(v); });
#else
  (void)t, (void)what;
#endif
}

void all_reduce_sum(std::vector<double>& v, const char* what) {
  if (!active() || v.empty()) return;
  at::Tensor t = at::from_blob(v.data(), {static_cast<int64_t>(v.size())}, at::kDouble);
  all_reduce_sum(t, what);  // in place: t is v's memory
}

void broadcast(at::Tensor& t, int root, const char* what) {
  if (!active()) return;
#ifndef EDGEWISE_NO_GLOO
  c10d::BroadcastOptions o;
  o.rootRank = root;
  on_cpu(t, true, what, [&](std::vector<at::Tensor>& v) { return state().pg->broadcast(v, o); });
#else
  (void)t, (void)root, (void)what;
#endif
}

void send(const at::Tensor& t, int to_stage, int tag, const char* what) {
  if (!active() || stages() == 1) return;
#ifndef EDGEWISE_NO_GLOO
  at::Tensor c = t.detach();
  on_cpu(c, false, what, [&](std::vector<at::Tensor>& v) { return state().pipe_pg->send(v, to_stage, tag); });
#else
  (void)t, (void)to_stage, (void)tag, (void)what;
#endif
}

void recv(at::Tensor& t, int from_stage, int tag, const char* what) {
  if (!active() || stages() == 1) return;
#ifndef EDGEWISE_NO_GLOO
  on_cpu(t, true, what, [&](std::vector<at::Tensor>& v) { return state().pipe_pg->recv(v, from_stage, tag); });
#else
  (void)t, (void)from_stage, (void)tag, (void)what;
#endif
}

void broadcast_from_stage(at::Tensor& t, int from_stage, const char* what) {
  if (!active() || stages() == 1) return;
#ifndef EDGEWISE_NO_GLOO
  c10d::BroadcastOptions o;
  o.rootRank = from_stage;
  on_cpu(t, true, what, [&](std::vector<at::Tensor>& v) { return state().pipe_pg->broadcast(v, o); });
#else
  (void)t, (void)from_stage, (void)what;
#endif
}

void sum_over_stages(at::Tensor& t, const char* what) {
  if (!active() || stages() == 1) return;
#ifndef EDGEWISE_NO_GLOO
  on_cpu(t, true, what, [&](std::vector<at::Tensor>& v) { return state().pipe_pg->allreduce(v); });
#else
  (void)t, (void)what;
#endif
}

double all_reduce_gradients(const std::vector<at::Tensor>& leaves, double value, const char* what,
                            const std::vector<uint8_t>* stage_local) {
  if (!active()) return value;
  std::vector<at::Tensor> flat;
  for (const at::Tensor& p : leaves)
    flat.push_back(p.grad().defined() ? p.grad().detach().flatten().to(at::kFloat) : at::zeros({p.numel()}));
  flat.push_back(at::full({1}, value, at::kFloat));
  at::Tensor all = at::cat(flat);
  all_reduce_sum(all, what);
  if (stages() > 1 && !stage_local) {  // each stage's readers' share; the value is every stage's
    at::Tensor grads = all.narrow(0, 0, all.numel() - 1);
    sum_over_stages(grads, what);
  } else if (stages() > 1) {  // the leaves every stage holds (in the same order on each), one by one
    int64_t off = 0;
    for (size_t i = 0; i < leaves.size(); ++i) {
      if (!stage_local->at(i)) {
        at::Tensor part = all.narrow(0, off, leaves[i].numel());
        sum_over_stages(part, what);
      }
      off += leaves[i].numel();
    }
  }
  int64_t at_ = 0;
  for (const at::Tensor& p : leaves) {
    at::Tensor leaf = p;  // a handle on the same tensor: its gradient is set in place
    const at::Tensor g = all.narrow(0, at_, p.numel()).view(p.sizes()).to(p.scalar_type());
    if (leaf.grad().defined()) leaf.mutable_grad().copy_(g);
    else leaf.mutable_grad() = g.clone();
    at_ += p.numel();
  }
  return all[at_].item<double>();
}

bool any(bool b, const char* what) {
  if (!active()) return b;
#ifndef EDGEWISE_NO_GLOO
  // Over every rank (not only the data group): the stages of a pipeline stop together too.
  at::Tensor t = at::full({1}, b ? 1.0 : 0.0, at::kDouble);
  on_cpu(t, true, what, [&](std::vector<at::Tensor>& v) { return state().pg->allreduce(v); });
  return t.item<double>() > 0;
#else
  (void)what;
  return b;
#endif
}

void barrier(const char* what) {
  if (!active()) return;
#ifndef EDGEWISE_NO_GLOO
  ++state().traffic.collectives;
  run_collective(what, [&] { state().pg->barrier()->wait(); });
#else
  (void)what;
#endif
}

Range range_of(int r, int64_t n, int64_t unit) {
  const int64_t W = data_size();
  if (W == 1) return {0, n};
  if (unit < 1) unit = 1;
  const int64_t units = (n + unit - 1) / unit, base = units / W, extra = units % W;
  const int64_t u0 = r * base + std::min<int64_t>(r, extra), u1 = u0 + base + (r < extra ? 1 : 0);
  return {std::min(n, u0 * unit), std::min(n, u1 * unit)};
}

Range my_range(int64_t n, int64_t unit) { return range_of(data_rank(), n, unit); }

Range stage_range(int p, int64_t n) {
  const int64_t P = stages(), base = n / P, extra = n % P;
  const int64_t b = p * base + std::min<int64_t>(p, extra);
  return {b, b + base + (p < extra ? 1 : 0)};
}

at::Tensor gather_rows(int64_t n, int64_t unit, const std::function<at::Tensor(int64_t, int64_t)>& f,
                       const char* what, int64_t dim) {
  if (!active() || data_size() == 1) return f(0, n);
  const Range r = my_range(n, unit);
  // A rank without rows still needs the result's shape: it computes the first unit and adds zeros.
  const at::Tensor mine = r.size() > 0 ? f(r.begin, r.end) : f(0, std::min(n, unit));
  std::vector<int64_t> shape = mine.sizes().vec();
  shape[dim] = n;
  at::Tensor all = at::zeros(shape, mine.options());
  if (r.size() > 0) all.narrow(dim, r.begin, r.size()).copy_(mine);
  all_reduce_sum(all, what);
  return all;
}

int64_t job_progress(int64_t done, int64_t share, int64_t total) {
  if (!active() || data_size() == 1 || share <= 0) return done;
  return std::min(total, done * total / share);
}

void set_message_fd(int fd) { state().message_fd = fd; }

void on_abort(std::function<void()> f) {
  std::lock_guard<std::mutex> lock(state().abort_mu);
  state().abort_hooks.push_back(std::move(f));
}

void report_failure(const std::string& message) {
  State& st = state();
  if (!st.active) return;
#ifndef EDGEWISE_NO_GLOO
  stop_watch();
  try {
    st.store->set(key("failed", st.s.rank), bytes(message));
  } catch (const std::exception&) {
  }
#else
  (void)message;
#endif
}

Traffic traffic() { return state().traffic; }

}  // namespace edgewise::dist
