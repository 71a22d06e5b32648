// The attribution registry, the shared data loop and gradient pass (common.h), node scores,
// and circuits from scores. The methods themselves: eap.cpp, eap_ig.cpp, mask_gradient.cpp,
// exact.cpp.
#include <algorithm>
#include <map>
#include <numeric>

#include "common.h"
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
  for (int64_t i = 0; i < N; i += opt.batch_size) {
    const int64_t j = std::min(N, i + opt.batch_size);
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
      if (opt.metric == Metric::KL) p.clean_last = logits_at(model.forward(p.b.clean), p.b.clean_pos);
    }
    f(p);
    if (opt.progress) opt.progress(stage, j, N);
  }
}

at::Tensor part_metric(const AttributionOptions& opt, const Part& p, const at::Tensor& last) {
  return metric_mean(opt.metric, last, p.b, p.clean_last);
}

at::Tensor keep_gradient(const Model& model, const Graph& graph, const Part& p, const at::Tensor& tokens,
                         const AttributionOptions& opt, const PatchOptions& po_in, double value,
                         const at::Tensor& override) {
  const at::ScalarType dt = opt.double_precision ? at::kDouble : at::kFloat;
  at::Tensor masks = override.defined() ? override.to(dt).unsqueeze(0).clone()
                                        : at::full({1, graph.n_sources(), graph.n_readers()}, value, at::TensorOptions().dtype(dt));
  at::AutoGradMode grad_on(true);  // callers may hold a NoGradGuard
  masks.requires_grad_(true);
  PatchOptions po = po_in;
  po.path = PatchOptions::Path::Dense;
  po.positions = p.positions;
  at::Tensor last = patched_forward(model, graph, tokens, p.ablated, masks, po).select(0, 0).select(1, 0);  // [b, V]
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
    if (method == "exact" && opt.node_level) return s;
    s = s * discover::real_edge_mask(graph);
    return opt.node_level ? node_scores(graph, s) : s;
  }
  std::string known;
  for (const Entry& e : kMethods) known += std::string(known.empty() ? "" : ", ") + e.key;
  fail("attribution", "unknown method '" + method + "' (known: " + known + ")");
}

namespace discover {

void for_each_circuit_batch(const Model& model, const Graph& graph, const Batch& data, const at::Tensor& masks,
                            Ablation ablation, int64_t batch_size,
                            const std::function<void(const Batch&, const at::Tensor&)>& f) {
  at::NoGradGuard ng;
  const int64_t N = data.size();
  if (N == 0) fail("evaluate", "the dataset is empty");
  if (batch_size < 1) fail("evaluate", "batch size must be >= 1");
  at::Tensor mean;
  if (ablation == Ablation::Mean || ablation == Ablation::MeanPerPosition)
    mean = dataset_mean(model, graph, ablation, data.clean, data.clean_len, batch_size);
  const at::Tensor all = at::cat({full_mask(graph, 1), masks.to(at::kFloat)});  // the full model first
  for (int64_t i = 0; i < N; i += batch_size) {
    const Batch b = data.rows(i, std::min(N, i + batch_size));
    at::Tensor abl = mean.defined() ? mean : ablated_values(model, graph, ablation, b.clean, b.corrupted);
    PatchOptions po;
    po.positions = b.clean_pos.unsqueeze(1);  // [b, 1]
    f(b, patched_forward(model, graph, b.clean, abl, all, po).select(2, 0));  // [K + 1, b, V]
  }
}

}  // namespace discover

std::vector<double> circuit_metrics(const Model& model, const Graph& graph, const Batch& data, const at::Tensor& masks,
                                    Ablation ablation, Metric metric, int64_t batch_size,
                                    const std::function<void(int64_t)>& progress) {
  const int64_t K = masks.size(0);
  std::vector<double> sum(K + 1, 0.0);
  int64_t done = 0;
  discover::for_each_circuit_batch(model, graph, data, masks, ablation, batch_size, [&](const Batch& b, const at::Tensor& last) {
    for (int64_t k = 0; k <= K; ++k) sum[k] += metric_per_example(metric, last[k], b, last[0]).sum().item<double>();
    done += b.size();
    if (progress) progress(done);
  });
  for (double& v : sum) v /= static_cast<double>(data.size());
  return sum;
}

at::Tensor node_scores(const Graph& graph, const at::Tensor& edge_scores) {
  return (edge_scores.to(at::kDouble) * discover::real_edge_mask(graph)).sum(1);
}

namespace {

// The source nodes that own reader j (a head for q/k/v or head-level readers; every head of a
// key/value group for a grouped k/v reader; the MLP; none for the logits).
std::vector<int64_t> owners(const Graph& g, int64_t j) {
  const Graph::Reader& r = g.reader(j);
  const GraphShape& s = g.shape();
  switch (r.kind) {
    case Graph::ReaderKind::Q:
    case Graph::ReaderKind::Head: return {g.head_source(r.layer, r.head)};
    case Graph::ReaderKind::K:
    case Graph::ReaderKind::V: {
      if (s.n_kv_heads == s.n_heads) return {g.head_source(r.layer, r.head)};
      std::vector<int64_t> o;
      const int64_t per = s.n_heads / s.n_kv_heads;
      for (int64_t h = r.head * per; h < (r.head + 1) * per; ++h) o.push_back(g.head_source(r.layer, h));
      return o;
    }
    case Graph::ReaderKind::Mlp: return {g.mlp_source(r.layer)};
    case Graph::ReaderKind::Logits: return {};
  }
  return {};
}

}  // namespace

int64_t select_circuit(Circuit& c, const SelectOptions& opt) {
  const Graph g = c.graph();
  const int64_t S = g.n_sources(), R = g.n_readers();
  if (static_cast<int64_t>(c.scores.size()) != S * R) fail("select", "the circuit has no scores for this graph");
  if ((opt.edges < 0) == (opt.nodes < 0)) fail("select", "give exactly one budget: edges or nodes");
  auto importance = [&](float s) -> double {
    if (opt.absolute) return std::abs(s);
    return opt.higher_is_better ? -s : s;
  };
  c.in_graph.assign(S * R, 0);
  int64_t chosen = 0;
  if (opt.nodes >= 0) {
    // Source nodes by the importance of their summed score; input always in.
    std::vector<double> node(S, 0.0);
    for (int64_t i = 0; i < S; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < R; ++j)
        if (g.is_edge(i, j)) sum += c.scores[i * R + j];
      node[i] = importance(static_cast<float>(sum));
    }
    std::vector<int64_t> order(S - 1);
    std::iota(order.begin(), order.end(), 1);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return node[a] > node[b]; });
    std::vector<uint8_t> keep(S, 0);
    keep[0] = 1;
    for (int64_t k = 0; k < std::min<int64_t>(opt.nodes, S - 1); ++k) keep[order[k]] = 1;
    for (int64_t j = 0; j < R; ++j) {
      auto own = owners(g, j);
      bool reader_in = own.empty();
      for (int64_t o : own) reader_in = reader_in || keep[o];
      if (!reader_in) continue;
      for (int64_t i = 0; i < S; ++i)
        if (keep[i] && g.is_edge(i, j)) {
          c.in_graph[i * R + j] = 1;
          ++chosen;
        }
    }
  } else if (!opt.greedy) {
    std::vector<int64_t> edges;
    for (int64_t i = 0; i < S; ++i)
      for (int64_t j = 0; j < R; ++j)
        if (g.is_edge(i, j)) edges.push_back(i * R + j);
    const int64_t n = std::min<int64_t>(opt.edges, static_cast<int64_t>(edges.size()));
    std::partial_sort(edges.begin(), edges.begin() + n, edges.end(), [&](int64_t a, int64_t b) {
      const double ia = importance(c.scores[a]), ib = importance(c.scores[b]);
      return ia != ib ? ia > ib : a < b;
    });
    for (int64_t k = 0; k < n; ++k) c.in_graph[edges[k]] = 1;
    chosen = n;
  } else {
    // Greedy: the candidates are the edges into readers owned by nodes already in the circuit
    // (the logits from the start); take the best, its source joins, repeat.
    std::vector<uint8_t> node_in(S, 0);
    std::vector<uint8_t> reader_open(R, 0);
    reader_open[R - 1] = 1;  // logits
    auto open_readers_of = [&](int64_t src) {
      for (int64_t j = 0; j < R; ++j)
        for (int64_t o : owners(g, j))
          if (o == src) reader_open[j] = 1;
    };
    while (chosen < opt.edges) {
      int64_t best = -1;
      double best_v = -1;
      for (int64_t j = 0; j < R; ++j) {
        if (!reader_open[j]) continue;
        for (int64_t i = 0; i < g.reader_fan_in(j); ++i) {
          const int64_t e = i * R + j;
          if (c.in_graph[e]) continue;
          const double v = importance(c.scores[e]);
          if (v > best_v) {
            best_v = v;
            best = e;
          }
        }
      }
      if (best < 0) break;
      c.in_graph[best] = 1;
      ++chosen;
      const int64_t src = best / R;
      if (!node_in[src]) {
        node_in[src] = 1;
        open_readers_of(src);
      }
    }
  }
  c.prune();
  return chosen;
}

}  // namespace edgewise
