// The optimiser module (include/edgewise/optim.h).
#include "edgewise/optim.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace edgewise {

void optim_step(at::Tensor& p, const at::Tensor& grad, OptimState& s, const OptimOptions& o, const at::Tensor& mask) {
  at::NoGradGuard ng;
  const at::Tensor g = o.maximize ? -grad : grad;
  if (o.kind == OptimKind::Sgd) {
    // torch.optim.SGD: g += wd p; buf = mu buf + g (the first buffer is g: 0 * mu + g); p -= lr buf.
    if (!s.m.defined()) s.m = at::zeros_like(p);
    const at::Tensor gd = o.weight_decay != 0 ? g + o.weight_decay * p : g;
    const at::Tensor buf = o.momentum != 0 ? s.m * o.momentum + gd : gd;
    s.m = mask.defined() ? at::where(mask, buf, s.m) : buf;
    const at::Tensor next = p - o.lr * s.m;
    p.copy_(mask.defined() ? at::where(mask, next, p) : next);
    ++s.t;
    return;
  }
  // torch.optim.AdamW: decoupled decay, then the moments, bias-corrected by the steps taken.
  if (!s.m.defined()) s.m = at::zeros_like(p), s.v = at::zeros_like(p);
  ++s.t;
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(s.t));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(s.t));
  if (!mask.defined()) {  // in place: the same operations as below, without the copies
    p.mul_(1.0 - o.lr * o.weight_decay);
    s.m.lerp_(g, 1.0 - o.beta1);
    s.v.mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
    at::Tensor denom = (s.v.sqrt() / std::sqrt(bc2)).add_(o.eps);
    p.addcdiv_(s.m, denom, -o.lr / bc1);
    return;
  }
  s.m = at::where(mask, s.m.lerp(g, 1.0 - o.beta1), s.m);
  s.v = at::where(mask, s.v.mul(o.beta2).addcmul_(g, g, 1.0 - o.beta2), s.v);
  at::Tensor next = p.mul(1.0 - o.lr * o.weight_decay);
  at::Tensor denom = (s.v.sqrt() / std::sqrt(bc2)).add_(o.eps);
  next.addcdiv_(s.m, denom, -o.lr / bc1);
  p.copy_(at::where(mask, next, p));
}

void adamw_step(at::Tensor& p, const at::Tensor& grad, OptimState& s, double lr, double weight_decay, bool maximize) {
  OptimOptions o;
  o.lr = lr;
  o.weight_decay = weight_decay;
  o.maximize = maximize;
  optim_step(p, grad, s, o);
}

at::Generator seeded_generator(uint64_t seed, uint64_t stream) {
  // splitmix64 of (seed, stream): distinct, well-mixed seeds for neighbouring streams.
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + stream + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return at::detail::createCPUGenerator(z ^ (z >> 31));
}

at::Tensor epoch_order(int64_t N, uint64_t seed, int64_t epoch) {
  at::Generator g = seeded_generator(seed, kOrderStream + static_cast<uint64_t>(epoch));
  return at::randperm(N, g);
}

}  // namespace edgewise
