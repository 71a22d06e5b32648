// Mask gradients as auto-circuit defines them: -dM/dmask with every mask at one value (the
// differences are the pass's own, so below 1 they include the ablation's downstream effects),
// and integrated over mask values k/steps, k = 1 .. steps.
#include "common.h"

#include "edgewise/error.h"

namespace edgewise::discover {

at::Tensor mask_gradient(const Model& model, const Graph& graph, const Batch& data, const AttributionOptions& opt) {
  if (opt.mask_value < 0 || opt.mask_value > 1) fail("mask-gradient", "mask value must lie in [0, 1]");
  at::Tensor total;
  for_each_part(model, graph, data, opt, "mask-gradient", [&](const Part& p) {
    at::Tensor g = keep_gradient(model, graph, p, p.b.clean, opt, {}, opt.mask_value, {}, /*last_use=*/true);
    total = total.defined() ? total + g : g;
  });
  return total;
}

at::Tensor mask_gradient_ig(const Model& model, const Graph& graph, const Batch& data, const AttributionOptions& opt) {
  at::Tensor total;
  for_each_part(model, graph, data, opt, "mask-gradient-ig", [&](const Part& p) {
    for (int64_t k = 1; k <= opt.steps; ++k) {
      at::Tensor g = keep_gradient(model, graph, p, p.b.clean, opt, {}, static_cast<double>(k) / opt.steps);
      total = total.defined() ? total + g : g;
    }
  });
  return total / static_cast<double>(opt.steps);
}

}  // namespace edgewise::discover
