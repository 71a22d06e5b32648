// Automated path patching (include/edgewise/path_patching.h): sweeps of sender masks through the
// patched forward, the reference's selection rule, the breadth-first receiver queue, JSON
// checkpoints and the analytic FLOP count of every pass.
#include "edgewise/path_patching.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "common.h"
#include "edgewise/circuit.h"
#include "edgewise/distributed.h"
#include "edgewise/error.h"
#include "edgewise/flops.h"

namespace edgewise {

const char* threshold_mode_name(PathPatchingOptions::Threshold t) { return enum_name(kThresholdModeNames, t); }
PathPatchingOptions::Threshold threshold_mode_from_string(const std::string& s) {
  return enum_parse(kThresholdModeNames, s, "path patching", "threshold mode");
}
const char* paths_name(PathPatchingOptions::Paths p) { return enum_name(kPathsNames, p); }
PathPatchingOptions::Paths paths_from_string(const std::string& s) {
  return enum_parse(kPathsNames, s, "path patching", "--paths");
}

namespace {

using Clock = std::chrono::steady_clock;

// The metric's mean over one part (KL against that part's clean logits).
double part_metric(Metric m, const at::Tensor& last, const Batch& b, const at::Tensor& clean_last) {
  return metric_mean(m, last, b, metric_needs_clean_logits(m) ? clean_last : at::Tensor()).item<double>();
}

void check_options(const Graph& graph, const Batch& data, const PathPatchingOptions& opt) {
  if (opt.metric == Metric::Accuracy) fail("path patching", "metric must be logit-diff, prob-diff, kl or mse (accuracy has no gradient of effect)");
  if (opt.batch_size < 1) fail("path patching", "batch size must be >= 1");
  if (opt.max_masks < 1) fail("path patching", "masks per pass must be >= 1");
  check_run_control(opt.run, "path patching");
  if (!(opt.importance_threshold >= 0)) fail("path patching", "importance threshold must be >= 0");
  if (!(opt.min_value_threshold >= 0)) fail("path patching", "min value threshold must be >= 0");
  if (!graph.split_qkv()) fail("path patching", "needs the graph with q/k/v readers (drop --head-level)");
  if (data.size() == 0) fail("path patching", "the dataset is empty");
  if (opt.ablation == Ablation::Resample && !data.aligned)
    fail("path patching", "resample ablation needs clean and corrupted prompts of equal token counts");
  const auto& sh = graph.shape();
  if (opt.allowed.defined() &&
      (opt.allowed.dim() != 2 || opt.allowed.size(0) != sh.n_layers || opt.allowed.size(1) != sh.n_heads))
    fail("path patching", "allowed senders must be [" + std::to_string(sh.n_layers) + ", " +
                              std::to_string(sh.n_heads) + "]");
}

// The reader layer of a q/k/v reader or the logits.
int64_t reader_layer(const Graph& g, int64_t r) { return g.reader(r).layer; }

}  // namespace

PathScores path_patch_scores(const Model& model, const Graph& graph, const Batch& data,
                             const std::vector<int64_t>& senders, const std::vector<int64_t>& readers,
                             const PathPatchingOptions& opt) {
  PathScores out;
  check_options(graph, data, opt);
  at::NoGradGuard ng;
  const ModelConfig& c = model.config();
  const int64_t S = graph.n_sources(), Rn = graph.n_readers(), N = data.size();
  int64_t recv_layer = graph.shape().n_layers;
  for (int64_t r : readers) {
    const auto kind = graph.reader(r).kind;
    if (kind != Graph::ReaderKind::Q && kind != Graph::ReaderKind::K && kind != Graph::ReaderKind::V &&
        kind != Graph::ReaderKind::Logits)
      fail("path patching", "receiver " + graph.reader_name(r) + " is not a q/k/v input or the logits");
    recv_layer = std::min(recv_layer, reader_layer(graph, r));
  }
  for (int64_t s : senders) {
    if (s < 0 || s >= S || graph.source(s).kind != Graph::SourceKind::Head)
      fail("path patching", "sender " + std::to_string(s) + " is not a head");
    if (graph.source(s).layer >= recv_layer)
      fail("path patching", "sender " + graph.source_name(s) + " does not come before its receivers");
  }
  const bool via = opt.paths == PathPatchingOptions::Paths::ViaMlps;
  std::vector<double> patched(senders.size(), 0.0);
  auto add_flops = [&](int64_t f) { out.flops += f; };
  const int64_t n_sweep = static_cast<int64_t>(senders.size());
  // Across ranks: each patches its run of whole batches; the metrics are summed below.
  const dist::Range mine = dist::my_range(N, opt.batch_size);
  for (int64_t i = mine.begin; i < mine.end && n_sweep > 0; i += opt.batch_size) {
    Batch b = data.rows(i, std::min(mine.end, i + opt.batch_size));
    // Trim to the longest prompt of the part.
    const int64_t T = std::max(b.clean_len.max().item<int64_t>(), b.corrupted_len.max().item<int64_t>());
    b.clean = b.clean.narrow(1, 0, T);
    b.corrupted = b.corrupted.narrow(1, 0, T);
    const int64_t bn = b.size();
    const double weight = static_cast<double>(bn) / N;
    const CleanCache cache = clean_cache(model, graph, b.clean);
    add_flops(c.n_layers * layer_flops(c, bn, T));
    at::Tensor ablated = ablated_values(model, graph, opt.ablation, b.clean, b.corrupted, b.clean_len);
    if (opt.ablation == Ablation::Resample) add_flops(c.n_layers * layer_flops(c, bn, T));
    if (via) {
      // MLPs' changed outputs reach everything but the receivers (and later MLPs) as their clean values.
      ablated = ablated.expand({S, bn, T, c.d_model}).clone();
      for (int64_t l = 0; l < c.n_layers; ++l) {
        const int64_t m = graph.mlp_source(l);
        ablated[m].copy_(cache.sources[m]);
      }
    }
    at::Tensor positions = b.clean_pos.unsqueeze(1);
    // The clean logits at the prediction positions from the cache's final residual.
    PatchOptions po;
    po.path = PatchOptions::Path::Sparse;
    po.cache = &cache;
    po.positions = positions;
    at::Tensor clean_last = patched_forward(model, graph, b.clean, ablated, full_mask(graph, 1), po)[0].select(1, 0);
    add_flops(unembed_flops(c, bn, 1));
    for (int64_t k0 = 0; k0 < n_sweep; k0 += opt.max_masks) {
      const int64_t K = std::min(opt.max_masks, n_sweep - k0);
      at::Tensor masks = at::ones({K, S, Rn});
      auto acc = masks.accessor<float, 3>();
      int64_t from = c.n_layers;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t s = senders[k0 + k];
        const int64_t ls = graph.source(s).layer;
        for (int64_t r : readers) acc[k][s][r] = 0;
        from = std::min(from, recv_layer);
        if (via) {
          // The sender into the MLPs between it and the receivers; those MLPs into every reader
          // except the receivers and the MLPs between.
          std::set<int64_t> keep(readers.begin(), readers.end());
          for (int64_t l = ls; l < recv_layer; ++l) {
            const int64_t mr = *graph.find_reader("m" + std::to_string(l));
            keep.insert(mr);
            acc[k][s][mr] = 0;
          }
          for (int64_t l = ls; l < recv_layer; ++l) {
            const int64_t m = graph.mlp_source(l);
            for (int64_t r = 0; r < Rn; ++r)
              if (graph.is_edge(m, r) && !keep.count(r)) acc[k][m][r] = 0;
          }
          from = std::min(from, ls);
        }
      }
      at::Tensor last = patched_forward(model, graph, b.clean, ablated, masks, po).select(2, 0);  // [K, b, V]
      add_flops(forward_flops(c, K * bn, T, from, 1));
      ++out.passes;
      for (int64_t k = 0; k < K; ++k) patched[k0 + k] += weight * part_metric(opt.metric, last[k], b, clean_last);
    }
  }
  if (dist::active() && n_sweep > 0) {  // the job's metrics, flops and passes
    patched.push_back(static_cast<double>(out.flops));
    patched.push_back(static_cast<double>(out.passes));
    dist::all_reduce_sum(patched, "path patching's metrics");
    out.passes = static_cast<int64_t>(patched.back());
    patched.pop_back();
    out.flops = static_cast<int64_t>(patched.back());
    patched.pop_back();
  }
  out.metric = std::move(patched);
  return out;  // raw metrics; path_patching normalises (the scores of one sweep share M(clean))
}

std::vector<int64_t> select_senders(const Graph& graph, const std::vector<int64_t>& senders,
                                    const std::vector<double>& scores, int64_t receiver_layer,
                                    const PathPatchingOptions& opt) {
  const int64_t n = static_cast<int64_t>(scores.size());
  std::vector<int64_t> out;
  if (n == 0) return out;
  double mean = 0;
  for (double s : scores) mean += s;
  mean /= n;
  double var = 0;
  for (double s : scores) var += (s - mean) * (s - mean);
  const double sd = n > 1 ? std::sqrt(var / (n - 1)) : 0.0;
  const int64_t H = graph.shape().n_heads;
  for (int64_t i = 0; i < n; ++i) {
    const double a = std::fabs(scores[i]);
    if (!(a > opt.min_value_threshold)) continue;
    const int64_t l = graph.source(senders[i]).layer;
    double base = opt.importance_threshold;
    if (opt.threshold == PathPatchingOptions::Threshold::Linear)
      base += 0.1 * std::fabs(static_cast<double>(l + 1 - receiver_layer));
    else if (opt.threshold == PathPatchingOptions::Threshold::Sqrt)
      base += 2.0 / std::sqrt(static_cast<double>((l + 1) * H));
    if (a - std::fabs(mean) > base * sd) out.push_back(i);
  }
  return out;
}

PathPatchingResult path_patching(const Model& model, const Graph& graph, const Batch& data,
                                 const PathPatchingOptions& opt) {
  check_options(graph, data, opt);
  at::NoGradGuard ng;
  const auto t0 = Clock::now();
  const ModelConfig& c = model.config();
  const int64_t L = c.n_layers, H = c.n_heads, G = c.n_kv_heads;
  const int64_t logits = graph.n_readers() - 1;
  PathPatchingResult res;
  res.heads = at::zeros({L, H}, at::kBool);
  auto allowed = [&](int64_t l, int64_t h) {
    return !opt.allowed.defined() || opt.allowed[l][h].item<bool>();
  };
  // M(clean) and M(corrupted): one run of each.
  {
    const dist::Range mine = dist::my_range(data.size(), opt.batch_size);  // across ranks: summed below
    for (int64_t i = mine.begin; i < mine.end; i += opt.batch_size) {
      Batch b = data.rows(i, std::min(mine.end, i + opt.batch_size));
      const double w = static_cast<double>(b.size()) / data.size();
      at::Tensor cl = logits_at(model.forward(b.clean), b.clean_pos);
      at::Tensor co = logits_at(model.forward(b.corrupted), b.corrupted_pos);
      res.metric_clean += w * part_metric(opt.metric, cl, b, cl);
      res.metric_corrupted += w * part_metric(opt.metric, co, b, cl);
      res.flops += 2 * forward_flops(c, b.size(), b.clean.size(1), 0, b.clean.size(1));
    }
    if (dist::active()) {
      std::vector<double> t = {res.metric_clean, res.metric_corrupted, static_cast<double>(res.flops)};
      dist::all_reduce_sum(t, "path patching's clean and corrupted metrics");
      res.metric_clean = t[0], res.metric_corrupted = t[1], res.flops = static_cast<int64_t>(t[2]);
    }
  }
  const double denom = res.metric_clean - res.metric_corrupted;
  if (!(std::fabs(denom) > 0))
    fail("path patching", "the metric is the same on clean and corrupted prompts (" + std::to_string(res.metric_clean) +
                              "): nothing to patch");

  nlohmann::json fp = {{"user", opt.run.fingerprint},
                       {"metric", metric_name(opt.metric)},
                       {"ablation", ablation_name(opt.ablation)},
                       {"paths", paths_name(opt.paths)},
                       {"threshold", threshold_mode_name(opt.threshold)},
                       {"importance", opt.importance_threshold},
                       {"min_value", opt.min_value_threshold},
                       {"graph", {L, H, G}},
                       {"examples", data.size()},
                       {"tokens", std::to_string(discover::fnv1a(data.clean)) + "/" + std::to_string(discover::fnv1a(data.corrupted))}};
  if (opt.allowed.defined()) {
    std::vector<int> al;
    at::Tensor a = opt.allowed.to(at::kInt).contiguous();
    for (int64_t i = 0; i < a.numel(); ++i) al.push_back(a.data_ptr<int>()[i]);
    fp["allowed"] = al;
  }

  // State: the queue of receiver heads, the heads already expanded, the readers already swept.
  std::deque<std::pair<int64_t, int64_t>> queue;
  std::set<std::pair<int64_t, int64_t>> expanded;
  std::set<int64_t> swept;
  double seconds_before = 0;
  bool started = false;
  if (nlohmann::json ck = discover::open_json_checkpoint(opt.run.checkpoint, opt.run.resume, "edgewise-path-patching-checkpoint",
                                                       fp, "path-patching");
      !ck.is_null()) {
    try {
      for (const auto& q : ck.at("queue")) queue.push_back({q.at(0).get<int64_t>(), q.at(1).get<int64_t>()});
      for (const auto& q : ck.at("expanded")) expanded.insert({q.at(0).get<int64_t>(), q.at(1).get<int64_t>()});
      for (const auto& q : ck.at("heads")) res.heads[q.at(0).get<int64_t>()][q.at(1).get<int64_t>()] = true;
      for (const auto& sw : ck.at("sweeps")) {
        PathSweep p;
        p.reader = sw.at("reader").get<int64_t>();
        p.senders = sw.at("senders").get<std::vector<int64_t>>();
        p.scores = sw.at("scores").get<std::vector<double>>();
        p.selected = sw.at("selected").get<std::vector<int64_t>>();
        swept.insert(p.reader);
        res.sweeps.push_back(std::move(p));
      }
      res.steps = ck.at("steps").get<int64_t>();
      res.evaluations = ck.at("evaluations").get<int64_t>();
      res.passes = ck.at("passes").get<int64_t>();
      res.flops = ck.at("flops").get<int64_t>();
      seconds_before = ck.at("seconds").get<double>();
      started = true;
    } catch (const std::exception& ex) {
      fail(opt.run.checkpoint, std::string("damaged path-patching checkpoint (") + ex.what() + ")");
    }
  }
  CheckpointClock ck_clock(opt.run);
  auto save = [&]() {
    if (opt.run.checkpoint.empty() || !dist::is_root()) return;  // rank 0 writes
    nlohmann::json ck = {{"format", "edgewise-path-patching-checkpoint"}, {"version", 1}, {"fingerprint", fp},
                         {"steps", res.steps}, {"evaluations", res.evaluations}, {"passes", res.passes},
                         {"flops", res.flops},
                         {"seconds", seconds_before + std::chrono::duration<double>(Clock::now() - t0).count()}};
    nlohmann::json q = nlohmann::json::array(), e = nlohmann::json::array(), h = nlohmann::json::array(),
                   sw = nlohmann::json::array();
    for (auto [l, hh] : queue) q.push_back({l, hh});
    for (auto [l, hh] : expanded) e.push_back({l, hh});
    for (int64_t l = 0; l < L; ++l)
      for (int64_t hh = 0; hh < H; ++hh)
        if (res.heads[l][hh].item<bool>()) h.push_back({l, hh});
    for (const PathSweep& p : res.sweeps)
      sw.push_back({{"reader", p.reader}, {"senders", p.senders}, {"scores", p.scores}, {"selected", p.selected}});
    ck["queue"] = q;
    ck["expanded"] = e;
    ck["heads"] = h;
    ck["sweeps"] = sw;
    write_file_atomic(opt.run.checkpoint, ck.dump());
    ck_clock.saved();
  };

  // One sweep into `reader`: scores normalised, senders selected; returns the selected heads.
  auto sweep = [&](int64_t reader) {
    const int64_t rl = reader_layer(graph, reader);
    PathSweep p;
    p.reader = reader;
    for (int64_t l = 0; l < rl; ++l)
      for (int64_t h = 0; h < H; ++h)
        if (allowed(l, h)) p.senders.push_back(graph.head_source(l, h));
    const PathScores ps = path_patch_scores(model, graph, data, p.senders, {reader}, opt);
    res.flops += ps.flops;
    res.passes += ps.passes;
    const std::vector<double>& m = ps.metric;
    res.evaluations += static_cast<int64_t>(p.senders.size());
    for (double v : m) p.scores.push_back((v - res.metric_clean) / denom);
    // The reference counts skipped (not allowed) heads as zero scores in the statistics.
    std::vector<int64_t> all;
    std::vector<double> all_scores;
    for (int64_t l = 0; l < rl; ++l)
      for (int64_t h = 0; h < H; ++h) {
        all.push_back(graph.head_source(l, h));
        all_scores.push_back(0.0);
      }
    for (size_t i = 0; i < p.senders.size(); ++i) {
      const auto& src = graph.source(p.senders[i]);
      all_scores[src.layer * H + src.head] = p.scores[i];
    }
    std::vector<int64_t> sel_all = select_senders(graph, all, all_scores, rl, opt);
    std::vector<std::pair<int64_t, int64_t>> heads;
    for (int64_t i : sel_all) {
      const auto& src = graph.source(all[i]);
      if (!allowed(src.layer, src.head)) continue;
      auto it = std::find(p.senders.begin(), p.senders.end(), all[i]);
      p.selected.push_back(static_cast<int64_t>(it - p.senders.begin()));
      heads.push_back({src.layer, src.head});
    }
    swept.insert(reader);
    res.sweeps.push_back(std::move(p));
    return heads;
  };
  auto enqueue = [&](const std::vector<std::pair<int64_t, int64_t>>& heads) {
    for (auto lh : heads) {
      if (expanded.count(lh) || std::find(queue.begin(), queue.end(), lh) != queue.end()) continue;
      queue.push_back(lh);
    }
  };

  // Progress: receivers taken from the queue (the total grows as heads join, so it is reported
  // as done + queued).
  auto report = [&](int64_t n_heads) {
    const auto queued = static_cast<int64_t>(queue.size());
    opt.run.report({"receivers", res.steps, res.steps + queued,
                    {{"heads", static_cast<double>(n_heads)}, {"queued", static_cast<double>(queued)},
                     {"evaluations", static_cast<double>(res.evaluations)}}});
  };
  if (!started) {
    enqueue(sweep(logits));
    report(0);
  }
  const int64_t group = H / G;
  while (!queue.empty()) {
    if (dist::any(opt.run.stopping(), "path patching's stop request")) {
      save();
      res.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - t0).count();
      return res;
    }
    auto [l, h] = queue.front();
    queue.pop_front();
    ++res.steps;
    res.heads[l][h] = true;
    if (!expanded.count({l, h}) && l > 0) {
      expanded.insert({l, h});
      const std::string base = "a" + std::to_string(l) + ".";
      const std::string names[3] = {base + "h" + std::to_string(h) + "<q>",
                                    base + (graph.grouped() ? "kv" + std::to_string(h / group) : "h" + std::to_string(h)) + "<k>",
                                    base + (graph.grouped() ? "kv" + std::to_string(h / group) : "h" + std::to_string(h)) + "<v>"};
      for (const std::string& nm : names) {
        const int64_t r = *graph.find_reader(nm);
        if (swept.count(r)) continue;  // a key/value head shared with a head expanded before
        enqueue(sweep(r));
      }
    }
    int64_t n_heads = res.heads.sum().item<int64_t>();
    report(n_heads);
    if (ck_clock.due()) save();
  }
  res.complete = true;
  res.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - t0).count();
  save();
  return res;
}

}  // namespace edgewise
