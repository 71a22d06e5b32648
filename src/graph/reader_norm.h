// Fused per-reader normalisation for the patched forward (src/graph/patch.cpp): each reader's
// input is the residual minus its own correction, y = x - c_r, and its first operation is the
// block's norm. ATen would make five to seven passes over the [readers, tokens, D] tensor for
// the subtraction and the norm, and as many again in the backward; these make one (forward) and
// one (backward, with the sum over readers into the residual's gradient), keeping only two
// numbers per row (mean, 1/sigma) for the backward instead of the normalised tensor.
//
// Internal to the patched forward: includes ATen, never included by a public header.
#pragma once

#include <ATen/ATen.h>

namespace edgewise::fused {

/// Layouts (D the model width, BT tokens, K circuits, Kx 1 or K, nr readers):
///   x  [Kx, BT, D] contiguous: the residual, shared by every reader (broadcast over K when Kx = 1);
///   c  [K, nr, BT, D] with any strides for the first two dimensions and contiguous [BT, D]
///      below them (a view of the correction GEMM's output), or undefined: no correction, and
///      then there is one row per (Kx, BT) instead of per reader;
///   out [nr, K, BT, D] contiguous (or [1, Kx, BT, D] without c); may be c itself when c is
///      contiguous and K = 1;
///   stats [rows, 2] (mean, 1/sigma) in the same row order as out; the mean is 0 for RMSNorm.
/// The norm: RMSNorm (w * y / sqrt(mean(y^2) + eps)) or LayerNorm (w * (y - mean) / sqrt(var +
/// eps) + b), as transformers computes them in fp32 or double. With w undefined the output is
/// the normalised y alone (xhat: no weight, no bias).
struct NormSpec {
  at::Tensor w, b;  // [D]; b undefined for RMSNorm (and for a LayerNorm without bias)
  double eps = 1e-5;
  bool layer_norm = false;
};

/// out = norm(x - c) row by row; stats filled when defined.
void sub_norm(const at::Tensor& x, const at::Tensor& c, const NormSpec& n, const at::Tensor& out,
              const at::Tensor& stats);

/// Backward of xhat = (x - c - mean) / sigma for nr readers: g [nr, K, BT, D] holds the gradient
/// of each reader's xhat and is overwritten with the gradient of c (the negative of the reader
/// input's gradient; a reader's input is x - c). The readers' xhat come from `xhat` [nr, K, BT,
/// D] when defined (stats then per reader row), or are recomputed from x and stats per (Kx, BT)
/// row when every correction is 0. Returns the gradient of x [Kx, BT, D]: the sum over readers
/// (and over K when Kx = 1) of the readers' input gradients.
at::Tensor norm_backward(const at::Tensor& x, const at::Tensor& xhat, bool layer_norm, const at::Tensor& stats,
                         const at::Tensor& g);

/// The attention readers' projections with gradients, y_r = W_r norm(x - c_r) + bias_r, as one
/// autograd node: x [Kx, BT, D], c [K, nr, BT, D] as above (a tensor with gradients), W [nr, P,
/// D], bias [nr, P] or undefined. Returns [nr, K * BT, P]. The norm's weight and bias are folded
/// into W and bias, so the node keeps each reader's xhat (a tensor of its own, never a view of
/// the chunk's correction buffer) and two numbers per row. c_is_zero: c is the broadcast zero
/// that stands for "every correction is 0" (EAP's point): the norm is computed once and the
/// projection is one GEMM; only the backward is per reader. Gradients flow to x and c, not to
/// W, bias or the norm's weights (callers check that those need none).
at::Tensor norm_project(const at::Tensor& x, const at::Tensor& c, bool c_is_zero, const NormSpec& n,
                        const at::Tensor& W, const at::Tensor& bias);

}  // namespace edgewise::fused
