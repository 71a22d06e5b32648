// exact: M(e ablated) - M(full) for every edge (or source node), by the patched forward itself:
// exact_masks single-edge masks per pass on the sparse path, starting at the first layer
// any of them touches (downstream-only recompute from the clean cache). Edges are visited
// by reader, latest layer first, so a pass's masks share their start layer.
#include "common.h"

#include "edgewise/error.h"

namespace edgewise::discover {

at::Tensor exact(const Model& model, const Graph& graph, const Batch& data, const AttributionOptions& opt) {
  const int64_t S = graph.n_sources(), R = graph.n_readers();
  if (opt.exact_masks < 1) fail("exact", "masks per pass must be >= 1");
  // The units ablated one at a time: edges (s, d) or source nodes s (d = -1).
  std::vector<std::pair<int64_t, int64_t>> units;
  if (opt.node_level) {
    for (int64_t s = S - 1; s >= 0; --s) units.push_back({s, -1});
  } else {
    at::Tensor cand;
    if (opt.exact_candidates.defined()) {
      if (opt.exact_candidates.dim() != 2 || opt.exact_candidates.size(0) != S || opt.exact_candidates.size(1) != R)
        fail("exact", "candidates must be [" + std::to_string(S) + ", " + std::to_string(R) + "]");
      cand = opt.exact_candidates.to(at::kByte).contiguous();
    }
    const uint8_t* cp = cand.defined() ? cand.data_ptr<uint8_t>() : nullptr;
    for (int64_t d = R - 1; d >= 0; --d)
      for (int64_t s = 0; s < graph.reader_fan_in(d); ++s)
        if (!cp || cp[s * R + d]) units.push_back({s, d});
  }
  at::Tensor scores = opt.node_level ? at::zeros({S}, at::kDouble) : at::zeros({S, R}, at::kDouble);
  at::NoGradGuard ng;
  const int64_t n_units = static_cast<int64_t>(units.size());
  int64_t parts_done = 0;
  const int64_t n_parts = (data.size() + opt.batch_size - 1) / opt.batch_size;
  AttributionOptions quiet = opt;
  quiet.progress = nullptr;  // progress counts passes over all parts instead
  for_each_part(model, graph, data, quiet, "exact", [&](const Part& p) {
    const CleanCache cache = clean_cache(model, graph, p.b.clean);
    PatchOptions po;
    po.path = PatchOptions::Path::Sparse;
    po.cache = &cache;
    po.positions = p.positions;
    const double full = part_metric(opt, p, logits_at(model.forward(p.b.clean), p.b.clean_pos)).item<double>();
    for (int64_t u0 = 0; u0 < n_units; u0 += opt.exact_masks) {
      const int64_t K = std::min(opt.exact_masks, n_units - u0);
      at::Tensor masks = at::ones({K, S, R});
      for (int64_t k = 0; k < K; ++k) {
        auto [s, d] = units[u0 + k];
        if (d < 0) masks[k][s].fill_(0.0);
        else masks[k][s][d] = 0.0;
      }
      at::Tensor last = patched_forward(model, graph, p.b.clean, p.ablated, masks, po).select(2, 0);  // [K, b, V]
      for (int64_t k = 0; k < K; ++k) {
        const double v = part_metric(opt, p, last[k]).item<double>();
        auto [s, d] = units[u0 + k];
        const double delta = (v - full) * p.weight;
        if (d < 0) scores[s] += delta;
        else scores[s][d] += delta;
      }
      if (opt.progress) opt.progress({"exact", parts_done * n_units + u0 + K, n_parts * n_units, {}});
    }
    ++parts_done;
  });
  return scores;
}

}  // namespace edgewise::discover
