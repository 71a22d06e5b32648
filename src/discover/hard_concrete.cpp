// The hard-concrete distribution (include/edgewise/hard_concrete.h).
#include "edgewise/hard_concrete.h"

#include <cmath>

#include "edgewise/error.h"

namespace edgewise::hard_concrete {

at::Tensor sample(const at::Tensor& log_alpha, const at::Tensor& u) {
  if (u.sizes() != log_alpha.sizes()) fail("hard concrete", "noise and log_alpha differ in shape");
  at::Tensor uc = u.clamp(kEps, 1.0 - kEps).to(log_alpha.scalar_type());
  at::Tensor s = at::sigmoid((at::log(uc) - at::log1p(-uc) + log_alpha) / kBeta);
  return at::clamp(s * (kRight - kLeft) + kLeft, 0.0, 1.0);
}

at::Tensor prob_zero(const at::Tensor& log_alpha) {
  return at::sigmoid(kBeta * std::log(-kLeft / kRight) - log_alpha);
}

at::Tensor prob_one(const at::Tensor& log_alpha) {
  return at::sigmoid(log_alpha - kBeta * std::log((1.0 - kLeft) / (kRight - 1.0)));
}

at::Tensor deterministic(const at::Tensor& log_alpha) {
  at::NoGradGuard ng;
  at::Tensor la = log_alpha.detach();
  at::Tensor soft = at::sigmoid(la / kBeta * kEvalFactor).flatten();
  const int64_t zeros = std::llround(prob_zero(la).sum().item<double>());
  if (zeros > 0) soft.index_fill_(0, std::get<1>(at::topk(la.flatten(), zeros, 0, /*largest=*/false)), 0.0);
  return soft.view(log_alpha.sizes());
}

at::Tensor keep_largest(const at::Tensor& mask, const at::Tensor& valid, int64_t keep) {
  at::Tensor m = mask.detach().to(at::kDouble).flatten();
  at::Tensor v = valid.defined() ? valid.to(at::kBool).flatten() : at::ones_like(m, at::kBool);
  if (v.numel() != m.numel()) fail("hard concrete", "valid and mask differ in size");
  const int64_t n_valid = v.sum().item<int64_t>();
  if (keep < 0 || keep > n_valid)
    fail("hard concrete", "cannot keep " + std::to_string(keep) + " of " + std::to_string(n_valid) + " entries");
  // Invalid entries last; among valid ones larger first, then lower index (a stable sort).
  at::Tensor key = at::where(v, m, at::full_like(m, -INFINITY));
  at::Tensor order = std::get<1>(at::sort(key, /*stable=*/true, 0, /*descending=*/true));
  at::Tensor out = at::zeros_like(v);
  out.index_fill_(0, order.narrow(0, 0, keep), true);
  return out.view(mask.sizes());
}

}  // namespace edgewise::hard_concrete
