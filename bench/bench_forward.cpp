// Forward-pass throughput of edgewise's model, and the fp32 matmul rate libtorch reaches at the
// model's own shapes (the ceiling a forward pass can approach on this machine).
// Prints one JSON object on stdout, for bench/forward_vs_transformers.py to put next to the
// transformers figure measured in the same run. A benchmark, not a test.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "edgewise/model.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median-free simple timing: warm-up, then the mean over `iters`.
template <class F>
double time_it(F&& f, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) f();
  double t0 = now();
  for (int i = 0; i < iters; ++i) f();
  return (now() - t0) / iters;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = argc > 1 ? argv[1] : "";
  int64_t B = argc > 2 ? std::stoll(argv[2]) : 8;
  int64_t T = argc > 3 ? std::stoll(argv[3]) : 64;
  int iters = argc > 4 ? std::stoi(argv[4]) : 10;
  int threads = argc > 5 ? std::stoi(argv[5]) : 0;
  if (threads > 0) at::set_num_threads(threads);
  try {
    edgewise::LoadOptions opt;
    opt.load_tokenizer = false;
    double t0 = now();
    edgewise::Model m = edgewise::Model::load(model, opt);
    double load_s = now() - t0;
    const auto& c = m.config();
    at::manual_seed(0);
    at::Tensor tokens = at::randint(c.vocab_size, {B, T}, at::kLong);
    at::NoGradGuard ng;
    double fwd = time_it([&] { m.forward(tokens); }, 2, iters);

    // The matmuls of one layer at this batch: [B*T, D] x [D, out] for q, k, v, o, gate, up, down.
    int64_t N = B * T, D = c.d_model, F = c.d_mlp, Dq = c.n_heads * c.d_head, Dkv = c.n_kv_heads * c.d_head;
    at::Tensor x = at::randn({N, D}), xf = at::randn({N, F}), xq = at::randn({N, Dq});
    at::Tensor wq = at::randn({Dq, D}), wkv = at::randn({Dkv, D}), wo = at::randn({D, Dq});
    at::Tensor wu = at::randn({F, D}), wd = at::randn({D, F});
    auto layer_mm = [&] {
      at::linear(x, wq); at::linear(x, wkv); at::linear(x, wkv); at::linear(xq, wo);
      at::linear(x, wu); if (c.gated_mlp) at::linear(x, wu); at::linear(xf, wd);
    };
    double mm = time_it(layer_mm, 2, iters * 3);
    double mm_flops = 2.0 * N * (D * Dq + 2 * D * Dkv + Dq * D + (c.gated_mlp ? 2 : 1) * D * F + F * D);
    at::Tensor xv = at::randn({N, D}), we = at::randn({c.vocab_size, D});
    double unembed = time_it([&] { at::linear(xv, we); }, 1, iters);
    std::printf(
        "{\"model\": \"%s\", \"batch\": %lld, \"tokens\": %lld, \"threads\": %d, \"load_s\": %.3f, "
        "\"forward_s\": %.5f, \"tokens_per_s\": %.1f, \"layer_matmul_gflops\": %.2f, "
        "\"unembed_gflops\": %.2f}\n",
        m.source().origin.c_str(), (long long)B, (long long)T, at::get_num_threads(), load_s, fwd,
        B * T / fwd, mm_flops / mm / 1e9, 2.0 * N * D * c.vocab_size / unembed / 1e9);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_forward: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
