// EAP-IG (Hanna et al. 2024): the mask gradient averaged along a path from the ablated to the
// clean run, the differences fixed to clean-vs-ablated.
//   inputs:      input embeddings õ_input + k/steps (e_clean - õ_input), k = 0 .. steps-1
//                (with resample, õ_input is the corrupted prompt's embeddings)
//   activations: for each node group (input; layer l's heads; MLP l) in turn, its out-edges at
//                mask k/steps, k = 1 .. steps: the group's output in the residual is
//                k/steps o + (1 - k/steps) õ for every reader, held constant (no gradient
//                through the group, as EAP-IG's stored activations); (2L + 1) * steps passes
#include "common.h"

namespace edgewise::discover {

at::Tensor eap_ig_inputs(const Model& model, const Graph& graph, const Batch& data, const AttributionOptions& opt) {
  at::Tensor total;
  for_each_part(model, graph, data, opt, "eap-ig-inputs", [&](const Part& p) {
    PatchOptions po;
    po.fixed_diffs = clean_differences(model, graph, p);  // [n_src, b, T, D]
    const at::Tensor diff_in = po.fixed_diffs.select(0, 0);  // e_clean - õ_input  [b, T, D]
    const at::Tensor base = (p.ablated.select(0, 0) + at::zeros_like(diff_in));  // õ_input [b, T, D]
    for (int64_t k = 0; k < opt.steps; ++k) {
      po.embeddings = base + (static_cast<double>(k) / static_cast<double>(opt.steps)) * diff_in;
      at::Tensor g = keep_gradient(model, graph, p, p.b.clean, opt, po, 1.0);
      total = total.defined() ? total + g : g;
    }
  });
  return total / static_cast<double>(opt.steps);
}

at::Tensor eap_ig_activations(const Model& model, const Graph& graph, const Batch& data,
                              const AttributionOptions& opt) {
  const int64_t L = graph.shape().n_layers, H = graph.shape().n_heads;
  // Node groups as source ranges [first, first + n): input, then per layer the heads, the MLP.
  std::vector<std::pair<int64_t, int64_t>> groups = {{0, 1}};
  for (int64_t l = 0; l < L; ++l) {
    groups.push_back({graph.head_source(l, 0), H});
    groups.push_back({graph.mlp_source(l), 1});
  }
  at::Tensor total;
  for_each_part(model, graph, data, opt, "eap-ig-activations", [&](const Part& p) {
    PatchOptions po;
    po.fixed_diffs = clean_differences(model, graph, p);
    for (auto [first, n] : groups)
      for (int64_t k = 1; k <= opt.steps; ++k) {
        at::Tensor m = at::ones({graph.n_sources(), graph.n_readers()}, at::kDouble);  // k/steps exactly
        m.narrow(0, first, n).fill_(static_cast<double>(k) / static_cast<double>(opt.steps));
        // The group's interpolated outputs are constants (stored activations in EAP-IG): no
        // gradient flows back through them.
        po.detach_sources = at::zeros({graph.n_sources()}, at::kBool);
        po.detach_sources.narrow(0, first, n).fill_(true);
        at::Tensor g = keep_gradient(model, graph, p, p.b.clean, opt, po, 1.0, m);
        total = total.defined() ? total + g : g;
      }
  });
  return total / static_cast<double>(groups.size() * opt.steps);
}

}  // namespace edgewise::discover
