// Task metrics over the logits at the prediction positions: logit difference, probability
// difference, KL divergence from the clean run, accuracy, and the normalised faithfulness.
// Every metric is an at::Tensor function, differentiable where the quantity is (accuracy is
// not), with a per-example variant ([N]) and a batch mean (a scalar tensor), so attribution
// methods can take gradients through them.
//
// Not here: running the model or the patched forward; choosing which logits to compare.
// Dimension letters: N examples, T tokens, V vocabulary, A answers per example.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>

#include "edgewise/names.h"
#include "edgewise/tasks.h"

namespace edgewise {

enum class Metric {
  LogitDiff,  ///< mean logit of the correct answers minus mean logit of the incorrect ones
  ProbDiff,   ///< sum of probabilities of the correct answers minus that of the incorrect ones
  KL,         ///< KL(clean || run) of the next-token distributions (needs the clean logits)
  Accuracy,   ///< 1 when the argmax over the vocabulary is one of the correct answers
  MSE,        ///< mean squared difference from the clean run's outputs (Tracr's numerical outputs)
};
inline constexpr EnumName<Metric> kMetricNames[] = {
    {Metric::LogitDiff, "logit-diff"}, {Metric::ProbDiff, "prob-diff"}, {Metric::KL, "kl"}, {Metric::Accuracy, "accuracy"},
    {Metric::MSE, "mse"}};
const char* metric_name(Metric m);
/// By kMetricNames. Unknown -> Error listing them.
Metric parse_metric(const std::string& name);
/// True when a larger value means the circuit does the task better (false for KL and MSE).
bool metric_higher_is_better(Metric m);
/// True when the metric compares with the full model's logits (KL, MSE).
bool metric_needs_clean_logits(Metric m);

/// A metric given by the caller instead of a built-in one (any language's binding passes one):
/// per-example values [N] from the logits at the prediction positions `last` [N, V], the batch
/// (its answers), and, when needs_clean_logits, the full model's logits there `clean_last` [N, V]
/// (otherwise undefined). Differentiable in `last` for the gradient methods. The methods use the
/// batch mean, as for the built-in metrics.
struct MetricFn {
  std::function<at::Tensor(const at::Tensor& last, const Batch& b, const at::Tensor& clean_last)> fn;
  std::string name = "custom";      ///< recorded in outputs and checkpoints
  bool higher_is_better = true;     ///< ACDC's loss is its negation when true
  bool needs_clean_logits = false;  ///< pass clean_last (one more forward per batch)
  explicit operator bool() const { return static_cast<bool>(fn); }
};
/// The batch mean of a caller's metric, checked: the result must be [N] for N examples.
at::Tensor metric_fn_mean(const MetricFn& m, const at::Tensor& last, const Batch& b, const at::Tensor& clean_last);
/// The caller's metric per example ([N]), its shape checked (errors name the metric).
at::Tensor metric_fn_values(const MetricFn& m, const at::Tensor& last, const Batch& b, const at::Tensor& clean_last);

// A method's metric is `fn` when the caller set one, else the built-in `m`: one place decides.
/// Its batch mean.
at::Tensor metric_mean(Metric m, const MetricFn& fn, const at::Tensor& last, const Batch& b, const at::Tensor& clean_last);
/// Its name, as outputs and checkpoints record it.
std::string metric_label(Metric m, const MetricFn& fn);
/// Its direction.
bool metric_higher_is_better(Metric m, const MetricFn& fn);
/// Whether it reads the full model's logits (KL, or a caller's metric that asks).
bool metric_needs_clean_logits(Metric m, const MetricFn& fn);

/// The logits at each example's prediction position: [N, T, V] x [N] -> [N, V].
at::Tensor logits_at(const at::Tensor& logits, const at::Tensor& pos);

/// Per-example metrics from the logits at the prediction positions `last` [N, V].
/// With no incorrect answers in an example, its incorrect term is 0.
at::Tensor logit_diff_per_example(const at::Tensor& last, const Batch& b);   // [N]
at::Tensor prob_diff_per_example(const at::Tensor& last, const Batch& b);    // [N]
/// sum_v p_clean(v) (log p_clean(v) - log p(v)); the direction ACDC and EAP-IG use.
at::Tensor kl_per_example(const at::Tensor& last, const at::Tensor& clean_last);  // [N]
at::Tensor accuracy_per_example(const at::Tensor& last, const Batch& b);     // [N] of 0/1 floats
/// mean_v (last(v) - clean_last(v))^2: ACDC's L2 metric for Tracr's numerical outputs (one
/// output: the squared error of the number).
at::Tensor mse_per_example(const at::Tensor& last, const at::Tensor& clean_last);  // [N]

/// Any metric per example ([N]); `clean_last` [N, V] is needed for KL and MSE only.
at::Tensor metric_per_example(Metric m, const at::Tensor& last, const Batch& b,
                              const at::Tensor& clean_last = at::Tensor());
/// The batch mean (a scalar tensor).
at::Tensor metric_mean(Metric m, const at::Tensor& last, const Batch& b,
                       const at::Tensor& clean_last = at::Tensor());

/// (F(circuit) - F(empty)) / (F(model) - F(empty)). NaN when F(model) == F(empty).
double normalized_faithfulness(double f_circuit, double f_empty, double f_model);

}  // namespace edgewise
