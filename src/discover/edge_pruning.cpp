// Edge Pruning (include/edgewise/edge_pruning.h, docs/EDGE_PRUNING.md): the objective, the
// optimiser, the training loop with its data cache and checkpoints, and the discretisation.
#include "edgewise/edge_pruning.h"
#include "edgewise/distributed.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common.h"
#include "edgewise/error.h"
#include "edgewise/hard_concrete.h"
#include "edgewise/metrics.h"
#include "edgewise/safetensors.h"

namespace edgewise {

namespace {

constexpr int64_t kInput = 0;  // the input's source index (graph.h)

// [n_src, n_dst] bool: the graph's real edges.
at::Tensor real_edges(const Graph& graph) { return discover::real_edge_mask(graph).to(at::kBool); }

// [n_src] bool: the source nodes whose mask is learned (all but the input when its edges are kept).
at::Tensor node_valid(const Graph& graph, bool keep_embedding_edges) {
  at::Tensor v = at::ones({graph.n_sources()}, at::kBool);
  if (keep_embedding_edges) v[kInput] = false;
  return v;
}

constexpr const char* kFormat = "edgewise-edge-pruning-checkpoint";

// Step k's noise and epoch e's order each have their own generator (optim.h's
// seeded_generator), so a resumed run redraws them without any saved generator state.
constexpr uint64_t kNoiseStream = 0;

// HF's linear schedule with warm-up: step k (0-based) uses lr x k / warmup during warm-up, then
// decays linearly to 0 at `total`.
double lr_factor(int64_t k, int64_t warmup, int64_t total) {
  if (k < warmup) return static_cast<double>(k) / static_cast<double>(std::max<int64_t>(1, warmup));
  return std::max(0.0, static_cast<double>(total - k) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
}

// The target rises linearly over `warmup` steps from `start` (0 for Edge Pruning; the share of
// edges a prefilter removed for HAP, which is where its sparsity starts) to `final_target`.
double target_at(double final_target, int64_t k, int64_t warmup, double start = 0.0) {
  if (warmup <= 0) return final_target;
  // With start 0 this is final_target x f to the bit (0 + x and x - 0 are exact).
  return start + (final_target - start) * std::min(1.0, static_cast<double>(k) / static_cast<double>(warmup));
}

at::Tensor from_st(const StTensor& t) {
  if (t.dtype != StDType::F32) fail("checkpoint", "tensor '" + t.name + "' is not F32");
  return at::from_blob(const_cast<uint8_t*>(t.data), t.shape, at::kFloat).clone();
}

std::string options_key(const EdgePruningOptions& o) {
  std::ostringstream s;
  s.precision(17);
  s << "target=" << o.edge_target << " nodes=" << o.node_masks << " node_target=" << o.node_target
    << " node_loss=" << o.node_loss << " keep_embedding=" << o.keep_embedding_edges << " init=" << o.init_mean << ","
    << o.init_std << " steps=" << o.steps << " batch=" << o.batch_size << " warmup=" << o.warmup_steps
    << " target_warmup=" << o.target_warmup_steps << " lr=" << o.lr << " lambda_lr=" << o.lambda_lr
    << " wd=" << o.weight_decay << " clip=" << o.max_grad_norm << " seed=" << o.seed
    << " ablation=" << ablation_name(o.ablation);
  if (o.loss != Metric::KL) s << " loss=" << metric_name(o.loss);  // KL runs keep their old keys
  if (o.candidates.defined()) s << " candidates=" << discover::fnv1a(o.candidates);
  return s.str();
}

void check_options(const EdgePruningOptions& o) {
  auto bad = [](const std::string& what) { fail("edge pruning", what); };
  if (!(o.edge_target >= 0) || !std::isfinite(o.edge_target)) bad("the edge target must be a number >= 0");
  if (!(o.node_target >= 0) || !std::isfinite(o.node_target)) bad("the node target must be a number >= 0");
  if (o.steps < 1) bad("steps must be >= 1");
  if (o.loss != Metric::KL && o.loss != Metric::MSE)
    bad(std::string("its loss compares with the full model's outputs: kl or mse, not ") + metric_name(o.loss));
  if (o.batch_size < 1) bad("the batch size must be >= 1");
  if (o.warmup_steps < 0 || o.target_warmup_steps < 0) bad("warm-up steps must be >= 0");
  if (!(o.lr > 0) || !(o.lambda_lr > 0)) bad("learning rates must be > 0");
  if (!(o.weight_decay >= 0) || !(o.max_grad_norm >= 0)) bad("weight decay and the clipping norm must be >= 0");
  if (!(o.init_std >= 0)) bad("the initial standard deviation must be >= 0");
  check_run_control(o.run, "edge pruning");
}

}  // namespace

at::Tensor edge_pruning_valid(const Graph& graph, bool keep_embedding_edges) {
  at::Tensor v = real_edges(graph);
  if (keep_embedding_edges) v[kInput].fill_(false);
  return v;
}

EdgePruningObjective edge_pruning_objective(const Model& model, const Graph& graph, const Batch& b,
                                            const at::Tensor& ablated, const at::Tensor& clean_last,
                                            const at::Tensor& edge_valid, const at::Tensor& log_alpha,
                                            const at::Tensor& u, const at::Tensor& node_log_alpha,
                                            const at::Tensor& node_u, const at::Tensor& lambdas, double target,
                                            double node_target, bool keep_embedding_edges,
                                            const at::Tensor& edge_counted, Metric faithfulness) {
  const auto dt = log_alpha.scalar_type();
  const at::Tensor counted = edge_counted.defined() ? edge_counted : edge_valid;
  at::Tensor valid = edge_valid.to(dt);
  at::Tensor fixed = (real_edges(graph) & ~counted).to(dt);  // real edges that are not prunable
  at::Tensor z = hard_concrete::sample(log_alpha, u);
  at::Tensor mask = z * valid + fixed;  // counted edges outside edge_valid: 0, ablated
  EdgePruningObjective o;
  o.edge_sparsity = 1.0 - (z * valid).sum() / counted.to(dt).sum();
  at::Tensor lam = lambdas.to(dt);
  at::Tensor d = o.edge_sparsity - target;
  at::Tensor loss = lam[0] * d + lam[1] * d * d;
  if (node_log_alpha.defined()) {
    at::Tensor nvalid = node_valid(graph, keep_embedding_edges).to(dt);
    at::Tensor zn = hard_concrete::sample(node_log_alpha, node_u) * nvalid + (1.0 - nvalid);
    mask = mask * zn.unsqueeze(1);
    o.node_sparsity = 1.0 - ((zn * nvalid).sum() / nvalid.sum());
    at::Tensor dn = o.node_sparsity - node_target;
    loss = loss + lam[2] * dn + lam[3] * dn * dn;
  }
  PatchOptions po;
  po.positions = b.clean_pos.unsqueeze(1);
  po.path = PatchOptions::Path::Dense;
  at::Tensor last = patched_forward(model, graph, b.clean, ablated, mask, po).select(0, 0).select(1, 0);  // [B, V]
  const at::Tensor cl = clean_last.to(last.scalar_type());
  o.kl = (faithfulness == Metric::MSE ? mse_per_example(last, cl) : kl_per_example(last, cl)).mean();
  o.penalty = loss;
  o.loss = o.kl + loss;
  return o;
}

EdgePruningResult edge_pruning(const Model& model, const Graph& graph, const Batch& train, const EdgePruningOptions& opt) {
  using Clock = std::chrono::steady_clock;
  check_options(opt);
  const int64_t N = train.size(), S = graph.n_sources(), R = graph.n_readers();
  if (N == 0) fail("edge pruning", "the training set is empty");
  const int64_t T = train.clean.size(1), D = model.config().d_model;
  const bool positional = opt.ablation == Ablation::Resample || opt.ablation == Ablation::MeanPerPosition;
  if (positional && !train.aligned)
    fail("edge pruning", std::string(ablation_name(opt.ablation)) +
                             " ablation needs clean and corrupted prompts of equal token counts");
  // `prunable`: the edges the sparsity counts; `valid`: those whose masks are learned (the
  // candidates among them; all of them without a prefilter).
  const at::Tensor prunable = edge_pruning_valid(graph, opt.keep_embedding_edges);
  const bool prefiltered = opt.candidates.defined();
  if (prefiltered && !opt.candidates.sizes().equals({S, R}))
    fail("edge pruning", "candidates must be [" + std::to_string(S) + ", " + std::to_string(R) + "] for this graph");
  const at::Tensor valid = prefiltered ? prunable & opt.candidates.to(at::kCPU, at::kBool) : prunable;
  const at::Tensor valid_f = valid.to(at::kFloat);
  const int64_t n_valid = valid.sum().item<int64_t>(), n_prunable = prunable.sum().item<int64_t>();
  // Where the sparsity starts: a prefilter's non-survivors are removed from the first step, and
  // the target's warm-up starts there too (from 0 the Lagrangian would first push the survivors
  // to stay while the target catches up, and its multipliers wind up).
  const double start_sparsity =
      prefiltered ? std::min(opt.edge_target, 1.0 - static_cast<double>(n_valid) / static_cast<double>(n_prunable)) : 0.0;
  if (n_valid == 0) fail("edge pruning", prefiltered ? "no candidate edge is prunable" : "the graph has no prunable edges");
  const std::string key = opt.run.fingerprint + " | " + options_key(opt);
  const int64_t B = std::min(opt.batch_size, N), per_epoch = (N + B - 1) / B;

  // The data, once: the full model's logits at the prediction positions and every example's
  // ablated values (the dataset's mean, zero, or each corrupted prompt's sources).
  // Across ranks, each computes its run of whole batches and every rank gets all of it.
  if (dist::active() && B < dist::data_size())
    fail("edge pruning", "a batch of " + std::to_string(B) + " cannot be shared by " +
                             std::to_string(dist::data_size()) + " ranks: use a batch of at least one example per rank");
  at::Tensor clean_last, cache_all, shared_ablated;
  {
    at::NoGradGuard ng;
    clean_last = dist::gather_rows(N, B, [&](int64_t from, int64_t to) {
      std::vector<at::Tensor> cl;
      for (int64_t i = from; i < to; i += B) {
        const Batch b = train.rows(i, std::min(to, i + B));
        cl.push_back(logits_at(model.forward(b.clean), b.clean_pos));
      }
      return at::cat(cl);
    }, "the full model's logits");
    if (opt.ablation == Ablation::Resample) {
      const double mb = static_cast<double>(S) * N * T * D * 4 / (1 << 20);
      if (mb <= static_cast<double>(opt.cache_mb)) {
        cache_all = dist::gather_rows(N, B, [&](int64_t from, int64_t to) {
          std::vector<at::Tensor> parts;
          for (int64_t i = from; i < to; i += B)
            parts.push_back(source_outputs(model, graph, train.corrupted.narrow(0, i, std::min(to, i + B) - i)));
          return at::cat(parts, 1);
        }, "the corrupted prompts' source outputs", /*dim=*/1);
      }
    } else if (opt.ablation == Ablation::Zero) {
      shared_ablated = ablated_values(model, graph, Ablation::Zero, train.clean, train.corrupted);
    } else {
      shared_ablated = dataset_mean(model, graph, opt.ablation, train.clean, train.clean_len, B);
    }
  }

  // Parameters and optimiser state.
  at::Tensor la, nla, lam = at::zeros({4});
  AdamWState a_la, a_nla, a_lam;
  int64_t start = 0;
  double seconds_before = 0;
  std::vector<EdgePruningLog> log;
  {
    at::Generator g = seeded_generator(opt.seed, kOrderStream - 1);
    la = at::normal(opt.init_mean, opt.init_std, {S, R}, g) * valid_f;
    if (opt.node_masks) nla = at::normal(opt.init_mean, opt.init_std, {S}, g);
  }
  const std::string& ck_path = opt.run.checkpoint;
  if (opt.run.resume && !ck_path.empty() && std::filesystem::exists(ck_path)) {
    const discover::RunCheckpoint ck = discover::open_run_checkpoint(ck_path, kFormat, key, "Edge Pruning");
    const SafetensorsFile& f = ck.file;
    auto meta = [&](const std::string& k) { return ck.meta(k); };
    auto get = [&](const std::string& name, std::vector<int64_t> shape) {
      const StTensor* t = f.find(name);
      if (!t || t->shape != shape) fail(ck_path, "damaged checkpoint: tensor '" + name + "' missing or of another shape");
      return from_st(*t);
    };
    try {
      start = std::stoll(meta("step"));
      seconds_before = std::stod(meta("seconds"));
      for (const auto& row : nlohmann::json::parse(meta("log"))) {
        EdgePruningLog l;
        l.step = row.at(0), l.loss = row.at(1), l.kl = row.at(2), l.edge_sparsity = row.at(3);
        l.node_sparsity = row.at(4), l.target = row.at(5), l.node_target = row.at(6), l.lambda1 = row.at(7);
        l.lambda2 = row.at(8), l.lr = row.at(9), l.seconds = row.at(10);
        log.push_back(l);
      }
    } catch (const std::exception& e) {
      fail(ck_path, std::string("damaged checkpoint metadata (") + e.what() + ")");
    }
    la = get("log_alpha", {S, R}), a_la.m = get("log_alpha.m", {S, R}), a_la.v = get("log_alpha.v", {S, R});
    lam = get("lambdas", {4}), a_lam.m = get("lambdas.m", {4}), a_lam.v = get("lambdas.v", {4});
    if (opt.node_masks)
      nla = get("node_log_alpha", {S}), a_nla.m = get("node_log_alpha.m", {S}), a_nla.v = get("node_log_alpha.v", {S});
    a_la.t = a_lam.t = a_nla.t = start;
    if (start > opt.steps) fail(ck_path, "has more steps than this run asks for");
  }
  auto save = [&](int64_t step, double secs) {
    if (ck_path.empty() || !dist::is_root()) return;  // rank 0 writes
    std::vector<at::Tensor> keep;  // contiguous copies alive until written
    std::vector<StWriteTensor> ts;
    auto add = [&](const std::string& name, const at::Tensor& t) {
      at::Tensor c = t.detach().to(at::kFloat).contiguous();
      keep.push_back(c);
      ts.push_back({name, StDType::F32, c.sizes().vec(), c.data_ptr(), static_cast<uint64_t>(c.numel() * 4)});
    };
    auto state = [&](const std::string& name, const at::Tensor& p, const AdamWState& a) {
      add(name, p);
      add(name + ".m", a.m.defined() ? a.m : at::zeros_like(p));
      add(name + ".v", a.v.defined() ? a.v : at::zeros_like(p));
    };
    state("log_alpha", la, a_la);
    state("lambdas", lam, a_lam);
    if (opt.node_masks) state("node_log_alpha", nla, a_nla);
    nlohmann::json rows = nlohmann::json::array();
    for (const EdgePruningLog& l : log)
      rows.push_back({l.step, l.loss, l.kl, l.edge_sparsity, l.node_sparsity, l.target, l.node_target, l.lambda1,
                      l.lambda2, l.lr, l.seconds});
    safetensors_write(ck_path, ts,
                      {{"format", kFormat}, {"run", key}, {"step", std::to_string(step)},
                       {"seconds", std::to_string(secs)}, {"log", rows.dump()}});
  };

  const auto t0 = Clock::now();
  CheckpointClock ck_clock(opt.run);
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - t0).count(); };
  at::Tensor perm;
  int64_t perm_epoch = -1;
  int64_t step = start;
  bool stopped = false;
  for (; step < opt.steps; ++step) {
    const int64_t epoch = step / per_epoch, in_epoch = step % per_epoch;
    if (epoch != perm_epoch) {
      perm = epoch_order(N, opt.seed, epoch);
      perm_epoch = epoch;
    }
    const int64_t from = in_epoch * B;
    at::Tensor rows = perm.narrow(0, from, std::min(N, from + B) - from);
    // Across ranks: each takes a contiguous share of the step's examples; its part of the mean
    // is weighted by its share (below).
    const int64_t step_rows = rows.size(0);
    const dist::Range share = dist::my_range(step_rows);
    // A rank whose share of a short last batch is empty runs one example with weight 0.
    if (dist::active()) rows = share.size() > 0 ? rows.narrow(0, share.begin, share.size()) : rows.narrow(0, 0, 1);
    const Batch b = train.select(rows);
    const at::Tensor rows_dev = rows.to(model.device());  // for the cached tensors, which live there
    at::Tensor ablated;
    if (cache_all.defined()) {
      ablated = cache_all.index_select(1, rows_dev);
    } else if (shared_ablated.defined()) {
      ablated = shared_ablated;
    } else {
      at::NoGradGuard ng;
      ablated = source_outputs(model, graph, b.corrupted);
    }
    at::Generator g = seeded_generator(opt.seed, kNoiseStream + static_cast<uint64_t>(step));
    at::Tensor u = at::rand({S, R}, g), nu = opt.node_masks ? at::rand({S}, g) : at::Tensor();
    la.requires_grad_(true);
    lam.requires_grad_(true);
    if (opt.node_masks) nla.requires_grad_(true);
    const double target = target_at(opt.edge_target, step, opt.target_warmup_steps, start_sparsity);
    const double ntarget = target_at(opt.node_target, step, opt.target_warmup_steps);
    at::Tensor lam_used = opt.node_loss ? lam : lam * at::tensor({1.f, 1.f, 0.f, 0.f});
    EdgePruningObjective obj = edge_pruning_objective(model, graph, b, ablated, clean_last.index_select(0, rows_dev), valid,
                                                      la, u, nla, nu, lam_used, target, ntarget,
                                                      opt.keep_embedding_edges, prefiltered ? prunable : at::Tensor(),
                                                      opt.loss);
    double kl_all = 0;  // the step's faithfulness loss over every rank's share
    if (!dist::active()) {
      obj.loss.backward();
    } else {
      // The data term's gradients (and value) are summed over the ranks, each weighted by its
      // share of the step; then the sparsity penalty, the same on every rank, adds its own once.
      const double w = static_cast<double>(share.size()) / static_cast<double>(step_rows);
      (obj.kl * w).backward({}, /*retain_graph=*/true);
      std::vector<at::Tensor> data_params = {la};
      if (opt.node_masks) data_params.push_back(nla);
      kl_all = dist::all_reduce_gradients(data_params, (obj.kl.detach() * w).item<double>(), "Edge Pruning's mask gradients");
      obj.penalty.backward();
    }
    {
      at::NoGradGuard ng;
      std::vector<at::Tensor*> ps = {&la, &lam};
      if (opt.node_masks) ps.push_back(&nla);
      std::vector<at::Tensor> grads;
      double sq = 0;
      for (at::Tensor* p : ps) {
        at::Tensor gr = p->grad().defined() ? p->grad().detach().clone() : at::zeros_like(*p);
        sq += gr.to(at::kDouble).pow(2).sum().item<double>();
        grads.push_back(gr);
      }
      if (opt.max_grad_norm > 0) {
        const double coef = std::min(1.0, opt.max_grad_norm / (std::sqrt(sq) + 1e-6));
        for (at::Tensor& gr : grads) gr.mul_(coef);
      }
      const double f = lr_factor(step, opt.warmup_steps, opt.steps);
      for (at::Tensor* p : ps) *p = p->detach();
      adamw_step(la, grads[0], a_la, opt.lr * f, opt.weight_decay, false);
      adamw_step(lam, grads[1], a_lam, opt.lambda_lr * f, opt.weight_decay, true);
      if (opt.node_masks) adamw_step(nla, grads[2], a_nla, opt.lr * f, opt.weight_decay, false);
      la.mul_(valid_f);  // off-edge entries stay 0 (they get no gradient, only decay)
      if ((step + 1) % opt.log_every == 0 || step + 1 == opt.steps || step == start) {
        EdgePruningLog l;
        l.step = step + 1;
        if (!dist::active()) l.loss = obj.loss.item<double>(), l.kl = obj.kl.item<double>();
        else l.kl = kl_all, l.loss = kl_all + obj.penalty.item<double>();
        l.edge_sparsity = obj.edge_sparsity.item<double>();
        l.node_sparsity = obj.node_sparsity.defined() ? obj.node_sparsity.item<double>() : 0.0;
        l.target = target, l.node_target = opt.node_masks ? ntarget : 0.0;
        l.lambda1 = lam[0].item<double>(), l.lambda2 = lam[1].item<double>(), l.lr = opt.lr * f, l.seconds = elapsed();
        log.push_back(l);
        opt.run.report({"steps", l.step, opt.steps,
                        {{"loss", l.loss}, {"kl", l.kl}, {"edge sparsity", l.edge_sparsity}, {"target", l.target},
                         {"lambda1", l.lambda1}, {"lambda2", l.lambda2}}});
      }
    }
    if (step + 1 < opt.steps && ck_clock.due()) {
      save(step + 1, elapsed());
      ck_clock.saved();
    }
    if (dist::any(opt.run.stopping(), "Edge Pruning's stop request")) {
      ++step;
      stopped = true;
      break;
    }
  }
  la = la.detach(), lam = lam.detach();
  if (nla.defined()) nla = nla.detach();
  save(step, elapsed());

  EdgePruningResult r;
  r.steps_done = step;
  r.complete = !stopped && step >= opt.steps;
  r.seconds = elapsed();
  r.log = std::move(log);
  r.log_alpha = la;
  r.node_log_alpha = nla;
  // Discretise: the deterministic mask over the prunable edges, its trained count kept exactly.
  at::Tensor vflat = valid.flatten();
  at::Tensor det_valid = hard_concrete::deterministic(la.flatten().masked_select(vflat));
  at::Tensor det = at::zeros({S * R});
  det.masked_scatter_(vflat, det_valid);
  // Over every prunable edge: those outside the candidates count as removed.
  r.trained_sparsity = prefiltered ? 1.0 - det_valid.sum().item<double>() / static_cast<double>(n_prunable)
                                   : 1.0 - det_valid.mean().item<double>();
  const int64_t keep = std::llround(det_valid.sum().item<double>());
  at::Tensor kept = hard_concrete::keep_largest(det.view({S, R}), valid, keep);
  at::Tensor fixed = real_edges(graph) & ~prunable;
  r.mask = det.view({S, R}) + fixed.to(at::kFloat);
  kept = kept | fixed;
  if (opt.node_masks) {
    const at::Tensor nvalid = node_valid(graph, opt.keep_embedding_edges);
    at::Tensor ndet_valid = hard_concrete::deterministic(nla.masked_select(nvalid));
    at::Tensor ndet = at::ones({S});
    ndet.masked_scatter_(nvalid, ndet_valid);
    const int64_t nkeep = std::llround(ndet_valid.sum().item<double>()) + (S - nvalid.sum().item<int64_t>());
    at::Tensor nkept = hard_concrete::keep_largest(ndet, {}, nkeep);
    kept = kept & nkept.unsqueeze(1);
    r.mask = r.mask * ndet.unsqueeze(1);
  }
  r.kept = kept;
  r.edges_kept = kept.sum().item<int64_t>();
  return r;
}

}  // namespace edgewise
