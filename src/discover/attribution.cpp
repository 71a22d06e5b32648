// The attribution registry, the shared data loop and gradient pass (common.h) and node
// scores. Circuits from scores and their evaluation: src/eval/evaluate.cpp. The methods
// themselves: eap.cpp, eap_ig.cpp, mask_gradient.cpp, exact.cpp.
#include <algorithm>
#include <map>
#include <numeric>

#include "common.h"
#include "edgewise/distributed.h"
#include "edgewise/error.h"

namespace edgewise {
namespace discover {

namespace {

// Rows [i, j), without the padding columns none of them uses (causal attention: they change
// nothing).
Batch trimmed_rows(const Batch& d, int64_t i, int64_t j) {
  Batch b = d.rows(i, j);
  const int64_t T = std::max(b.clean_len.max().item<int64_t>(), b.corrupted_len.max().item<int64_t>());
  b.clean = b.clean.narrow(1, 0, T).contiguous();
  b.corrupted = b.corrupted.narrow(1, 0, std::min(T, b.corrupted.size(1))).contiguous();
  return b;
}

}  // namespace

void for_each_part(const Model& model, const Graph& graph, const Batch& data, const AttributionOptions& opt,
                   const std::string& stage, const std::function<void(const Part&)>& f) {
  const int64_t N = data.size();
  if (N == 0) fail("attribution", "the dataset is empty");
  if (opt.batch_size < 1) fail("attribution", "batch size must be >= 1");
  at::Tensor mean;
  if (opt.ablation == Ablation::Mean || opt.ablation == Ablation::MeanPerPosition) {
    at::NoGradGuard ng;
    mean = dataset_mean(model, graph, opt.ablation, data.clean, data.clean_len, opt.batch_size);
  }
  // Across ranks, each takes a contiguous run of whole batches (the same batches as one rank)
  // and attribute() sums the ranks' totals.
  const dist::Range mine = dist::my_range(N, opt.batch_size);
  for (int64_t i = mine.begin; i < mine.end; i += opt.batch_size) {
    const int64_t j = std::min(mine.end, i + opt.batch_size);
    Part p;
    p.b = trimmed_rows(data, i, j);
    p.weight = static_cast<double>(j - i) / static_cast<double>(N);
    p.positions = p.b.clean_pos.unsqueeze(1);
    {
      at::NoGradGuard ng;
      if (mean.defined()) {
        p.ablated = opt.ablation == Ablation::MeanPerPosition ? mean.narrow(2, 0, p.b.clean.size(1)) : mean;
      } else {  // attribute() has checked that resample's pairs are aligned
        p.ablated = opt.double_precision && opt.ablation == Ablation::Resample
                        ? source_outputs(model, graph, p.b.corrupted, at::kDouble)
                        : ablated_values(model, graph, opt.ablation, p.b.clean, p.b.corrupted);
      }
      if (metric_needs_clean_logits(opt.metric, opt.metric_fn)) p.clean_last = logits_at(model.forward(p.b.clean), p.b.clean_pos);
    }
    f(p);
    if (opt.progress) opt.progress({stage, dist::job_progress(j - mine.begin, mine.size(), N), N, {}});
  }
}

at::Tensor part_metric(const AttributionOptions& opt, const Part& p, const at::Tensor& last) {
  return metric_mean(opt.metric, opt.metric_fn, last, p.b, p.clean_last);
}

at::Tensor keep_gradient(const Model& model, const Graph& graph, const Part& p, const at::Tensor& tokens,
                         const AttributionOptions& opt, const PatchOptions& po_in, double value,
                         const at::Tensor& override, bool last_use) {
  const at::ScalarType dt = opt.double_precision ? at::kDouble : at::kFloat;
  at::Tensor masks = override.defined() ? override.to(dt).unsqueeze(0).clone()
                                        : at::full({1, graph.n_sources(), graph.n_readers()}, value, at::TensorOptions().dtype(dt));
  at::AutoGradMode grad_on(true);  // callers may hold a NoGradGuard
  masks.requires_grad_(true);
  PatchOptions po = po_in;
  po.path = PatchOptions::Path::Dense;
  po.positions = p.positions;
  at::Tensor last = patched_forward(model, graph, tokens, p.ablated, masks, po).select(0, 0).select(1, 0);  // [b, V]
  if (last_use) p.ablated = at::Tensor();
  at::Tensor m = part_metric(opt, p, last) * p.weight;
  m.backward();
  return -masks.grad().select(0, 0).to(at::kDouble);
}

at::Tensor clean_differences(const Model& model, const Graph& graph, const Part& p) {
  at::NoGradGuard ng;
  return source_outputs(model, graph, p.b.clean, p.ablated.scalar_type()) - p.ablated;
}

at::Tensor real_edge_mask(const Graph& graph) {
  std::vector<uint8_t> r = graph.real_edges();
  return at::from_blob(r.data(), {graph.n_sources(), graph.n_readers()}, at::kByte).to(at::kDouble);
}

}  // namespace discover

namespace {

struct Entry {
  const char* key;
  at::Tensor (*fn)(const Model&, const Graph&, const Batch&, const AttributionOptions&);
};
const Entry kMethods[] = {
    {"eap", discover::eap},
    {"eap-ig-inputs", discover::eap_ig_inputs},
    {"eap-ig-activations", discover::eap_ig_activations},
    {"clean-corrupted", discover::clean_corrupted},
    {"mask-gradient", discover::mask_gradient},
    {"mask-gradient-ig", discover::mask_gradient_ig},
    {"exact", discover::exact},
};

}  // namespace

const std::vector<std::string>& attribution_methods() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Entry& e : kMethods) v.push_back(e.key);
    return v;
  }();
  return names;
}

at::Tensor attribute(const std::string& method, const Model& model, const Graph& graph, const Batch& data,
                     const AttributionOptions& opt) {
  for (const Entry& e : kMethods) {
    if (method != e.key) continue;
    if (opt.steps < 1) fail(method, "steps must be >= 1");
    const bool needs_aligned = opt.ablation == Ablation::Resample || method == "eap-ig-inputs" ||
                               method == "clean-corrupted";
    if (needs_aligned && !data.aligned)
      fail(method, "needs clean and corrupted prompts of equal token counts (this dataset has pairs that differ)");
    if (method == "clean-corrupted" && opt.ablation != Ablation::Resample)
      fail(method, "takes gradients on the corrupted prompts: use resample ablation");
    at::Tensor s = e.fn(model, graph, data, opt);
    // Every method's scores are a sum over the data's parts: across ranks, each rank's parts'
    // sum (zeros for a rank without any), summed.
    if (dist::active()) {
      if (!s.defined())
        s = method == "exact" && opt.node_level ? at::zeros({graph.n_sources()}, at::kDouble)
                                                : at::zeros({graph.n_sources(), graph.n_readers()}, at::kDouble);
      s = s.to(at::kCPU, at::kDouble).contiguous();
      dist::all_reduce_sum(s, "attribution scores");
      // In a pipeline each stage's gradients hold its own readers' columns (the rest zero): the
      // scores are their sum. Exact's are metrics every stage computed alike.
      if (method != "exact") dist::sum_over_stages(s, "attribution scores");
    }
    if (method == "exact" && opt.node_level) return s;
    s = s * discover::real_edge_mask(graph);
    return opt.node_level ? node_scores(graph, s) : s;
  }
  std::string known;
  for (const Entry& e : kMethods) known += std::string(known.empty() ? "" : ", ") + e.key;
  fail("attribution", "unknown method '" + method + "' (known: " + known + ")");
}

at::Tensor node_scores(const Graph& graph, const at::Tensor& edge_scores) {
  return (edge_scores.to(at::kDouble) * discover::real_edge_mask(graph)).sum(1);
}

}  // namespace edgewise
