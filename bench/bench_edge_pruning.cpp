// Edge Pruning's optimisation step against its floor: one plain forward with gradient and its
// backward (activations only: the model is frozen, so no weight gradients) on the same batch,
// the least any mask-gradient method must do per step. Prints one JSON object.
//
//   bench_edge_pruning [MODEL] [task|ids.json] N batch steps threads [node_masks 0|1]
//
// Step times come from the training log (every step logged): the median over the steps after
// the first two (warm-up); the floor's median over `steps` runs, interleaved in pairs with
// training steps is not possible (training is one call), so the floor runs just before and just
// after training and both medians are printed. Setup (the data cache) is timed separately.
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench_data.h"
#include "bench_util.h"
#include "edgewise/edge_pruning.h"
#include "edgewise/memory.h"
#include "edgewise/metrics.h"

int main(int argc, char** argv) {
  const std::string spec = argc > 1 ? argv[1] : "", task = argc > 2 ? argv[2] : "ioi";
  const int64_t N = argc > 3 ? std::stoll(argv[3]) : 32, batch = argc > 4 ? std::stoll(argv[4]) : 32;
  const int64_t steps = argc > 5 ? std::stoll(argv[5]) : 12;
  const int threads = argc > 6 ? std::stoi(argv[6]) : 0;
  const bool nodes = argc > 7 && std::string(argv[7]) == "1";
  if (threads > 0) at::set_num_threads(threads);
  edgewise::tune_allocator();
  try {
    auto [m, g, b] = bench::load(spec, task, N);
    const edgewise::Batch fb = b.rows(0, std::min(N, batch));
    at::Tensor clean_last;
    {
      at::NoGradGuard ng;
      clean_last = edgewise::logits_at(m.forward(fb.clean), fb.clean_pos);
    }
    auto floor = [&] {
      at::Tensor x = at::ones({1}).requires_grad_(true);
      edgewise::Hooks h({"hook_embed"}, [&](const at::Tensor& t, const std::string&) { return t * x; });
      at::Tensor last = edgewise::logits_at(m.forward(fb.clean, &h), fb.clean_pos);
      edgewise::kl_per_example(last, clean_last).mean().backward();
    };
    floor();
    std::vector<double> before, after, step_s;
    for (int64_t i = 0; i < steps; ++i) before.push_back(bench::seconds(floor));
    edgewise::EdgePruningOptions o;
    o.steps = steps + 2;
    o.batch_size = batch;
    o.log_every = 1;
    o.node_masks = nodes;
    double last_t = -1, first_t = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const double rss0 = edgewise::resident_kib() / 1024.0;
    edgewise::EdgePruningResult r = edgewise::edge_pruning(m, g, b, o);
    for (const edgewise::EdgePruningLog& l : r.log) {  // a row per step (log_every 1), with its time
      if (l.step == 1) first_t = l.seconds;
      if (l.step > 2) step_s.push_back(l.seconds - last_t);
      last_t = l.seconds;
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (int64_t i = 0; i < steps; ++i) after.push_back(bench::seconds(floor));
    const double fl = bench::median(before), fa = bench::median(after), st = bench::median(step_s);
    std::printf(
        "{\"task\": \"%s\", \"N\": %lld, \"batch\": %lld, \"tokens\": %lld, \"edges\": %lld, \"node_masks\": %d, "
        "\"threads\": %d, \"floor_before_s\": %.4f, \"floor_after_s\": %.4f, \"step_s\": %.4f, "
        "\"step_vs_floor\": %.2f, \"setup_and_first_step_s\": %.2f, \"total_s\": %.2f, "
        "\"projected_3000_steps_h\": %.2f, \"peak_rss_mib\": %.0f, \"rss_before_mib\": %.0f, \"edges_kept\": %lld}\n",
        task.c_str(), (long long)N, (long long)batch, (long long)fb.clean.size(1), (long long)g.n_edges(), nodes ? 1 : 0,
        at::get_num_threads(), fl, fa, st, st / std::min(fl, fa), first_t, total, 3000 * st / 3600,
        edgewise::peak_resident_kib() / 1024.0, rss0, (long long)r.edges_kept);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_edge_pruning: %s\n", e.what());
    return 1;
  }
}
