// eap and clean-corrupted: the mask gradient with every edge in (the clean run), and its
// average with the same gradient on the corrupted run (differences kept clean-vs-ablated).
// Cost of eap: the ablated run, one patched pass with gradients, its backward (2F + 1B).
#include "common.h"

namespace edgewise::discover {

at::Tensor eap(const Model& model, const Graph& graph, const Batch& data, const AttributionOptions& opt) {
  at::Tensor total;
  for_each_part(model, graph, data, opt, "eap", [&](const Part& p) {
    // At mask 1 the pass is the clean run: its own differences are the clean ones.
    at::Tensor g = keep_gradient(model, graph, p, p.b.clean, opt, {}, 1.0, {}, /*last_use=*/true);
    total = total.defined() ? total + g : g;
  });
  return total;
}

at::Tensor clean_corrupted(const Model& model, const Graph& graph, const Batch& data, const AttributionOptions& opt) {
  at::Tensor total;
  for_each_part(model, graph, data, opt, "clean-corrupted", [&](const Part& p) {
    PatchOptions po;
    po.fixed_diffs = clean_differences(model, graph, p);
    at::Tensor g = keep_gradient(model, graph, p, p.b.clean, opt, po, 1.0) +
                   keep_gradient(model, graph, p, p.b.corrupted, opt, po, 1.0);
    total = total.defined() ? total + g / 2 : g / 2;
  });
  return total;
}

}  // namespace edgewise::discover
