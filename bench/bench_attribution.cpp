// Attribution methods on one model and task against their floor: two forwards (corrupted,
// clean) and one backward of the plain model, which any gradient attribution needs. Prints one
// JSON object. A benchmark, not a test; results in docs/BENCHMARKS.md.
//
//   bench_attribution [MODEL] [task | ids.json] [N] [batch] [iters] [threads] [section]
//
// ids.json: token ids in bench/autocircuit_bench.py's prompts format (the auto-circuit run).
// Sections: floor, eap, eap-ig-inputs (5 steps). Times are medians over `iters` runs after a
// warm-up, each paired with a floor run just before it (the ratio is the median of the pairs'
// ratios: a shared machine drifts). Peak memory: each section once more in a child process
// (this binary with `section`), VmHWM minus the resident memory before it. BENCH_SECTIONS
// (environment, comma-separated, e.g. "eap"): time and measure only those sections.
#include <ATen/Parallel.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "edgewise/attribution.h"
#include "bench_data.h"
#include "bench_util.h"
#include "edgewise/memory.h"
#include "edgewise/model.h"
#include "edgewise/tasks.h"


int main(int argc, char** argv) {
  const std::string spec = argc > 1 ? argv[1] : "", task = argc > 2 ? argv[2] : "ioi";
  const int64_t N = argc > 3 ? std::stoll(argv[3]) : 100, batch = argc > 4 ? std::stoll(argv[4]) : 25;
  const int iters = argc > 5 ? std::stoi(argv[5]) : 3, threads = argc > 6 ? std::stoi(argv[6]) : 0;
  const std::string only = argc > 7 ? argv[7] : "";
  if (threads > 0) at::set_num_threads(threads);
  edgewise::tune_allocator();
  try {
    auto [m, g, b] = bench::load(spec, task, N);
    edgewise::AttributionOptions opt;
    opt.batch_size = batch;
    auto floor = [&] {
      // Per batch: the corrupted forward (no grad), the clean forward with grad, its backward.
      for (int64_t i = 0; i < N; i += batch) {
        const int64_t j = std::min(N, i + batch);
        at::Tensor clean = b.clean.narrow(0, i, j - i), corrupted = b.corrupted.narrow(0, i, j - i);
        {
          at::NoGradGuard ng;
          m.forward(corrupted);
        }
        at::Tensor x = at::ones({1}, at::TensorOptions().dtype(m.dtype() == edgewise::DType::BF16 ? at::kBFloat16 : at::kFloat))
                           .requires_grad_(true);  // in the weights' dtype: a bf16 model stays bf16
        edgewise::Hooks h({"hook_embed"}, [&](const at::Tensor& t, const std::string&) { return t * x; });
        at::Tensor last = edgewise::logits_at(m.forward(clean, &h), b.clean_pos.narrow(0, i, j - i));
        edgewise::metric_mean(edgewise::Metric::LogitDiff, last,
                              [&] {
                                edgewise::Batch s = b;
                                for (at::Tensor* t : {&s.correct, &s.incorrect, &s.correct_mask, &s.incorrect_mask})
                                  *t = t->narrow(0, i, j - i);
                                return s;
                              }())
            .backward();
      }
    };
    std::vector<std::pair<std::string, std::function<void()>>> sections = {
        {"floor", floor},
        {"eap", [&] { edgewise::attribute("eap", m, g, b, opt); }},
        {"eap-ig-inputs", [&] { edgewise::attribute("eap-ig-inputs", m, g, b, opt); }},
        {"mask-gradient-ig", [&] {  // auto-circuit's integrated gradients: mask values 0, 1/5, .., 1
           edgewise::attribute("mask-gradient-ig", m, g, b, opt);
           edgewise::AttributionOptions z = opt;
           z.mask_value = 0.0;
           edgewise::attribute("mask-gradient", m, g, b, z);
         }},
    };
    if (!only.empty()) {
      for (auto& [name, f] : sections)
        if (name == only) {
          return bench::print_peak_growth(f);
        }
      return 1;
    }
    std::printf("{\"task\": \"%s\", \"N\": %lld, \"batch\": %lld, \"T\": %lld, \"threads\": %d, \"n_edges\": %lld",
                task.c_str(), (long long)N, (long long)batch, (long long)b.clean.size(1), at::get_num_threads(),
                (long long)g.n_edges());
    const char* pick = std::getenv("BENCH_SECTIONS");
    auto wanted = [&](const std::string& name) {
      return !pick || ("," + std::string(pick) + ",").find("," + name + ",") != std::string::npos;
    };
    for (size_t k = 1; k < sections.size(); ++k) {
      auto& [name, f] = sections[k];
      if (!wanted(name)) continue;
      f();
      floor();
      std::vector<double> tf, ts, r;
      for (int i = 0; i < iters; ++i) {
        tf.push_back(bench::seconds(floor));
        ts.push_back(bench::seconds(f));
        r.push_back(ts.back() / tf.back());
      }
      std::printf(", \"%s_s\": %.3f, \"%s_floor_s\": %.3f, \"%s_vs_floor\": %.2f", name.c_str(), bench::median(ts),
                  name.c_str(), bench::median(tf), name.c_str(), bench::median(r));
      std::fflush(stdout);
    }
    for (auto& [name, f] : sections) {
      if (name != "floor" && !wanted(name)) continue;
      const std::string cmd = std::string("'") + argv[0] + "' '" + spec + "' " + task + " " + std::to_string(N) + " " +
                              std::to_string(batch) + " 1 " + std::to_string(at::get_num_threads()) + " " + name;
      const long long kb = bench::child_peak_kib(cmd);
      std::printf(", \"%s_peak_mib\": %.1f", name.c_str(), kb < 0 ? -1.0 : kb / 1024.0);
      std::fflush(stdout);
    }
    std::printf("}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attribution: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
