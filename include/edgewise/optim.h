// The optimiser module shared by the methods that train (Edge Pruning's masks and Lagrange
// multipliers, circuit-tuning's weights): masked AdamW and SGD as torch.optim computes them, and
// the seeded order in which examples are visited.
//
// "Masked": where a bool mask is given, only its entries move — value and optimiser state —
// and the rest stays exactly as it was (circuit-tuning's rule, "a frozen entry is skipped").
// With every entry in the mask the step is bit-identical to the unmasked one.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace edgewise {

enum class OptimKind { AdamW, Sgd };

struct OptimOptions {
  OptimKind kind = OptimKind::AdamW;
  double lr = 1e-3;
  double weight_decay = 0.0;  ///< AdamW: decoupled (p *= 1 - lr wd); SGD: added to the gradient
  double momentum = 0.0;      ///< SGD only (dampening 0, no Nesterov)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  ///< AdamW only
  bool maximize = false;      ///< ascend (Edge Pruning's Lagrange multipliers)
};

/// Per-parameter state. AdamW: first and second moments and the steps taken (its bias
/// correction uses t); SGD: m is the momentum buffer.
struct OptimState {
  at::Tensor m, v;
  int64_t t = 0;
};
using AdamWState = OptimState;

/// One step on p (in place, no autograd) from its gradient. `mask` (bool, p's shape; undefined:
/// all) selects the entries that move. AdamW's t advances by one.
void optim_step(at::Tensor& p, const at::Tensor& grad, OptimState& s, const OptimOptions& o,
                const at::Tensor& mask = {});

/// AdamW with betas 0.9 / 0.999 and eps 1e-8, unmasked (Edge Pruning; tests).
void adamw_step(at::Tensor& p, const at::Tensor& grad, OptimState& s, double lr, double weight_decay, bool maximize);

/// A CPU generator for stream `stream` of run `seed` (splitmix64 of the pair): each step's noise
/// and each epoch's order get their own, so a resumed run redraws them with no saved state.
at::Generator seeded_generator(uint64_t seed, uint64_t stream);

/// The stream base of epoch orders (epoch e uses kOrderStream + e); noise streams stay below.
inline constexpr uint64_t kOrderStream = 1ull << 40;

/// The order in which epoch `epoch` visits N examples: a permutation of 0..N-1 drawn from
/// seeded_generator(seed, kOrderStream + epoch).
at::Tensor epoch_order(int64_t N, uint64_t seed, int64_t epoch);

}  // namespace edgewise
