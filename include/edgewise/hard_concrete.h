// The hard-concrete distribution (Louizos et al. 2018) behind Edge Pruning's L0 masks, with the
// constants of the reference implementation (princeton-nlp/Edge-Pruning, src/modeling/l0.py):
// stretch interval (l, r) = (-0.1, 1.1), temperature beta = 2/3, u drawn from [eps, 1 - eps].
//
//   s = sigmoid((log u - log(1 - u) + log_alpha) / beta),   z = clamp(s (r - l) + l, 0, 1)
//
// z is exactly 0 with probability P0 = sigmoid(beta log(-l / r) - log_alpha), exactly 1 with
// probability P1 = sigmoid(log_alpha - beta log((1 - l) / (r - 1))), and in (0, 1) otherwise.
// The expected L0 norm of a mask is sum (1 - P0).
//
// Not here: the training loop (src/discover/edge_pruning.cpp).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace edgewise::hard_concrete {

inline constexpr double kLeft = -0.1, kRight = 1.1, kBeta = 2.0 / 3.0, kEps = 1e-6;
/// The reference's factor in the deterministic (evaluation) mask: sigmoid(log_alpha / beta * 0.8).
inline constexpr double kEvalFactor = 0.8;

/// One sample z per entry of log_alpha (same shape, differentiable w.r.t. log_alpha), from
/// uniform noise u of the same shape in [0, 1) (clamped to [eps, 1 - eps]).
at::Tensor sample(const at::Tensor& log_alpha, const at::Tensor& u);
/// P(z = 0) and P(z = 1) per entry (differentiable).
at::Tensor prob_zero(const at::Tensor& log_alpha);
at::Tensor prob_one(const at::Tensor& log_alpha);
/// The reference's evaluation mask: sigmoid(log_alpha / beta * 0.8) with the round(sum P0)
/// entries of smallest log_alpha set to 0 (soft; no gradient).
at::Tensor deterministic(const at::Tensor& log_alpha);
/// The discrete circuit: the `keep` largest entries of `mask` among `valid` (bool, mask's shape;
/// undefined = all), ties by lower index — exactly `keep` entries, where the reference's binary
/// search over a threshold can only approach the count. Returns a bool tensor of mask's shape.
at::Tensor keep_largest(const at::Tensor& mask, const at::Tensor& valid, int64_t keep);

}  // namespace edgewise::hard_concrete
