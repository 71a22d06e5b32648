// The patched forward against the plain forward on one model: the dense path (every mask entry
// fractional), the sparse path (10 edges ablated), the dense path with gradients (forward and
// backward, what mask gradients cost), and K masks in one pass against K separate passes.
// Prints one JSON object. A benchmark, not a test; results in docs/BENCHMARKS.md.
//
//   bench_patch [MODEL] [B] [T] [iters] [threads] [section]
//
// EDGEWISE_BENCH_DEVICE=cuda runs it on the GPU (every section synchronised before its clock
// stops; no peak-memory figures there: VmHWM measures host memory).
//
// Times are medians over `iters` runs after one warm-up; the plain forward is timed again
// before every section so that drift of the machine shows instead of skewing the ratios.
// Peak memory: each section runs once more in a child process (this binary with `section`
// given), which reports its peak resident memory (VmHWM) minus its resident memory before the
// section, per token of the batch.
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/core/grad_mode.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "bench_util.h"
#include "edgewise/memory.h"


int main(int argc, char** argv) {
  std::string spec = argc > 1 ? argv[1] : "";
  int64_t B = argc > 2 ? std::stoll(argv[2]) : 4, T = argc > 3 ? std::stoll(argv[3]) : 32;
  int iters = argc > 4 ? std::stoi(argv[4]) : 3;
  int threads = argc > 5 ? std::stoi(argv[5]) : 0;
  const std::string only = argc > 6 ? argv[6] : "";
  if (threads > 0) at::set_num_threads(threads);
  edgewise::tune_allocator();
  try {
    edgewise::LoadOptions lo;
    lo.load_tokenizer = false;
    const char* dev_env = std::getenv("EDGEWISE_BENCH_DEVICE");
    if (dev_env && *dev_env) lo.device = dev_env;
    edgewise::Model m = edgewise::Model::load(spec, lo);
    const c10::Device dev = m.device();
    edgewise::Graph g = edgewise::model_graph(m, true);
    at::manual_seed(0);
    at::Tensor clean = at::randint(m.config().vocab_size, {B, T}, at::kLong);
    at::Tensor corrupt = at::randint(m.config().vocab_size, {B, T}, at::kLong);
    at::Tensor abl;
    {
      at::NoGradGuard ng;
      abl = edgewise::ablated_values(m, g, edgewise::Ablation::Resample, clean, corrupt);
    }
    const int64_t S = g.n_sources(), R = g.n_readers();
    at::Tensor frac = at::rand({S, R});
    at::Tensor few = at::ones({S, R});
    for (int e = 0; e < 10; ++e) few[1 + 7 * e][R - 1 - 11 * e] = 0.0;
    clean = clean.to(dev);
    frac = frac.to(dev);
    few = few.to(dev);
    edgewise::PatchOptions dense, sparse;
    dense.path = edgewise::PatchOptions::Path::Dense;
    sparse.path = edgewise::PatchOptions::Path::Sparse;
    std::map<int64_t, at::Tensor> kmasks;
    for (int64_t K : {8, 32}) kmasks[K] = at::rand({K, S, R}).to(dev);

    // Each section: one call of the thing measured.
    std::vector<std::pair<std::string, std::function<void()>>> sections = {
        {"plain", [&] { at::NoGradGuard ng; m.forward(clean); }},
        {"dense", [&] { at::NoGradGuard ng; edgewise::patched_forward(m, g, clean, abl, frac, dense); }},
        {"sparse", [&] { at::NoGradGuard ng; edgewise::patched_forward(m, g, clean, abl, few, sparse); }},
        {"plain_grad",
         [&] {
           // The plain forward and a backward to the embeddings: the floor for gradient methods.
           at::Tensor x = at::randn({1}).to(dev).requires_grad_(true);
           edgewise::Hooks h({"hook_embed"}, [&](const at::Tensor& t, const std::string&) { return t * x; });
           m.forward(clean, &h).select(1, T - 1).sum().backward();
         }},
        {"dense_grad",
         [&] {
           at::Tensor mk = frac.clone().requires_grad_(true);
           edgewise::patched_forward(m, g, clean, abl, mk, dense).select(2, T - 1).sum().backward();
         }},
        {"K8", [&] { at::NoGradGuard ng; edgewise::patched_forward(m, g, clean, abl, kmasks[8], dense); }},
        {"K32", [&] { at::NoGradGuard ng; edgewise::patched_forward(m, g, clean, abl, kmasks[32], dense); }},
    };

    if (dev.is_cuda())  // kernels run asynchronously: each call ends when the GPU is done
      for (auto& [name, f] : sections)
        f = [f, dev] {
          f();
          at::detail::getCUDAHooks().deviceSynchronize(dev.index());
        };

    if (!only.empty()) {  // child: one section, its peak memory
      for (auto& [name, f] : sections)
        if (name == only) {
          return bench::print_peak_growth(f);
        }
      std::fprintf(stderr, "bench_patch: unknown section '%s'\n", only.c_str());
      return 1;
    }

    std::printf("{\"device\": \"%s\", \"B\": %lld, \"T\": %lld, \"threads\": %d, \"n_edges\": %lld", dev.str().c_str(),
                (long long)B, (long long)T, at::get_num_threads(), (long long)g.n_edges());
    // Each section against the plain forward run just before it, `iters` times: the median of
    // the section's times, of the plain times, and of the per-pair ratios (this cancels most
    // of the drift of a shared machine, where the plain forward alone varies by +-20%).
    std::map<std::string, double> t, ratio;
    for (auto& [name, f] : sections) {
      if (name == "plain") continue;
      const bool grad = name == "dense_grad";
      const auto& base = grad ? sections[3].second : sections[0].second;  // plain_grad for dense_grad
      const int n = name == "K32" ? std::max(1, iters / 3) : iters;
      f();
      base();
      std::vector<double> ts, tb, r;
      for (int i = 0; i < n; ++i) {
        tb.push_back(bench::seconds(base));
        ts.push_back(bench::seconds(f));
        r.push_back(ts.back() / tb.back());
      }
      t[name] = bench::median(ts);
      ratio[name] = bench::median(r);
      std::printf(", \"%s_s\": %.4f, \"%s_base_s\": %.4f, \"%s_vs_%s\": %.2f", name.c_str(), t[name],
                  name.c_str(), bench::median(tb), name.c_str(), grad ? "plain_grad" : "plain", ratio[name]);
      std::fflush(stdout);
    }
    // K separate passes cost K dense passes: compare per circuit against the dense pass, through
    // the paired ratios (each against the plain forward run next to it). Raw times taken minutes
    // apart drift with the machine: at 25 x 20 tokens they read 1.43 where the pairs read 1.07.
    std::printf(", \"K8_per_circuit_vs_dense\": %.2f, \"K32_per_circuit_vs_dense\": %.2f",
                ratio["K8"] / 8 / ratio["dense"], ratio["K32"] / 32 / ratio["dense"]);
    // Peak memory per token, each section in a fresh process (host memory: not on a GPU).
    for (auto& [name, f] : sections) {
      if (dev.is_cuda()) break;
      const std::string cmd = std::string("'") + argv[0] + "' '" + spec + "' " + std::to_string(B) + " " +
                              std::to_string(T) + " 1 " + std::to_string(at::get_num_threads()) + " " + name;
      const long long kb = bench::child_peak_kib(cmd);
      std::printf(", \"%s_peak_kb_per_token\": %.1f", name.c_str(), kb < 0 ? -1.0 : double(kb) / double(B * T));
      std::fflush(stdout);
    }
    std::printf("}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_patch: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
