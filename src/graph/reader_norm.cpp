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

Geometry geometry(const at::Tensor& x, const at::Tensor& c) {
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
  const Geometry g = geometry(x, c);
  const int64_t rows = g.has_c ? g.nr * g.K * g.BT : g.Kx * g.BT, D = g.D;
  if (!out.is_contiguous() || out.numel() != rows * D) fail("fused norm", "internal: output of the wrong size");
  const T* xp = x.const_data_ptr<T>();
  const T* cp = g.has_c ? c.const_data_ptr<T>() : nullptr;
  const at::Tensor wc = n.w.defined() ? n.w.contiguous() : at::Tensor();
  const at::Tensor bc = n.w.defined() && n.b.defined() ? n.b.contiguous() : at::Tensor();
  const T* wp = wc.defined() ? wc.const_data_ptr<T>() : nullptr;
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
        else if (wp)
          for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - cr[i] - mean) * rstd * wp[i];
        else
          for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - cr[i] - mean) * rstd;
      } else {
        if (bp)
          for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - mean) * rstd * wp[i] + bp[i];
        else if (wp)
          for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - mean) * rstd * wp[i];
        else
          for (int64_t i = 0; i < D; ++i) o[i] = (xr[i] - mean) * rstd;
      }
      if (sp) {
        sp[2 * row] = mean;
        sp[2 * row + 1] = rstd;
      }
    }
  });
}

template <typename T>
at::Tensor norm_backward_impl(const at::Tensor& x, const at::Tensor& xhat, bool ln, const at::Tensor& stats,
                              const at::Tensor& g) {
  if (x.dim() != 3 || !x.is_contiguous()) fail("fused norm", "internal: x must be a contiguous [Kx, BT, D] tensor");
  const int64_t Kx = x.size(0), BT = x.size(1), D = x.size(2);
  if (!g.is_contiguous() || g.dim() != 4 || g.size(2) != BT || g.size(3) != D)
    fail("fused norm", "internal: gradient of the wrong shape");
  const int64_t nr = g.size(0), K = g.size(1);
  if ((Kx != 1 && Kx != K) || (xhat.defined() && (!xhat.is_contiguous() || !xhat.sizes().equals(g.sizes()))))
    fail("fused norm", "internal: inconsistent shapes");
  at::Tensor gx = at::empty({Kx, BT, D}, x.options());
  const T* xp = x.const_data_ptr<T>();
  const T* hp = xhat.defined() ? xhat.const_data_ptr<T>() : nullptr;
  const T* sp = stats.const_data_ptr<T>();
  T* up = g.data_ptr<T>();
  T* gp = gx.data_ptr<T>();
  // One task per row of gx (kx, t): it owns that row and every reader row that sums into it.
  at::parallel_for(0, Kx * BT, 4, [&](int64_t lo, int64_t hi) {
    std::vector<T> xh_shared(hp ? 0 : D);
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t kx = row / BT, t = row % BT;
      T* gr = gp + row * D;
      for (int64_t i = 0; i < D; ++i) gr[i] = 0;
      if (!hp) {  // every reader's xhat is the residual's
        const T mean = sp[2 * row], rstd = sp[2 * row + 1];
        const T* xr = xp + row * D;
        for (int64_t i = 0; i < D; ++i) xh_shared[i] = (xr[i] - mean) * rstd;
      }
      const int64_t k0 = Kx == 1 ? 0 : kx, k1 = Kx == 1 ? K : kx + 1;
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t k = k0; k < k1; ++k) {
          const int64_t rrow = (r * K + k) * BT + t;
          const T* xh = hp ? hp + rrow * D : xh_shared.data();
          const T rstd = hp ? sp[2 * rrow + 1] : sp[2 * row + 1];
          T* ur = up + rrow * D;
          // d(input) = rstd * (v - mean(v) [LayerNorm] - xhat * mean(xhat * v)), v = d(xhat).
          T dot[kLanes] = {}, sv[kLanes] = {};
          int64_t i = 0;
          for (; i + kLanes <= D; i += kLanes)
            for (int j = 0; j < kLanes; ++j) {
              dot[j] += xh[i + j] * ur[i + j];
              sv[j] += ur[i + j];
            }
          T dt = 0, st = 0;
          for (; i < D; ++i) {
            dt += xh[i] * ur[i];
            st += ur[i];
          }
          const T md = (lane_sum(dot) + dt) / T(D), mv = ln ? (lane_sum(sv) + st) / T(D) : T(0);
          for (int64_t i2 = 0; i2 < D; ++i2) {
            const T gi = rstd * (ur[i2] - mv - xh[i2] * md);
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

// The autograd node of norm_project. The norm's weight w and bias b are folded into the
// projection: W_r (w * xhat + b) + bias_r = (W_r diag(w)) xhat + (W_r b + bias_r).
struct NormProject : public torch::autograd::Function<NormProject> {
  // Outside the tensor arguments: they get no gradient, and an undefined bias would not pass as
  // an autograd input.
  struct Projection {
    at::Tensor W, bias;
  };
  // bf16 weights (a big model): the norm runs in fp32 on fp32 copies of x and c (activations in
  // fp32 where precision needs it), the projection in the weights' dtype; the node keeps x in its
  // own dtype and the weights as given (a view of the model's), not the folded product, which
  // the backward makes again.
  static at::Tensor upcast(const at::Tensor& t) { return t.scalar_type() == at::kBFloat16 ? t.to(at::kFloat) : t; }
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& c,
                            Projection p, NormSpec n, bool c_zero) {
    const at::Tensor x = upcast(x_in);
    const int64_t Kx = x.size(0), BT = x.size(1), D = x.size(2), K = c.size(0), nr = c.size(1), P = p.W.size(1);
    const at::ScalarType wt = p.W.scalar_type();
    const at::Tensor Wf = p.W * n.w.view({1, 1, D});  // [nr, P, D]
    at::Tensor bf = p.bias;                             // [nr, P] or undefined
    if (n.b.defined()) {
      const at::Tensor Wb = at::matmul(p.W, n.b);  // [nr, P]
      bf = bf.defined() ? bf + Wb : Wb;
    }
    NormSpec plain = n;  // xhat only
    plain.w = at::Tensor();
    plain.b = at::Tensor();
    if (bf.defined()) bf = bf.to(wt);
    at::Tensor y, stats, xhat;
    if (c_zero) {
      // Every reader's input is x: one norm, one GEMM for all readers' projections.
      at::Tensor xh = at::empty({1, Kx, BT, D}, x.options());
      stats = at::empty({Kx * BT, 2}, x.options());
      sub_norm(x, {}, plain, xh, stats);
      const at::Tensor W2 = Wf.reshape({nr * P, D});
      const at::Tensor xh2 = xh.view({Kx * BT, D}).to(wt);
      at::Tensor yf = bf.defined() ? at::addmm(bf.reshape({nr * P}), xh2, W2.t()) : at::mm(xh2, W2.t());  // [Kx*BT, nr*P]
      y = yf.view({Kx, BT, nr, P}).permute({2, 0, 1, 3}).expand({nr, K, BT, P}).contiguous().view({nr, K * BT, P});
    } else {
      xhat = at::empty({nr, K, BT, D}, x.options());
      stats = at::empty({nr * K * BT, 2}, x.options());
      sub_norm(x, upcast(c), plain, xhat, stats);
      const at::Tensor xv = xhat.view({nr, K * BT, D}).to(wt), Wt = Wf.transpose(1, 2);
      y = bf.defined() ? at::baddbmm(bf.unsqueeze(1), xv, Wt) : at::bmm(xv, Wt);
    }
    ctx->save_for_backward({x_in});
    ctx->saved_data["xhat"] = xhat;
    ctx->saved_data["stats"] = stats;
    ctx->saved_data["W"] = p.W;
    ctx->saved_data["w"] = n.w;
    ctx->saved_data["ln"] = n.layer_norm;
    ctx->saved_data["K"] = K;
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const at::Tensor x = upcast(ctx->get_saved_variables()[0]);
    const at::Tensor xhat = ctx->saved_data["xhat"].toTensor(), stats = ctx->saved_data["stats"].toTensor();
    const int64_t K = ctx->saved_data["K"].toInt(), BT = x.size(1), D = x.size(2);
    const at::Tensor W = ctx->saved_data["W"].toTensor() * ctx->saved_data["w"].toTensor().view({1, 1, D});  // the forward's Wf
    const int64_t nr = W.size(0);
    at::Tensor g = upcast(at::bmm(grad[0].reshape({nr, K * BT, W.size(1)}).to(W.scalar_type()), W)).view({nr, K, BT, D});  // d/d(xhat)
    at::Tensor gx = norm_backward(x, xhat, ctx->saved_data["ln"].toBool(), stats, g);
    // Gradients in the inputs' dtypes (autograd casts them; explicit for clarity).
    return {gx, g.transpose(0, 1), at::Tensor(), at::Tensor(), at::Tensor()};
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

at::Tensor norm_backward(const at::Tensor& x, const at::Tensor& xhat, bool layer_norm, const at::Tensor& stats,
                         const at::Tensor& g) {
  RECORD_FUNCTION("edgewise::norm_backward", std::vector<c10::IValue>());
  check_dtype(x);
  if (x.scalar_type() == at::kDouble) return norm_backward_impl<double>(x, xhat, layer_norm, stats, g);
  return norm_backward_impl<float>(x, xhat, layer_norm, stats, g);
}

at::Tensor norm_project(const at::Tensor& x, const at::Tensor& c, bool c_is_zero, const NormSpec& n,
                        const at::Tensor& W, const at::Tensor& bias) {
  return NormProject::apply(x, c, NormProject::Projection{W, bias}, n, c_is_zero);
}

}  // namespace edgewise::fused
