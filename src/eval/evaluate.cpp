// Circuit evaluation (include/edgewise/evaluate.h): circuits from scores, one evaluation of K
// circuits with every metric, faithfulness curves with CPR / CMD, and the plain model's scores.
#include "edgewise/evaluate.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "edgewise/distributed.h"
#include "edgewise/error.h"

namespace edgewise {

// --- Circuits from scores ---------------------------------------------------------------------

at::Tensor circuit_mask(const Circuit& c) {
  std::vector<float> v(c.in_graph.begin(), c.in_graph.end());
  const Graph g = c.graph();
  return at::tensor(v).view({g.n_sources(), g.n_readers()});
}

at::Tensor circuit_scores(const Circuit& c) {
  const Graph g = c.graph();
  if (static_cast<int64_t>(c.scores.size()) != g.n_sources() * g.n_readers())
    fail("circuit", "has no scores for its graph");
  return at::tensor(c.scores).view({g.n_sources(), g.n_readers()});
}

Circuit circuit_from_scores(const Model& model, const Graph& graph, const at::Tensor& scores, const at::Tensor& kept) {
  const int64_t S = graph.n_sources(), R = graph.n_readers();
  if (scores.dim() != 2 || scores.size(0) != S || scores.size(1) != R)
    fail("circuit", "scores of shape " + std::to_string(scores.dim() == 2 ? scores.size(0) : -1) + " x " +
                        std::to_string(scores.dim() == 2 ? scores.size(1) : -1) + " do not fit the graph (" +
                        std::to_string(S) + " sources x " + std::to_string(R) + " readers)");
  Circuit c = Circuit::empty(graph.shape(), graph.split_qkv(), model.config().d_model);
  at::Tensor sf = scores.to(at::kCPU, at::kFloat).contiguous();
  c.scores.assign(sf.data_ptr<float>(), sf.data_ptr<float>() + sf.numel());
  if (kept.defined()) {
    at::Tensor kb = kept.to(at::kCPU, at::kByte).contiguous();
    c.in_graph.assign(kb.data_ptr<uint8_t>(), kb.data_ptr<uint8_t>() + kb.numel());
  }
  return c;
}

int64_t select_circuit(Circuit& c, const SelectOptions& opt) {
  const Graph g = c.graph();
  const int64_t S = g.n_sources(), R = g.n_readers();
  if (static_cast<int64_t>(c.scores.size()) != S * R) fail("select", "the circuit has no scores for this graph");
  const bool by_threshold = !std::isnan(opt.threshold);
  if ((opt.edges >= 0) + (opt.nodes >= 0) + by_threshold != 1)
    fail("select", by_threshold ? "give exactly one budget: edges, nodes or a threshold"
                                : "give exactly one budget: edges or nodes");
  if (opt.greedy && opt.edges < 0) fail("select", "greedy selection takes an edge budget");
  auto importance = [&](float s) -> double {
    if (opt.absolute) return std::abs(s);
    return opt.higher_is_better ? -s : s;
  };
  c.in_graph.assign(S * R, 0);
  int64_t chosen = 0;
  if (by_threshold) {
    for (int64_t i = 0; i < S; ++i)
      for (int64_t j = 0; j < R; ++j)
        if (g.is_edge(i, j) && importance(c.scores[i * R + j]) >= opt.threshold) {
          c.in_graph[i * R + j] = 1;
          ++chosen;
        }
  } else if (opt.nodes >= 0) {
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
      auto own = g.reader_nodes(j);
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
        for (int64_t o : g.reader_nodes(j))
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

// --- Measuring circuits -----------------------------------------------------------------------

const std::vector<double>& CircuitEvaluation::of(Metric m) const {
  switch (m) {
    case Metric::LogitDiff: return logit_diff;
    case Metric::ProbDiff: return prob_diff;
    case Metric::KL: return kl;
    case Metric::Accuracy: return accuracy;
    case Metric::MSE: return mse;
  }
  fail("evaluate", "unknown metric");
}

double CircuitEvaluation::faithfulness(Metric m, size_t k, size_t empty) const {
  const std::vector<double>& v = of(m);
  return normalized_faithfulness(v.at(k), v.at(empty), v.at(0));
}

CircuitEvaluation evaluate_circuits(const Model& model, const Graph& graph, const Batch& data, const at::Tensor& masks,
                                    const EvaluateOptions& opt) {
  at::NoGradGuard ng;
  const int64_t N = data.size();
  if (N == 0) fail("evaluate", "the dataset is empty");
  if (opt.batch_size < 1) fail("evaluate", "batch size must be >= 1");
  if (masks.dim() != 3 || masks.size(1) != graph.n_sources() || masks.size(2) != graph.n_readers())
    fail("evaluate", "masks must be [K, " + std::to_string(graph.n_sources()) + ", " +
                         std::to_string(graph.n_readers()) + "] for this graph");
  const int64_t K = masks.size(0);
  CircuitEvaluation r;
  check_batch_padding(model, data, "evaluate");
  for (auto* v : {&r.logit_diff, &r.prob_diff, &r.kl, &r.accuracy, &r.mse, &r.exact_match}) v->assign(K + 1, 0.0);
  if (opt.metric_fn) r.custom.assign(K + 1, 0.0);
  at::Tensor mean;
  if (opt.ablation == Ablation::Mean || opt.ablation == Ablation::MeanPerPosition)
    mean = dataset_mean(model, graph, opt.ablation, data.clean, data.clean_len, opt.batch_size);
  const at::Tensor all = at::cat({full_mask(graph, 1), masks.to(at::kFloat)});  // the full model first
  int64_t done = 0;
  // Across ranks: each evaluates its run of whole batches; the sums (and per-example rows, zeros
  // elsewhere) are summed below.
  const dist::Range mine = dist::my_range(N, opt.batch_size);
  if (opt.per_example)
    for (const char* key : {"logit_diff", "prob_diff", "kl", "accuracy", "mse", "exact_match"})
      r.per_example[key] = at::zeros({K + 1, N}, at::TensorOptions().dtype(at::kDouble));
  if (opt.per_example && opt.metric_fn) r.per_example["custom"] = at::zeros({K + 1, N}, at::TensorOptions().dtype(at::kDouble));
  for (int64_t i = mine.begin; i < mine.end; i += opt.batch_size) {
    const Batch b = data.rows(i, std::min(mine.end, i + opt.batch_size));
    const at::Tensor abl = mean.defined() ? mean : ablated_values(model, graph, opt.ablation, b.clean, b.corrupted);
    PatchOptions po;
    po.positions = b.clean_pos.unsqueeze(1);  // [b, 1]
    const at::Tensor last = patched_forward(model, graph, b.clean, abl, all, po).select(2, 0);  // [K + 1, b, V]
    const at::Tensor top0 = last[0].argmax(-1);
    for (int64_t k = 0; k <= K; ++k) {
      const at::Tensor ld = logit_diff_per_example(last[k], b), pd = prob_diff_per_example(last[k], b),
                       kl = kl_per_example(last[k], last[0]), acc = accuracy_per_example(last[k], b),
                       mse = mse_per_example(last[k], last[0]),
                       em = last[k].argmax(-1) == top0;
      r.logit_diff[k] += ld.sum().item<double>();
      r.prob_diff[k] += pd.sum().item<double>();
      r.kl[k] += kl.sum().item<double>();
      r.accuracy[k] += acc.sum().item<double>();
      r.mse[k] += mse.sum().item<double>();
      r.exact_match[k] += em.sum().item<double>();
      at::Tensor cu;
      if (opt.metric_fn) {
        cu = metric_fn_values(opt.metric_fn, last[k], b, last[0]);
        r.custom[k] += cu.mean().item<double>() * b.size();
      }
      if (opt.per_example) {
        auto keep = [&](const char* key, const at::Tensor& v) {
          at::Tensor& all = r.per_example[key];
          all[k].narrow(0, i, b.size()).copy_(v.detach().to(at::kCPU, at::kDouble));
        };
        keep("logit_diff", ld);
        keep("prob_diff", pd);
        keep("kl", kl);
        keep("accuracy", acc);
        keep("mse", mse);
        keep("exact_match", em);
        if (cu.defined()) keep("custom", cu);
      }
    }
    done += b.size();
    if (opt.progress) opt.progress({"examples", dist::job_progress(done, mine.size(), N), N, {}});
  }
  if (dist::active()) {
    std::vector<std::vector<double>*> sums = {&r.logit_diff, &r.prob_diff, &r.kl, &r.accuracy, &r.mse, &r.exact_match};
    if (opt.metric_fn) sums.push_back(&r.custom);
    std::vector<double> t;
    for (const auto* v : sums) t.insert(t.end(), v->begin(), v->end());
    dist::all_reduce_sum(t, "evaluation metrics");
    auto at_ = t.begin();
    for (auto* v : sums)
      for (double& x : *v) x = *at_++;
    for (auto& [key, v] : r.per_example) dist::all_reduce_sum(v, "per-example metrics");
  }
  for (auto* v : {&r.logit_diff, &r.prob_diff, &r.kl, &r.accuracy, &r.mse, &r.exact_match, &r.custom})
    for (double& x : *v) x /= static_cast<double>(N);
  return r;
}

std::vector<double> circuit_metrics(const Model& model, const Graph& graph, const Batch& data, const at::Tensor& masks,
                                    Ablation ablation, Metric metric, int64_t batch_size,
                                    const ProgressFn& progress) {
  EvaluateOptions o;
  o.ablation = ablation;
  o.batch_size = batch_size;
  o.progress = progress;
  return evaluate_circuits(model, graph, data, masks, o).of(metric);
}

// --- Faithfulness curves ----------------------------------------------------------------------

const std::vector<double>& curve_fractions() {
  static const std::vector<double> f = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0};
  return f;
}

std::vector<Circuit> curve_circuits(const Circuit& scored, const SelectOptions& rule, const std::vector<double>& fractions) {
  const int64_t n_edges = scored.graph().n_edges();
  std::vector<Circuit> out;
  for (double fr : fractions) {
    Circuit ci = scored;
    SelectOptions s = rule;
    s.nodes = -1;
    s.threshold = std::numeric_limits<double>::quiet_NaN();
    s.edges = std::max<int64_t>(1, static_cast<int64_t>(std::llround(fr * n_edges)));
    select_circuit(ci, s);
    out.push_back(std::move(ci));
  }
  return out;
}

CurvePoints sweep_curve(const std::vector<Circuit>& circuits, const std::vector<int64_t>& raw_edges, int64_t n_edges) {
  if (circuits.size() != raw_edges.size()) fail("curve", "one size per circuit of the sweep");
  std::vector<size_t> order(circuits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return raw_edges[x] < raw_edges[y]; });
  CurvePoints p;
  for (size_t i : order) {
    p.fractions.push_back(static_cast<double>(raw_edges[i]) / static_cast<double>(n_edges));
    p.circuits.push_back(circuits[i]);
  }
  return p;
}

FaithfulnessCurve faithfulness_curve(const std::vector<double>& fractions, const std::vector<Circuit>& circuits,
                                     const std::vector<double>& metric, double f_empty, double f_model, int64_t n_edges) {
  if (fractions.size() != circuits.size() || fractions.size() != metric.size())
    fail("curve", "one circuit and one metric value per fraction");
  FaithfulnessCurve c;
  for (size_t i = 0; i < fractions.size(); ++i) {
    CurvePoint p;
    p.fraction = fractions[i];
    p.budget = static_cast<int64_t>(std::llround(fractions[i] * n_edges));
    p.edges = circuits[i].n_edges_in();
    p.metric = metric[i];
    p.faithfulness = normalized_faithfulness(metric[i], f_empty, f_model);
    if (i > 0) {
      const CurvePoint& q = c.points.back();
      const double w = p.fraction - q.fraction;
      c.cpr += w * (p.faithfulness + q.faithfulness) / 2;
      c.cmd += w * (std::abs(1 - p.faithfulness) + std::abs(1 - q.faithfulness)) / 2;
    }
    c.points.push_back(p);
  }
  return c;
}

std::string FaithfulnessCurve::csv() const {
  std::ostringstream s;
  s << "fraction,edges,edges_after_prune,metric,faithfulness\n";
  for (const CurvePoint& p : points) {
    char line[200];
    std::snprintf(line, sizeof line, "%g,%lld,%lld,%.6g,%.6g\n", p.fraction, (long long)p.budget, (long long)p.edges,
                  p.metric, p.faithfulness);
    s << line;
  }
  s << "# CPR " << cpr << " CMD " << cmd << " (trapezoids over the fractions "
    << (points.empty() ? 0.0 : points.front().fraction) << ".." << (points.empty() ? 0.0 : points.back().fraction)
    << ")\n";
  return s.str();
}

// --- Scores of the plain model ----------------------------------------------------------------

at::Tensor answer_loss(const at::Tensor& logits, const Batch& b) {
  const at::Tensor last = logits_at(logits, b.clean_pos);  // [B, V]
  const at::Tensor target = b.correct.select(1, 0).to(last.device(), at::kLong);  // [B]
  return at::nll_loss(at::log_softmax(last.to(at::kFloat), -1), target);
}

TaskScore task_score(const Model& model, const Batch& data, int64_t batch_size) {
  at::NoGradGuard ng;
  if (data.size() == 0) fail("task score", "the dataset is empty");
  double ld = 0, acc = 0, loss = 0;
  const int64_t N = data.size();
  const dist::Range mine = dist::my_range(N, batch_size);  // across ranks: summed below
  for (int64_t b0 = mine.begin; b0 < mine.end; b0 += batch_size) {
    const Batch b = data.rows(b0, std::min(mine.end, b0 + batch_size));
    const at::Tensor logits = model.forward(b.clean);
    const at::Tensor last = logits_at(logits, b.clean_pos);
    ld += logit_diff_per_example(last, b).sum().item<double>();
    acc += accuracy_per_example(last, b).sum().item<double>();
    loss += answer_loss(logits, b).item<double>() * b.size();
  }
  std::vector<double> t = {ld, acc, loss};
  dist::all_reduce_sum(t, "task scores");
  ld = t[0], acc = t[1], loss = t[2];
  return {ld / N, acc / N, loss / N};
}

double perplexity(const Model& model, const std::string& text, int64_t context, int64_t batch_size) {
  if (context < 2) fail("perplexity", "the context must be at least 2 tokens");
  const std::vector<int32_t> ids = model.tokenizer().encode(text);
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < 2) fail("perplexity", "the text has fewer than 2 tokens");
  at::NoGradGuard ng;
  double nll = 0;
  int64_t count = 0;
  std::vector<std::pair<int64_t, int64_t>> windows;  // [start, length]
  for (int64_t s = 0; s + 1 < n; s += context) windows.emplace_back(s, std::min(context, n - s));
  const dist::Range mine = dist::my_range(static_cast<int64_t>(windows.size()), batch_size);  // across ranks: summed below
  for (size_t w0 = static_cast<size_t>(mine.begin); w0 < static_cast<size_t>(mine.end); w0 += batch_size) {
    const size_t w1 = std::min(static_cast<size_t>(mine.end), w0 + static_cast<size_t>(batch_size));
    // Windows of one batch have the same length except possibly the last one; run them apart.
    for (size_t i = w0; i < w1;) {
      size_t j = i;
      while (j < w1 && windows[j].second == windows[i].second) ++j;
      const int64_t len = windows[i].second;
      if (len >= 2) {
        std::vector<int64_t> flat;
        for (size_t k = i; k < j; ++k)
          flat.insert(flat.end(), ids.begin() + windows[k].first, ids.begin() + windows[k].first + len);
        const at::Tensor tok = at::tensor(flat, at::kLong).view({static_cast<int64_t>(j - i), len});
        const at::Tensor logp = at::log_softmax(model.forward(tok).narrow(1, 0, len - 1), -1);  // [B, len-1, V]
        const at::Tensor tgt = tok.narrow(1, 1, len - 1).unsqueeze(-1).to(logp.device());
        nll -= logp.gather(-1, tgt).to(at::kDouble).sum().item<double>();
        count += (j - i) * (len - 1);
      }
      i = j;
    }
  }
  std::vector<double> t = {nll, static_cast<double>(count)};
  dist::all_reduce_sum(t, "perplexity");
  nll = t[0], count = static_cast<int64_t>(t[1]);
  return std::exp(nll / static_cast<double>(count));
}

}  // namespace edgewise
