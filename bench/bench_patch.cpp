// The patched forward against the plain forward on one model: the dense path (every mask entry
// fractional), the sparse path (10 edges ablated), and K masks in one pass against K separate
// passes. Prints one JSON object. A benchmark, not a test; results in docs/BENCHMARKS.md.
//   bench_patch [MODEL] [B] [T] [iters] [threads]
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "edgewise/model.h"
#include "edgewise/patch.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

template <class F>
double time_it(F&& f, int iters) {
  f();  // warm-up
  double t0 = now();
  for (int i = 0; i < iters; ++i) f();
  return (now() - t0) / iters;
}

}  // namespace

int main(int argc, char** argv) {
  std::string spec = argc > 1 ? argv[1] : "";
  int64_t B = argc > 2 ? std::stoll(argv[2]) : 4, T = argc > 3 ? std::stoll(argv[3]) : 32;
  int iters = argc > 4 ? std::stoi(argv[4]) : 3;
  if (argc > 5) at::set_num_threads(std::stoi(argv[5]));
  try {
    edgewise::LoadOptions lo;
    lo.load_tokenizer = false;
    edgewise::Model m = edgewise::Model::load(spec, lo);
    edgewise::Graph g = edgewise::model_graph(m, true);
    at::manual_seed(0);
    at::Tensor clean = at::randint(m.config().vocab_size, {B, T}, at::kLong);
    at::Tensor corrupt = at::randint(m.config().vocab_size, {B, T}, at::kLong);
    at::NoGradGuard ng;
    at::Tensor abl = edgewise::ablated_values(m, g, edgewise::Ablation::Resample, clean, corrupt);
    const int64_t S = g.n_sources(), R = g.n_readers();
    double plain = time_it([&] { m.forward(clean); }, iters);
    at::Tensor frac = at::rand({S, R});
    edgewise::PatchOptions dense;
    dense.path = edgewise::PatchOptions::Path::Dense;
    double t_dense = time_it([&] { edgewise::patched_forward(m, g, clean, abl, frac, dense); }, iters);
    at::Tensor few = at::ones({S, R});
    for (int e = 0; e < 10; ++e) few[1 + 7 * e][R - 1 - 11 * e] = 0.0;
    edgewise::PatchOptions sparse;
    sparse.path = edgewise::PatchOptions::Path::Sparse;
    double t_sparse = time_it([&] { edgewise::patched_forward(m, g, clean, abl, few, sparse); }, iters);
    std::printf("{\"B\": %lld, \"T\": %lld, \"threads\": %d, \"n_edges\": %lld, \"plain_s\": %.4f, "
                "\"dense_s\": %.4f, \"dense_ratio\": %.2f, \"sparse_s\": %.4f, \"sparse_ratio\": %.2f",
                (long long)B, (long long)T, at::get_num_threads(), (long long)g.n_edges(), plain, t_dense,
                t_dense / plain, t_sparse, t_sparse / plain);
    for (int64_t K : {1, 8, 32}) {
      at::Tensor masks = at::rand({K, S, R});
      double one_pass = time_it([&] { edgewise::patched_forward(m, g, clean, abl, masks, dense); }, 1);
      std::printf(", \"K%lld_one_pass_s\": %.3f, \"K%lld_separate_s\": %.3f", (long long)K, one_pass,
                  (long long)K, K * t_dense);
    }
    std::printf("}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_patch: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
