// Task metrics (see include/edgewise/metrics.h). Plain ATen ops so autograd flows through them.
// Not here: running any model.
#include "edgewise/metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "edgewise/error.h"

namespace edgewise {

namespace {

void check_last(const at::Tensor& last, const Batch& b, const char* what) {
  if (!last.defined() || last.dim() != 2)
    fail(std::string("metric ") + what, "expected logits [N, V] at the prediction positions");
  if (last.size(0) != b.correct.size(0))
    fail(std::string("metric ") + what, "logits have " + std::to_string(last.size(0)) + " rows but the batch has " +
                                            std::to_string(b.correct.size(0)) + " examples");
}

// Masked sum and count over the answer sets: x [N, V], ids [N, A], mask [N, A] -> ([N], [N]).
at::Tensor gather_sum(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& mask) {
  return (x.gather(1, ids.to(x.device())) * mask.to(x.device(), x.scalar_type())).sum(1);
}

}  // namespace

const char* metric_name(Metric m) { return enum_name(kMetricNames, m); }

Metric parse_metric(const std::string& name) { return enum_parse(kMetricNames, name, "metric", "metric"); }

bool metric_higher_is_better(Metric m) { return m != Metric::KL && m != Metric::MSE; }

bool metric_needs_clean_logits(Metric m) { return m == Metric::KL || m == Metric::MSE; }

at::Tensor logits_at(const at::Tensor& logits, const at::Tensor& pos) {
  if (logits.dim() != 3 || pos.dim() != 1 || pos.size(0) != logits.size(0))
    fail("logits_at", "expected logits [N, T, V] and positions [N]");
  auto p = pos.to(logits.device(), at::kLong);
  auto rows = at::arange(logits.size(0), p.options());
  return logits.index({rows, p});  // [N, V]
}

at::Tensor logit_diff_per_example(const at::Tensor& last, const Batch& b) {
  check_last(last, b, "logit-diff");
  auto nc = b.correct_mask.sum(1).to(last.device(), last.scalar_type());
  auto ni = b.incorrect_mask.sum(1).to(last.device(), last.scalar_type()).clamp_min(1);
  return gather_sum(last, b.correct, b.correct_mask) / nc - gather_sum(last, b.incorrect, b.incorrect_mask) / ni;
}

at::Tensor prob_diff_per_example(const at::Tensor& last, const Batch& b) {
  check_last(last, b, "prob-diff");
  auto p = last.softmax(-1);
  return gather_sum(p, b.correct, b.correct_mask) - gather_sum(p, b.incorrect, b.incorrect_mask);
}

at::Tensor kl_per_example(const at::Tensor& last, const at::Tensor& clean_last) {
  if (!clean_last.defined() || clean_last.sizes() != last.sizes())
    fail("metric kl", "needs the clean run's logits [N, V] with the same shape as the logits");
  auto lq = last.log_softmax(-1);
  auto lp = clean_last.log_softmax(-1);
  return (lp.exp() * (lp - lq)).sum(-1);
}

at::Tensor accuracy_per_example(const at::Tensor& last, const Batch& b) {
  check_last(last, b, "accuracy");
  auto top = last.argmax(-1, /*keepdim=*/true);                          // [N, 1]
  auto hit = (b.correct.to(last.device()) == top) & (b.correct_mask.to(last.device()) > 0);  // [N, A]
  return hit.any(1).to(at::kFloat);
}

at::Tensor mse_per_example(const at::Tensor& last, const at::Tensor& clean_last) {
  if (!clean_last.defined() || clean_last.sizes() != last.sizes())
    fail("metric mse", "needs the clean run's outputs [N, V] with the same shape as the outputs");
  return (last - clean_last).square().mean(-1);
}

at::Tensor metric_per_example(Metric m, const at::Tensor& last, const Batch& b, const at::Tensor& clean_last) {
  switch (m) {
    case Metric::LogitDiff: return logit_diff_per_example(last, b);
    case Metric::ProbDiff: return prob_diff_per_example(last, b);
    case Metric::KL: return kl_per_example(last, clean_last);
    case Metric::Accuracy: return accuracy_per_example(last, b);
    case Metric::MSE: return mse_per_example(last, clean_last);
  }
  fail("metric", "unknown metric");
}

at::Tensor metric_mean(Metric m, const at::Tensor& last, const Batch& b, const at::Tensor& clean_last) {
  return metric_per_example(m, last, b, clean_last).mean();
}

at::Tensor metric_fn_values(const MetricFn& m, const at::Tensor& last, const Batch& b, const at::Tensor& clean_last) {
  const at::Tensor v = m.fn(last, b, m.needs_clean_logits ? clean_last : at::Tensor());
  if (!v.defined() || v.dim() != 1 || v.size(0) != last.size(0))
    fail("metric " + m.name, "a metric must return one value per example ([" + std::to_string(last.size(0)) +
                                 "]), got " + (v.defined() ? std::to_string(v.dim()) + " dimensions" : "nothing"));
  return v;
}

at::Tensor metric_fn_mean(const MetricFn& m, const at::Tensor& last, const Batch& b, const at::Tensor& clean_last) {
  return metric_fn_values(m, last, b, clean_last).mean();
}

at::Tensor metric_mean(Metric m, const MetricFn& fn, const at::Tensor& last, const Batch& b, const at::Tensor& clean_last) {
  return fn ? metric_fn_mean(fn, last, b, clean_last) : metric_mean(m, last, b, clean_last);
}
std::string metric_label(Metric m, const MetricFn& fn) { return fn ? fn.name : std::string(metric_name(m)); }
bool metric_higher_is_better(Metric m, const MetricFn& fn) { return fn ? fn.higher_is_better : metric_higher_is_better(m); }
bool metric_needs_clean_logits(Metric m, const MetricFn& fn) { return fn ? fn.needs_clean_logits : metric_needs_clean_logits(m); }

double normalized_faithfulness(double f_circuit, double f_empty, double f_model) {
  const double d = f_model - f_empty;
  if (d == 0.0) return std::numeric_limits<double>::quiet_NaN();
  return (f_circuit - f_empty) / d;
}

}  // namespace edgewise
