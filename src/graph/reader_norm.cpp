// Fused subtraction + norm over the patched forward's reader rows (see reader_norm.h).
//
// Each row is D numbers (576 for the default model): small enough to stay in L1 between the
// passes a row needs (statistics, then output), so each of x, c and out crosses memory once.
// Reductions use kLanes independent partial sums so that the compiler vectorises them without
// reassociating (no -ffast-math); the order differs from ATen's kernels by rounding only (the
// tests' tolerances account for that: tests/test_patch.cpp).
#include "reader_norm.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "edgewise/error.h"

namespace edgewise::fused {

namespace {

constexpr int kLanes = 16;

template <typename T>
T lane_sum(const T (&a)[kLanes]) {
  T s = 0;
  for (int j = 0; j < kLanes; ++j) s += a[j];
  return s;
}

// Statistics of y = x - c (c null: y = x): mean (LayerNorm; 0 for RMSNorm) and 1/sigma.
template <typename T>
void row_stats(const T* x, const T* c, int64_t D, bool ln, double eps, T* mean, T* rstd) {
  T m = 0;
  if (ln) {
    T s[kLanes] = {};
    int64_t i = 0;
    if (c)
      for (; i + kLanes <= D; i += kLanes)
        for (int j = 0; j < kLanes; ++j) s[j] += x[i + j] - c[i + j];
    else
      for (; i + kLanes <= D; i += kLanes)
        for (int j = 0; j < kLanes; ++j) s[j] += x[i + j];
    T tail = 0;
    for (; i < D; ++i) tail += x[i] - (c ? c[i] : T(0));
    m = (lane_sum(s) + tail) / T(D);
  }
  T q[kLanes] = {};
  int64_t i = 0;
  if (c)
    for (; i + kLanes <= D; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const T y = x[i + j] - c[i + j] - m;
        q[j] += y * y;
      }
  else
    for (; i + kLanes <= D; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const T y = x[i + j] - m;
        q[j] += y * y;
      }
  T tail = 0;
  for (; i < D; ++i) {
    const T y = x[i] - (c ? c[i] : T(0)) - m;
    tail += y * y;
  }
  *mean = m;
  *rstd = T(1) / std::sqrt((lane_sum(q) + tail) / T(D) + T(eps));
}

struct Geometry {
  int64_t Kx, K, nr, BT, D;
  int64_t cs0 = 0, cs1 = 0;  // c's strides for K and the reader (elements)
  bool has_c = false;
};

Geometry geometry(const at::Tensor& x, const at::Tensor& c, const at::Tensor& u_like) {
  Geometry g{};
  if (x.dim() != 3 || !x.is_contiguous()) fail("fused norm", "internal: x must be a contiguous [Kx, BT, D] tensor");
  g.Kx = x.size(0);
  g.BT = x.size(1);
  g.D = x.size(2);
  if (c.defined()) {
    if (c.dim() != 4 || c.size(2) != g.BT || c.size(3) != g.D || c.stride(3) != 1 || c.stride(2) != g.D)
      fail("fused norm", "internal: c must be [K, nr, BT, D] with contiguous rows");
    g.has_c = true;
    g.K = c.size(0);
    g.nr = c.size(1);
    g.cs0 = c.stride(0);
    g.cs1 = c.stride(1);
  } else if (u_like.defined()) {
    g.nr = u_like.size(0);
    g.K = u_like.size(1);
  } else {
    g.nr = 1;
    g.K = g.Kx;
  }
  if (g.Kx != 1 && g.Kx != g.K) fail("fused norm", "internal: x has " + std::to_string(g.Kx) + " circuits, c " + std::to_string(g.K));
  return g;
}

template <typename T>
void sub_norm_impl(const at::Tensor& x, const at::Tensor& c, const NormSpec& n, const at::Tensor& out,
                   const at::Tensor& stats) {
  const Geometry g = geometry(x, c, {});
  const int64_t rows = g.has_c ? g.nr * g.K * g.BT : g.Kx * g.BT, D = g.D;
  if (!out.is_contiguous() || out.numel() != rows * D) fail("fused norm", "internal: output of the wrong size");
  const T* xp = x.const_data_ptr<T>();
  const T* cp = g.has_c ? c.const_data_ptr<T>() : nullptr;
  const at::Tensor wc = n.w.contiguous(), bc = n.b.defined() ? n.b.contiguous() : at::Tensor();
  const T* wp = wc.const_data_ptr<T>();
  const T* bp = bc.defined() ? bc.const_data_ptr<T>() : nullptr;
  T* op = out.data_ptr<T>();
  T* sp = stats.defined() ? stats.data_ptr<T>() : nullptr;
  const bool ln = n.layer_norm;
  const double eps = n.eps;
  at::parallel_for(0, rows, 32, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const T* xr;
      const T* cr = nullptr;
      if (g.has_c) {
        const int64_t t = row % g.BT, rk = row / g.BT, k = rk % g.K, r = rk / g.K;
        xr = xp + ((g.Kx == 1 ? 0 : k) * g.BT + t) * D;
        cr = cp + k * g.cs0 + r * g.cs1 + t * D;
      } else {
        xr = xp + row * D;
      }
      T mean, rstd;
      row_stats(xr, cr, D, ln, eps, &mean, &rstd);
      T* o = op + row * D;
      if (cr) {
        if (bp)
          for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - cr[i] - mean) * rstd * wp[i] + bp[i];
        else
          for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - cr[i] - mean) * rstd * wp[i];
      } else {
        if (bp)
          for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - mean) * rstd * wp[i] + bp[i];
        else
          for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - mean) * rstd * wp[i];
      }
      if (sp) {
        sp[2 * row] = mean;
        sp[2 * row + 1] = rstd;
      }
    }
  });
}

template <typename T>
at::Tensor sub_norm_backward_impl(const at::Tensor& x, const at::Tensor& c, const NormSpec& n, const at::Tensor& stats,
                                  const at::Tensor& u) {
  const Geometry g = geometry(x, c, u);
  const int64_t D = g.D, BT = g.BT;
  if (!u.is_contiguous() || u.dim() != 4 || u.size(0) != g.nr || u.size(1) != g.K || u.size(2) != BT || u.size(3) != D)
    fail("fused norm", "internal: gradient of the wrong shape");
  at::Tensor gx = at::empty({g.Kx, BT, D}, x.options());
  const T* xp = x.const_data_ptr<T>();
  const T* cp = g.has_c ? c.const_data_ptr<T>() : nullptr;
  const at::Tensor wc = n.w.contiguous();
  const T* wp = wc.const_data_ptr<T>();
  const T* sp = stats.const_data_ptr<T>();
  T* up = u.data_ptr<T>();
  T* gp = gx.data_ptr<T>();
  const bool ln = n.layer_norm;
  // One task per row of gx (kx, t): it owns that row and every reader row that sums into it.
  at::parallel_for(0, g.Kx * BT, 4, [&](int64_t lo, int64_t hi) {
    std::vector<T> v(D);
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t kx = row / BT, t = row % BT;
      const T* xr = xp + row * D;
      T* gr = gp + row * D;
      for (int64_t i = 0; i < D; ++i) gr[i] = 0;
      const int64_t k0 = g.Kx == 1 ? 0 : kx, k1 = g.Kx == 1 ? g.K : kx + 1;
      for (int64_t r = 0; r < g.nr; ++r)
        for (int64_t k = k0; k < k1; ++k) {
          const T* cr = cp ? cp + k * g.cs0 + r * g.cs1 + t * D : nullptr;
          const int64_t srow = cp ? (r * g.K + k) * BT + t : row;
          const T mean = sp[2 * srow], rstd = sp[2 * srow + 1];
          T* ur = up + ((r * g.K + k) * BT + t) * D;
          // v = w * u; xhat = (y - mean) * rstd; d(input) = rstd * (v - mean(v) [LN] - xhat * mean(xhat * v)).
          T dot[kLanes] = {}, sv[kLanes] = {};
          int64_t i = 0;
          for (; i + kLanes <= D; i += kLanes)
            for (int j = 0; j < kLanes; ++j) {
              const T vi = wp[i + j] * ur[i + j];
              const T xh = ((cr ? xr[i + j] - cr[i + j] : xr[i + j]) - mean) * rstd;
              v[i + j] = vi;
              dot[j] += xh * vi;
              sv[j] += vi;
            }
          T dt = 0, st = 0;
          for (; i < D; ++i) {
            const T vi = wp[i] * ur[i];
            const T xh = ((cr ? xr[i] - cr[i] : xr[i]) - mean) * rstd;
            v[i] = vi;
            dt += xh * vi;
            st += vi;
          }
          const T md = (lane_sum(dot) + dt) / T(D), mv = ln ? (lane_sum(sv) + st) / T(D) : T(0);
          for (int64_t i2 = 0; i2 < D; ++i2) {
            const T xh = ((cr ? xr[i2] - cr[i2] : xr[i2]) - mean) * rstd;
            const T gi = rstd * (v[i2] - mv - xh * md);
            gr[i2] += gi;
            ur[i2] = -gi;
          }
        }
    }
  });
  return gx;
}

void check_dtype(const at::Tensor& x) {
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kDouble)
    fail("fused norm", "internal: float32 or float64 only");
}

// The autograd node of norm_project.
struct NormProject : public torch::autograd::Function<NormProject> {
  // W and bias travel outside the tensor arguments: they get no gradient, and an undefined
  // bias would not pass as an autograd input.
  struct Projection {
    at::Tensor W, bias;
  };
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& c,
                            Projection p, NormSpec n, bool c_zero) {
    const at::Tensor &W = p.W, &bias = p.bias;
    const int64_t Kx = x.size(0), BT = x.size(1), D = x.size(2), K = c.size(0), nr = c.size(1), P = W.size(1);
    at::Tensor y, stats;
    if (c_zero) {
      // Every reader's input is x: one norm, one GEMM for all readers' projections.
      at::Tensor xn = at::empty({1, Kx, BT, D}, x.options());
      stats = at::empty({Kx * BT, 2}, x.options());
      sub_norm(x, {}, n, xn, stats);
      const at::Tensor Wf = W.reshape({nr * P, D});
      at::Tensor yf = bias.defined() ? at::addmm(bias.reshape({nr * P}), xn.view({Kx * BT, D}), Wf.t())
                                     : at::mm(xn.view({Kx * BT, D}), Wf.t());  // [Kx*BT, nr*P]
      y = yf.view({Kx, BT, nr, P}).permute({2, 0, 1, 3}).expand({nr, K, BT, P}).contiguous().view({nr, K * BT, P});
    } else {
      at::Tensor xn = at::empty({nr, K, BT, D}, x.options());
      stats = at::empty({nr * K * BT, 2}, x.options());
      sub_norm(x, c, n, xn, stats);
      const at::Tensor xv = xn.view({nr, K * BT, D}), Wt = W.transpose(1, 2);
      y = bias.defined() ? at::baddbmm(bias.unsqueeze(1), xv, Wt) : at::bmm(xv, Wt);
    }
    ctx->save_for_backward({x, c_zero ? at::Tensor() : c, W});
    ctx->saved_data["stats"] = stats;
    ctx->saved_data["w"] = n.w;
    ctx->saved_data["b"] = n.b;
    ctx->saved_data["eps"] = n.eps;
    ctx->saved_data["ln"] = n.layer_norm;
    ctx->saved_data["K"] = K;
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &c = saved[1], &W = saved[2];
    NormSpec n;
    n.w = ctx->saved_data["w"].toTensor();
    if (ctx->saved_data["b"].isTensor()) n.b = ctx->saved_data["b"].toTensor();
    n.eps = ctx->saved_data["eps"].toDouble();
    n.layer_norm = ctx->saved_data["ln"].toBool();
    const int64_t K = ctx->saved_data["K"].toInt(), nr = W.size(0), BT = x.size(1), D = x.size(2);
    const at::Tensor stats = ctx->saved_data["stats"].toTensor();
    at::Tensor u = at::bmm(grad[0].reshape({nr, K * BT, W.size(1)}), W).view({nr, K, BT, D});  // d/d(normed input)
    at::Tensor gx = sub_norm_backward(x, c, n, stats, u);
    return {gx, u.transpose(0, 1), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

void sub_norm(const at::Tensor& x, const at::Tensor& c, const NormSpec& n, const at::Tensor& out,
              const at::Tensor& stats) {
  RECORD_FUNCTION("edgewise::sub_norm", std::vector<c10::IValue>());  // named in profiles
  check_dtype(x);
  if (x.scalar_type() == at::kDouble) sub_norm_impl<double>(x, c, n, out, stats);
  else sub_norm_impl<float>(x, c, n, out, stats);
}

at::Tensor sub_norm_backward(const at::Tensor& x, const at::Tensor& c, const NormSpec& n, const at::Tensor& stats,
                             const at::Tensor& u) {
  RECORD_FUNCTION("edgewise::sub_norm_backward", std::vector<c10::IValue>());
  check_dtype(x);
  if (x.scalar_type() == at::kDouble) return sub_norm_backward_impl<double>(x, c, n, stats, u);
  return sub_norm_backward_impl<float>(x, c, n, stats, u);
}

at::Tensor norm_project(const at::Tensor& x, const at::Tensor& c, bool c_is_zero, const NormSpec& n,
                        const at::Tensor& W, const at::Tensor& bias) {
  return NormProject::apply(x, c, NormProject::Projection{W, bias}, n, c_is_zero);
}

}  // namespace edgewise::fused
