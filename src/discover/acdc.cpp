// ACDC (include/edgewise/acdc.h, docs/ACDC.md): the search and its incremental evaluator.
//
// The evaluator keeps the current circuit's state — O [n_src, B, T, D], every source's output,
// and X [n_dst, B, T, D], every reader's input, X_r = bias + sum_s keep[s,r] O_s +
// (1 - keep[s,r]) õ_s, which is exactly what the patched forward computes — and evaluates K
// masks that differ from the circuit only in edges into one reader d: d's new inputs are
// X_d - W (O_c - õ_c) for the candidate sources c; the nodes whose inputs change are then
// recomputed layer by layer, a node only when a changed source reaches one of its readers through
// a kept edge and it still reaches the logits (is "live"). Everything else is unchanged by
// construction. Accepting mask j writes its recomputed values into the state.
//
// The arithmetic is the block primitives' (src/model/block.h: norms, projections, rotary, SDPA,
// output projection, MLP), per node; the block's shape decides what the MLP's reader reads.
//
// Dimension letters: K masks, B prompts, T tokens, D width, Dh head width, V vocabulary.
#include "edgewise/acdc.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common.h"
#include "edgewise/circuit.h"
#include "edgewise/distributed.h"
#include "edgewise/error.h"
#include "../model/internal.h"

namespace edgewise {

using namespace model_detail;

const char* acdc_mode_name(AcdcOptions::Mode m) { return enum_name(kAcdcModeNames, m); }

AcdcOptions::Mode acdc_mode_from_string(const std::string& s) { return enum_parse(kAcdcModeNames, s, "acdc", "mode"); }

const char* acdc_decision_name(AcdcStep::Decision d) { return enum_name(kAcdcDecisionNames, d); }

namespace {

// A changed value: at every position [K, B, T, D] (full) or at the prediction positions only
// [K, B, 1, D].
struct Val {
  at::Tensor t;
  bool full = true;
};

// What evaluating K masks produced: the metric of each and the recomputed values, so that one
// of the masks can be accepted into the state.
struct Evaluated {
  std::vector<double> values;
  std::map<int64_t, Val> sources;  // source -> new output minus the current one
  std::map<int64_t, Val> readers;  // reader -> new input
  std::map<int64_t, Val> raw;      // post-norms: head l * H + h -> new raw output minus the current one
};

class Engine {
 public:
  Engine(const Model& model, const Graph& g, const Batch& data, const at::Tensor& ablated, Metric metric,
         const MetricFn& metric_fn, at::ScalarType dt)
      : g_(g), c_(model.config()), data_(data), metric_(metric), metric_fn_(metric_fn), dt_(dt) {
    S_ = g.n_sources();
    R_ = g.n_readers();
    L_ = c_.n_layers;
    H_ = c_.n_heads;
    G_ = c_.n_kv_heads;
    Dh_ = c_.d_head;
    D_ = c_.d_model;
    dev_ = model.device();
    tokens_ = data.clean.to(dev_);
    B_ = tokens_.size(0);
    T_ = tokens_.size(1);
    pos_ = data.clean_pos.to(dev_, at::kLong);
    abl_ = ablated.to(dev_, dt);
    const auto& W = model.weights();
    // Layers split over ranks (a pipeline): no stage holds every layer, so the state below is not
    // kept; each evaluation is a patched forward of the masks, which runs stage by stage, from the
    // clean run's cache downstream of the reader (pipe_last). The same metrics up to rounding.
    pipe_ = dist::stages() > 1;
    if (pipe_) {
      model_ = &model;
      cache_ = clean_cache(model, g, tokens_);
    }
    for (int64_t l = 0; l < L_ && !pipe_; ++l) lw_.push_back(layer_weights_as(layer_weights(W, l), dt));
    emb_ = embed_tokens(c_, W, tokens_, dt);
    if (c_.rope) {
      Dr_ = model.rope_cos().size(1);  // the rotated dims (partial rotary: < Dh)
      for (int64_t l = 0; l < L_; ++l) {  // each layer's tables (sliding-window layers may have their own)
        cos_.push_back(model.rope_cos(l).narrow(0, 0, T_).to(dt).view({1, 1, T_, Dr_}));
        sin_.push_back(model.rope_sin(l).narrow(0, 0, T_).to(dt).view({1, 1, T_, Dr_}));
      }
    }
    out_norm_w_ = opt_weight(W, "output_norm.weight", dt);  // none without norms (Tracr)
    out_norm_b_ = opt_weight(W, "output_norm.bias", dt);
    // A change held at the prediction positions only stays there through attention when the
    // attention is causal and each prediction position is its row's last token: a key or value
    // changed there reaches no other real query. Otherwise (non-causal attention, or a task that
    // predicts inside the prompt) such a change spreads to every position.
    pos_is_last_ = c_.causal && data.clean_pos.equal(data.clean_len - 1);
    out_w_ = W.at("output.weight").to(dt);
    for (int64_t j = 0; j < R_; ++j) {
      const Graph::Reader& r = g.reader(j);
      if (r.kind == Graph::ReaderKind::Logits) logits_reader_ = j;
      else if (r.kind == Graph::ReaderKind::Mlp) mlp_reader_.push_back(j);
      if (r.kind != Graph::ReaderKind::Logits && r.kind != Graph::ReaderKind::Mlp &&
          (attn_first_.size() <= static_cast<size_t>(r.layer)))
        attn_first_.push_back(j);
    }
    first_head_layer_.assign(S_, -1);
    for (int64_t l = 0; l < L_; ++l) first_head_layer_[g.head_source(l, 0)] = l;
    keep_.assign(S_ * R_, 0);
    for (int64_t r = 0; r < R_; ++r)
      for (int64_t s = 0; s < g.reader_fan_in(r); ++s) keep_[s * R_ + r] = 1;
    update_live();
  }

  std::vector<uint8_t>& keep() { return keep_; }
  int64_t tokens_bytes() const { return B_ * T_ * D_ * (dt_ == at::kDouble ? 8 : 4); }
  int64_t tokens() const { return T_; }

  // Liveness: a source is live when one of its kept out-edges enters a reader whose node is live;
  // the logits are live. Monotone: removing edges only ever makes nodes dead.
  // Post-norms: a head's raw output sets the norm scale of its whole layer, so it matters
  // (at a position) whenever any head of its layer does, kept out-edges or not.
  void update_live() {
    src_live_.assign(S_, 0);
    for (int64_t s = S_ - 1; s >= 0; --s) {
      for (int64_t r = 0; r < R_ && !src_live_[s]; ++r)
        if (keep_[s * R_ + r] && reader_live(r)) src_live_[s] = 1;
      share_in_layer(s, src_live_);
    }
    n_live_ = std::count(src_live_.begin(), src_live_.end(), 1);
    // Whether a source's output matters at positions other than the prediction positions: only
    // through attention, i.e. when it reaches a live k or v reader (or a head-level reader).
    need_all_.assign(S_, 0);
    for (int64_t s = S_ - 1; s >= 0; --s) {
      for (int64_t r = 0; r < R_ && !need_all_[s]; ++r)
        if (keep_[s * R_ + r] && reader_live(r)) need_all_[s] = node_needs_all(r);
      share_in_layer(s, need_all_);
    }
  }
  // Post-norms, at a layer's first head source s (the last of the layer visited, in descending
  // order): when any head of the layer has the flag, all get it.
  void share_in_layer(int64_t s, std::vector<uint8_t>& flag) const {
    if (!c_.block.post_norms || first_head_layer_[s] < 0) return;
    if (std::find(flag.begin() + s, flag.begin() + s + H_, 1) == flag.begin() + s + H_) return;
    std::fill(flag.begin() + s, flag.begin() + s + H_, 1);
  }
  // Whether the node that reader r feeds matters at every position (see need_all_); k and v
  // readers always do.
  bool node_needs_all(int64_t r) const {
    const Graph::Reader& rd = g_.reader(r);
    switch (rd.kind) {
      case Graph::ReaderKind::Logits: return false;
      case Graph::ReaderKind::Mlp: return need_all_[g_.mlp_source(rd.layer)];
      case Graph::ReaderKind::Q: return need_all_[g_.head_source(rd.layer, rd.head)];
      case Graph::ReaderKind::Head:
      case Graph::ReaderKind::K:
      case Graph::ReaderKind::V: return true;
    }
    return true;
  }
  // Whether a change at reader d must be followed at every position: its node's output matters
  // beyond the prediction positions.
  bool change_needs_all(int64_t d) const {
    const Graph::Reader& rd = g_.reader(d);
    switch (rd.kind) {
      case Graph::ReaderKind::Logits: return false;
      case Graph::ReaderKind::Mlp: return need_all_[g_.mlp_source(rd.layer)];
      case Graph::ReaderKind::Q:
      case Graph::ReaderKind::Head: return need_all_[g_.head_source(rd.layer, rd.head)];
      case Graph::ReaderKind::K:
      case Graph::ReaderKind::V:
        return any_head_of_group(rd, [&](int64_t s) { return src_live_[s] && need_all_[s]; });
    }
    return true;
  }
  bool reader_live(int64_t r) const {
    const Graph::Reader& rd = g_.reader(r);
    switch (rd.kind) {
      case Graph::ReaderKind::Logits: return true;
      case Graph::ReaderKind::Mlp: return src_live_[g_.mlp_source(rd.layer)];
      case Graph::ReaderKind::Q:
      case Graph::ReaderKind::Head: return src_live_[g_.head_source(rd.layer, rd.head)];
      case Graph::ReaderKind::K:
      case Graph::ReaderKind::V:
        return any_head_of_group(rd, [&](int64_t s) { return src_live_[s] != 0; });
    }
    return false;
  }
  int64_t n_live() const { return n_live_; }
  // Whether f(source) holds for a head sharing the k or v reader rd.
  template <class F>
  bool any_head_of_group(const Graph::Reader& rd, F f) const {
    for (int64_t h = rd.head * (H_ / G_); h < (rd.head + 1) * (H_ / G_); ++h)
      if (f(g_.head_source(rd.layer, h))) return true;
    return false;
  }

  // The whole state of the circuit keep_ from the embeddings; returns its logits at the
  // prediction positions [B, V].
  at::Tensor full_pass() {
    at::NoGradGuard ng;
    if (pipe_) return pipe_last(-1, {}, at::Tensor()).select(0, 0);
    O_ = at::empty({S_, B_, T_, D_}, at::TensorOptions().dtype(dt_).device(dev_));
    X_ = at::empty({R_, B_, T_, D_}, at::TensorOptions().dtype(dt_).device(dev_));
    O_.select(0, 0).copy_(emb_);
    if (c_.block.post_norms) Hraw_ = at::empty({L_ * H_, B_, T_, D_}, O_.options());
    at::Tensor resid = emb_.clone();  // [B, T, D]
    for (int64_t l = 0; l < L_; ++l) {
      const int64_t r0 = attn_first_[l], nr = mlp_reader_[l] - r0;
      set_inputs(r0, nr, g_.sources_before_attn(l), resid);
      std::vector<int64_t> hs(H_);
      for (int64_t h = 0; h < H_; ++h) hs[h] = h;
      auto cached = [&](int64_t r) { return X_.select(0, r).unsqueeze(0); };
      at::Tensor heads = head_outputs(l, hs, cached, cached, false);  // [H, 1, B, T, D]
      if (c_.block.post_norms) {  // the raw outputs kept, the sources are their shares of the normed sum
        Hraw_.narrow(0, l * H_, H_).copy_(heads.select(1, 0));
        heads = post_norm_shares(c_, heads, heads.sum(0), lw_[l].pan_w);
      }
      O_.narrow(0, g_.head_source(l, 0), H_).copy_(heads.select(1, 0));
      const at::Tensor block_in = resid;  // a parallel block's MLP reads this
      resid = resid + heads.select(1, 0).sum(0);
      if (lw_[l].o_b.defined()) resid = resid + lw_[l].o_b;
      set_inputs(mlp_reader_[l], 1, g_.sources_before_mlp(l), mlp_reads_block_input(c_) ? block_in : resid);
      O_.select(0, g_.mlp_source(l)).copy_(mlp_output(l, X_.select(0, mlp_reader_[l])));
      resid = resid + O_.select(0, g_.mlp_source(l));
      if (lw_[l].down_b.defined()) resid = resid + lw_[l].down_b;
    }
    set_inputs(logits_reader_, 1, S_, resid);
    return unembed(at_pos(X_.select(0, logits_reader_)).unsqueeze(0)).select(0, 0);
  }

  void set_clean_last(const at::Tensor& t) { clean_last_ = t; }
  double metric_of(const at::Tensor& last) const {  // [B, V]
    if (!dist::active()) return batch_metric(last).item<double>();
    at::Tensor m = batch_metric(last).to(at::kCPU, at::kDouble).reshape({1});
    reduce_means(m);
    return m.item<double>();
  }
  // Across ranks, each holding `share` of the examples: the batch means of every rank, weighted
  // by its share and summed — the mean over all examples, the same on every rank, so every
  // rank takes the same decision.
  void set_share(double share) { share_ = share; }
  void reduce_means(at::Tensor& host) const {
    if (!dist::active()) return;
    host.mul_(share_);
    dist::all_reduce_sum(host, "ACDC's metrics");
  }

  // Evaluates the masks "circuit minus the candidate edges (cand[i], d) where W[k, i] = 1",
  // W [K, n_cand] of 0/1. Every changed value is held either at every position ([K, B, T, D])
  // or at the prediction positions only ([K, B, 1, D]): a node's output is needed at every
  // position only when it reaches a live key or value input (need_all_) AND one of its inputs
  // changed at every position; otherwise its change at the prediction positions is all that can
  // reach the logits there (causal attention: a key or value changed at the prediction position
  // only affects queries at or after it).
  Evaluated evaluate(int64_t d, const std::vector<int64_t>& cand, const at::Tensor& w) {
    at::NoGradGuard ng;
    const int64_t K = w.size(0), n = static_cast<int64_t>(cand.size());
    const Graph::Reader& rd = g_.reader(d);
    const bool d_kv = rd.kind == Graph::ReaderKind::K || rd.kind == Graph::ReaderKind::V ||
                      rd.kind == Graph::ReaderKind::Head;
    const bool d_full = d_kv || change_needs_all(d);
    if (pipe_) {
      Evaluated ev;
      const at::Tensor last = pipe_last(d, cand, w);  // [K, B, V]
      std::vector<at::Tensor> m(K);
      for (int64_t k = 0; k < K; ++k) m[k] = batch_metric(last.select(0, k));
      at::Tensor host = at::stack(m).to(at::kCPU, at::kDouble);
      reduce_means(host);
      for (int64_t k = 0; k < K; ++k) ev.values.push_back(host[k].item<double>());
      (void)n, (void)d_full;
      return ev;
    }
    if (!change_needs_all(d) && rd.kind != Graph::ReaderKind::Logits) last_only_evaluations += K;
    at::Tensor idx = index_tensor(cand, dev_), wt = w.to(dev_, dt_);
    Evaluated ev;
    std::map<int64_t, Val>& in = ev.readers;    // changed reader inputs
    std::map<int64_t, Val>& dsrc = ev.sources;  // changed source outputs: new minus current
    if (d_full) {
      at::Tensor diff = (O_.index_select(0, idx) - abl_.index_select(0, idx)).reshape({n, -1});
      in[d] = {(X_.select(0, d).reshape({1, -1}) - at::mm(wt, diff)).view({K, B_, T_, D_}), true};
    } else {
      at::Tensor diff = (at_pos(O_.index_select(0, idx)) - at_pos(abl_.index_select(0, idx))).reshape({n, -1});
      in[d] = {(at_pos(X_.select(0, d)).reshape({1, -1}) - at::mm(wt, diff)).view({K, B_, 1, D_}), false};
    }
    // Reader r's input under the K masks when a changed source reaches it through a kept edge.
    auto changed_input = [&](int64_t r) -> const Val* {
      auto it = in.find(r);
      if (it != in.end()) return &it->second;
      if (!reader_live(r)) return nullptr;
      at::Tensor full, pos;
      for (const auto& [s, v] : dsrc) {
        if (!keep_[s * R_ + r]) continue;
        at::Tensor& acc = v.full ? full : pos;
        acc = acc.defined() ? acc.add_(v.t) : v.t.clone();
      }
      if (!full.defined() && !pos.defined()) return nullptr;
      if (!full.defined()) return &(in[r] = {pos.add_(at_pos(X_.select(0, r)).unsqueeze(0)), false});
      full.add_(X_.select(0, r).unsqueeze(0));
      if (pos.defined()) full.scatter_add_(2, pos_index(K), pos);
      return &(in[r] = {full, true});
    };
    // Reader r's input at every position: changed, or the state with the prediction position
    // replaced, or the state.
    auto input_full = [&](int64_t r) -> at::Tensor {
      auto it = in.find(r);
      if (it == in.end()) return X_.select(0, r).unsqueeze(0);
      if (it->second.full) return it->second.t;
      at::Tensor x = X_.select(0, r).unsqueeze(0).expand({K, B_, T_, D_}).clone();
      return x.scatter_(2, pos_index(K), it->second.t);
    };
    auto input_pos = [&](int64_t r) -> at::Tensor {
      auto it = in.find(r);
      if (it == in.end()) return at_pos(X_.select(0, r)).unsqueeze(0);
      return it->second.full ? at_pos(it->second.t) : it->second.t;
    };
    const bool from_attn = rd.kind != Graph::ReaderKind::Mlp && rd.kind != Graph::ReaderKind::Logits;
    for (int64_t l = rd.layer; l < L_ && rd.kind != Graph::ReaderKind::Logits; ++l) {
      if (l > rd.layer || from_attn) {
        const int64_t r0 = attn_first_[l], nr = mlp_reader_[l] - r0;
        std::vector<const Val*> changed(nr);
        for (int64_t j = 0; j < nr; ++j) changed[j] = changed_input(r0 + j);
        std::vector<int64_t> hs_full, hs_pos;  // heads whose new output is needed at every position / at the prediction positions
        for (int64_t h = 0; h < H_; ++h) {
          const int64_t s = g_.head_source(l, h);
          if (!src_live_[s]) continue;
          bool any = false, any_full = false;
          for (int64_t r : head_readers(l, h))
            if (changed[r - r0])
              any = true, any_full = any_full || changed[r - r0]->full ||
                                     (!pos_is_last_ && g_.reader(r).kind != Graph::ReaderKind::Q);
          if (any) (need_all_[s] && any_full ? hs_full : hs_pos).push_back(h);
        }
        if (c_.block.post_norms) {
          post_norm_layer(l, hs_full, hs_pos, input_full, input_pos, ev);
          hs_full.clear(), hs_pos.clear();  // done
        }
        for (bool full : {true, false}) {
          const std::vector<int64_t>& hs = full ? hs_full : hs_pos;
          if (hs.empty()) continue;
          at::Tensor out = full ? head_outputs(l, hs, input_full, input_full, false)   // [nh, K, B, T, D]
                                : head_outputs(l, hs, input_pos, input_full, true);  // [nh, K, B, 1, D]
          for (size_t i = 0; i < hs.size(); ++i) {
            const int64_t s = g_.head_source(l, hs[i]);
            const at::Tensor cur = full ? O_.select(0, s) : at_pos(O_.select(0, s));
            dsrc[s] = {out.select(0, static_cast<int64_t>(i)) - cur.unsqueeze(0), full};
          }
        }
      }
      const Val* xm = changed_input(mlp_reader_[l]);
      const int64_t sm = g_.mlp_source(l);
      if (xm && src_live_[sm]) {
        if (xm->full && need_all_[sm]) dsrc[sm] = {mlp_output(l, xm->t) - O_.select(0, sm).unsqueeze(0), true};
        else dsrc[sm] = {mlp_output(l, input_pos(mlp_reader_[l])) - at_pos(O_.select(0, sm)).unsqueeze(0), false};
      }
    }
    if (changed_input(logits_reader_)) {
      at::Tensor last = unembed(input_pos(logits_reader_));  // [K, B, V]
      // The K metrics read back together: one device synchronisation per evaluation, not per mask.
      std::vector<at::Tensor> m(K);
      for (int64_t k = 0; k < K; ++k) m[k] = batch_metric(last.select(0, k));
      at::Tensor host = at::stack(m).to(at::kCPU, at::kDouble);
      reduce_means(host);
      for (int64_t k = 0; k < K; ++k) ev.values.push_back(host[k].item<double>());
    } else {
      ev.values.assign(K, current_value);  // no kept path to the logits: nothing changes
    }
    return ev;
  }

  // Makes mask j of `ev` the current circuit's state (keep_ is updated by the caller).
  void accept(const Evaluated& ev, int64_t j) {
    if (pipe_) return;  // the state is keep_ itself
    at::NoGradGuard ng;
    at::Tensor rows = at::arange(B_, pos_.options());
    for (const auto& [s, v] : ev.sources) {
      at::Tensor o = O_.select(0, s);
      if (v.full) o.add_(v.t.select(0, j));
      else o.index_put_({rows, pos_}, o.index({rows, pos_}) + v.t.select(0, j).squeeze(1));
    }
    for (const auto& [i, v] : ev.raw) {
      at::Tensor o = Hraw_.select(0, i);
      if (v.full) o.add_(v.t.select(0, j));
      else o.index_put_({rows, pos_}, o.index({rows, pos_}) + v.t.select(0, j).squeeze(1));
    }
    for (const auto& [r, v] : ev.readers) {
      at::Tensor x = X_.select(0, r);
      if (v.full) x.copy_(v.t.select(0, j));
      else x.index_put_({rows, pos_}, v.t.select(0, j).squeeze(1));
    }
  }

  double current_value = 0;  // the metric of the current circuit
  int64_t last_only_evaluations = 0;  // of readers other than the logits, at the prediction positions only

 private:
  // Pipeline: the logits at the prediction positions [K, B, V] of K masks — the current circuit
  // (keep_) without the edges (cand[i], d) that w [K, n_cand] selects (w undefined: the circuit)
  // — by the patched forward from the clean cache.
  at::Tensor pipe_last(int64_t d, const std::vector<int64_t>& cand, const at::Tensor& w) {
    const int64_t K = w.defined() ? w.size(0) : 1, n = static_cast<int64_t>(cand.size());
    std::vector<double> m(static_cast<size_t>(K * S_ * R_));
    for (int64_t k = 0; k < K; ++k) std::copy(keep_.begin(), keep_.end(), m.begin() + k * S_ * R_);
    if (w.defined()) {
      const at::Tensor wh = w.to(at::kCPU, at::kDouble).contiguous();
      const double* wp = wh.data_ptr<double>();
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < n; ++i)
          if (wp[k * n + i] != 0) m[k * S_ * R_ + cand[i] * R_ + d] = 0;
    }
    const at::Tensor masks = at::from_blob(m.data(), {K, S_, R_}, at::kDouble).to(dev_, dt_);
    PatchOptions po;
    po.positions = pos_.unsqueeze(1);
    po.cache = &cache_;
    return patched_forward(*model_, g_, tokens_, abl_, masks, po).select(2, 0);
  }
  bool pipe_ = false;
  const Model* model_ = nullptr;  // pipeline only
  CleanCache cache_;              // pipeline only: the clean run

  // The q, k, v readers of head h of layer l (head level: its one reader).
  std::vector<int64_t> head_readers(int64_t l, int64_t h) const {
    const int64_t r0 = attn_first_[l];
    if (!g_.split_qkv()) return {r0 + h};
    const int64_t gq = h / (H_ / G_);
    return {r0 + h, r0 + H_ + gq, r0 + H_ + G_ + gq};
  }

  // Post-norms: heads hs_full / hs_pos of layer l have new inputs. Their raw outputs are
  // recomputed (at every position when any is needed there, else at the prediction positions),
  // the layer's raw sum and its norm scale follow, and every head's share of the normed output
  // changes with the scale: ev gets the new raw outputs and every head's new share.
  template <class Ffull, class Fpos>
  void post_norm_layer(int64_t l, const std::vector<int64_t>& hs_full, const std::vector<int64_t>& hs_pos,
                       Ffull input_full, Fpos input_pos, Evaluated& ev) {
    if (hs_full.empty() && hs_pos.empty()) return;
    const bool full = !hs_full.empty();
    std::vector<int64_t> hs = hs_full;
    hs.insert(hs.end(), hs_pos.begin(), hs_pos.end());
    const at::Tensor out = full ? head_outputs(l, hs, input_full, input_full, false)  // [nh, K, B, P, D]
                                : head_outputs(l, hs, input_pos, input_full, true);
    const int64_t K = out.size(1), P = out.size(3);
    at::Tensor cur = Hraw_.narrow(0, l * H_, H_);  // [H, B, T, D]
    if (!full) cur = at_pos(cur);                   // [H, B, 1, D]
    at::Tensor raw = cur.unsqueeze(1).expand({H_, K, B_, P, D_}).clone();  // [H, K, B, P, D]
    for (size_t i = 0; i < hs.size(); ++i) {
      const at::Tensor o = out.select(0, static_cast<int64_t>(i));
      raw.select(0, hs[i]).copy_(o);
      ev.raw[l * H_ + hs[i]] = {o - cur.select(0, hs[i]).unsqueeze(0), full};
    }
    const at::Tensor shares = post_norm_shares(c_, raw, raw.sum(0), lw_[l].pan_w);
    for (int64_t h = 0; h < H_; ++h) {
      const int64_t s = g_.head_source(l, h);
      const at::Tensor o = full ? O_.select(0, s) : at_pos(O_.select(0, s));
      ev.sources[s] = {shares.select(0, h) - o.unsqueeze(0), full};
    }
  }

  // X[r0 .. r0 + nr) = resid - sum_s (1 - keep[s, r]) (O_s - õ_s) over sources [0, S).
  void set_inputs(int64_t r0, int64_t nr, int64_t S, const at::Tensor& resid) {
    std::vector<double> wv(nr * S);
    bool any = false;
    for (int64_t i = 0; i < nr; ++i)
      for (int64_t s = 0; s < S; ++s) {
        wv[i * S + s] = 1.0 - keep_[s * R_ + r0 + i];
        any = any || wv[i * S + s] != 0;
      }
    at::Tensor dst = X_.narrow(0, r0, nr);
    dst.copy_(resid.unsqueeze(0).expand({nr, B_, T_, D_}));
    if (!any) return;
    at::Tensor w = at::tensor(wv, at::kDouble).view({nr, S}).to(dev_, dt_);
    at::Tensor diff = (O_.narrow(0, 0, S) - abl_.narrow(0, 0, S)).reshape({S, -1});
    dst.view({nr, -1}).sub_(at::mm(w, diff));
  }

  // Outputs (without the o bias) of heads hs of layer l, each reading its readers' inputs:
  // q_in(r) [K or 1, B, P, D] and kv_in(r) [K or 1, B, T, D]. P = T: every position,
  // [nh, K, B, T, D]; P = 1: the prediction positions only (causal attention of that one query
  // over the positions up to it), [nh, K, B, 1, D].
  template <class Fq, class Fkv>
  at::Tensor head_outputs(int64_t l, const std::vector<int64_t>& hs, Fq q_in, Fkv kv_in, bool last_only) {
    const LayerWeights& w = lw_[l];
    const int64_t nh = static_cast<int64_t>(hs.size()), P = last_only ? 1 : T_;
    std::vector<at::Tensor> xq, xk, xv;
    int64_t K = 1, Kkv = 1;
    for (int64_t h : hs) {
      auto rs = head_readers(l, h);
      xq.push_back(q_in(rs[0]));
      xk.push_back(kv_in(rs.size() > 1 ? rs[1] : rs[0]));
      xv.push_back(kv_in(rs.size() > 1 ? rs[2] : rs[0]));
      K = std::max(K, xq.back().size(0));
      Kkv = std::max({Kkv, xk.back().size(0), xv.back().size(0)});
    }
    K = std::max(K, Kkv);
    auto stack = [&](std::vector<at::Tensor>& v, int64_t k, int64_t p) {
      for (auto& t : v) t = t.expand({k, B_, p, D_});
      return at::stack(v, 0).reshape({nh, k * B_ * p, D_});
    };
    std::vector<int64_t> gidx;
    for (int64_t h : hs) gidx.push_back(h / (H_ / G_));
    at::Tensor hi = index_tensor(hs, dev_), gi = index_tensor(gidx, dev_);
    // [nh, N, D] -> [N / p, nh, p, Dh] with this head's (or kv head's) rows of wt.
    auto project = [&](const at::Tensor& x, const at::Tensor& wt, const at::Tensor& b, int64_t rows,
                       const at::Tensor& which, int64_t p) {
      at::Tensor xn = norm(c_, x, w.an_w, w.an_b);
      at::Tensor wsel = wt.view({rows, Dh_, D_}).index_select(0, which);  // [nh, Dh, D]
      at::Tensor y = project_heads(xn, wsel, b.defined() ? b.view({rows, Dh_}).index_select(0, which) : b);  // [nh, N, Dh]
      return y.view({nh, x.size(1) / p, p, Dh_}).transpose(0, 1);
    };
    at::Tensor q = project(stack(xq, K, P), w.q_w, w.q_b, H_, hi, P);       // [K*B, nh, P, Dh]
    at::Tensor k = project(stack(xk, Kkv, T_), w.k_w, w.k_b, G_, gi, T_);  // [Kkv*B, nh, T, Dh]
    at::Tensor v = project(stack(xv, Kkv, T_), w.v_w, w.v_b, G_, gi, T_);
    q = head_norm(c_, q, w.qn_w);  // per-head q / k norms (Gemma 3), before the rotary embedding
    k = head_norm(c_, k, w.kn_w);
    if (c_.rope) {
      const at::Tensor &cs = cos_[l], &sn = sin_[l];
      k = rotary(k, cs, sn);
      if (last_only) {
        at::Tensor cp = cs.view({T_, Dr_}).index_select(0, pos_).view({1, B_, 1, 1, Dr_});
        at::Tensor sp = sn.view({T_, Dr_}).index_select(0, pos_).view({1, B_, 1, 1, Dr_});
        q = rotary(q.view({K, B_, nh, 1, Dh_}), cp, sp).view({K * B_, nh, 1, Dh_});
      } else {
        q = rotary(q, cs, sn);
      }
    }
    if (Kkv != K) {  // the same keys and values for every mask
      k = k.unsqueeze(0).expand({K, B_, nh, T_, Dh_}).reshape({K * B_, nh, T_, Dh_});
      v = v.unsqueeze(0).expand({K, B_, nh, T_, Dh_}).reshape({K * B_, nh, T_, Dh_});
    }
    at::Tensor z;  // [K*B, nh, P, Dh]
    if (last_only) {
      z = attention_at(q, k, v, pos_, attn_spec(c_, l));
    } else {
      z = causal_attention(q, k, v, attn_spec(c_, l));
    }
    at::Tensor wo = out_proj_heads(c_, w).index_select(0, hi);  // [nh, Dh, D]
    at::Tensor out = head_results(z.transpose(0, 1).reshape({nh, K * B_ * P, Dh_}), wo);  // [nh, N, D]
    return out.view({nh, K, B_, P, D_});
  }

  // Index [K, B, 1, D] of the prediction positions along dim 2 of a [K, B, T, D] tensor.
  at::Tensor pos_index(int64_t K) const { return pos_.view({1, B_, 1, 1}).expand({K, B_, 1, D_}); }

  // t [..., B, T, D] (any leading dims, B and T possibly broadcast) at the prediction
  // positions: [..., B, 1, D].
  at::Tensor at_pos(const at::Tensor& t) const {
    std::vector<int64_t> full = t.sizes().vec();
    const int64_t n = t.dim();
    full[n - 3] = B_;
    full[n - 2] = T_;
    at::Tensor te = t.expand(full);
    std::vector<int64_t> ish(n, 1);
    ish[n - 3] = B_;
    std::vector<int64_t> out = full;
    out[n - 2] = 1;
    return at::gather(te, n - 2, pos_.view(ish).expand(out));
  }

  // The MLP's output (without the down bias) for inputs x [.., D].
  at::Tensor mlp_output(int64_t l, const at::Tensor& x) {
    const LayerWeights& w = lw_[l];
    return post_norm(c_, model_detail::mlp_output(c_, w, norm(c_, x, w.fn_w, w.fn_b), nullptr, /*bias=*/false), w.pfn_w);
  }

  // Logits [K, B, V] from the logits reader's inputs at the prediction positions [K, B, 1, D].
  at::Tensor unembed(const at::Tensor& x_pos) {
    return at::linear(norm(c_, x_pos.squeeze(2), out_norm_w_, out_norm_b_), out_w_);
  }

  const Graph& g_;
  const ModelConfig& c_;
  const Batch& data_;
  Metric metric_;
  MetricFn metric_fn_;
  // The metric's batch mean for logits at the prediction positions [B, V].
  at::Tensor batch_metric(const at::Tensor& last) const {
    return metric_mean(metric_, metric_fn_, last, data_, clean_last_);
  }
  at::ScalarType dt_;
  double share_ = 1;  // this rank's share of the examples (dist)
  c10::Device dev_ = c10::kCPU;  // the model's
  int64_t S_ = 0, R_ = 0, L_ = 0, H_ = 0, G_ = 0, Dh_ = 0, Dr_ = 0, D_ = 0, B_ = 0, T_ = 0, n_live_ = 0;
  at::Tensor tokens_, pos_, abl_, emb_, out_norm_w_, out_norm_b_, out_w_, clean_last_;
  std::vector<at::Tensor> cos_, sin_;  // per layer [1, 1, T, Dr]
  std::vector<LayerWeights> lw_;
  std::vector<int64_t> attn_first_, mlp_reader_;
  int64_t logits_reader_ = -1;
  std::vector<uint8_t> keep_, src_live_, need_all_;
  std::vector<int64_t> first_head_layer_;  // per source: the layer whose first head it is, else -1
  bool pos_is_last_ = true;  // a change at the prediction positions reaches no other (the constructor)
  at::Tensor O_, X_;
  at::Tensor Hraw_;  // post-norms: every head's raw output (before the layer's post-norm) [L * H, B, T, D]
};

}  // namespace

AcdcResult acdc(const Model& model, const Graph& graph, const Batch& data, const AcdcOptions& opt) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  if (!(opt.tau > 0) || !std::isfinite(opt.tau))
    fail("acdc", "tau must be a positive number, got " + std::to_string(opt.tau));
  if (opt.max_candidates < 1) fail("acdc", "max candidates per pass must be >= 1");
  check_run_control(opt.run, "acdc");
  if (data.size() == 0) fail("acdc", "the dataset is empty");
  const ModelConfig& c = model.config();
  if (!(graph.shape() == model_graph(model, graph.split_qkv()).shape())) fail("acdc", "the graph does not match the model");
  const double rollback_tau = opt.rollback_tau < 0 ? 40 * opt.tau : opt.rollback_tau;
  const at::ScalarType dt = opt.double_precision ? at::kDouble : at::kFloat;
  at::NoGradGuard ng;

  // Across ranks, each evaluates every candidate on its contiguous share of the examples and the
  // metrics are combined before each decision (Engine::reduce_means).
  const dist::Range mine = dist::my_range(data.size());
  if (dist::active() && mine.size() == 0)
    fail("acdc", std::to_string(data.size()) + " examples cannot be shared by " + std::to_string(dist::data_size()) +
                     " ranks: use at most one rank per example");
  const Batch shard = dist::active() ? data.rows(mine.begin, mine.end) : Batch();
  const Batch& local = dist::active() ? shard : data;
  at::Tensor ablated;
  if (opt.ablation == Ablation::Resample) {
    if (!data.aligned || data.corrupted.size(1) != data.clean.size(1))
      fail("acdc", "resample ablation needs clean and corrupted prompts of equal token counts");
    ablated = source_outputs(model, graph, local.corrupted, dt);
  } else if (opt.ablation == Ablation::Zero) {
    ablated = at::zeros({graph.n_sources(), 1, 1, c.d_model}, at::TensorOptions().dtype(dt).device(model.device()));
  } else {
    ablated = dataset_mean(model, graph, opt.ablation, data.clean, data.clean_len, data.size());
  }

  Engine e(model, graph, local, ablated, opt.metric, opt.metric_fn, dt);
  e.set_share(static_cast<double>(local.size()) / static_cast<double>(data.size()));
  const int64_t S = graph.n_sources(), R = graph.n_readers();
  const bool higher = metric_higher_is_better(opt.metric, opt.metric_fn);
  auto loss = [&](double v) { return higher ? -v : v; };
  auto passes = [&](double delta, double thr) { return (opt.absolute ? std::abs(delta) : delta) < thr; };

  AcdcResult res;
  res.scores = at::zeros({S, R}, at::kDouble);
  double* score = res.scores.data_ptr<double>();
  {
    at::Tensor clean_last = e.full_pass();  // the full model
    e.set_clean_last(clean_last);
    res.metric_full = e.metric_of(clean_last);
    e.current_value = res.metric_full;
  }

  // The run's identity, checked on resume.
  nlohmann::json fp = {{"user", opt.run.fingerprint},
                       {"tau", opt.tau},
                       {"mode", acdc_mode_name(opt.mode)},
                       {"rollback_tau", rollback_tau},
                       {"absolute", opt.absolute},
                       {"metric", metric_label(opt.metric, opt.metric_fn)},
                       {"ablation", ablation_name(opt.ablation)},
                       {"double", opt.double_precision},
                       {"graph", {graph.shape().n_layers, graph.shape().n_heads, graph.shape().n_kv_heads, graph.split_qkv()}},
                       {"examples", data.size()},
                       {"tokens", std::to_string(discover::fnv1a(data.clean)) + "/" + std::to_string(discover::fnv1a(data.corrupted))}};
  int64_t next = 0;  // readers visited (in visiting order)
  double seconds_before = 0;
  std::vector<uint8_t>& keep = e.keep();
  if (nlohmann::json ck = discover::open_json_checkpoint(opt.run.checkpoint, opt.run.resume, "edgewise-acdc-checkpoint", fp, "ACDC");
      !ck.is_null()) {
    try {
      next = ck.at("next").get<int64_t>();
      for (int64_t i : ck.at("removed").get<std::vector<int64_t>>()) keep.at(i) = 0;
      e.current_value = ck.at("current").get<double>();
      res.evaluations = ck.at("evaluations").get<int64_t>();
      res.passes = ck.at("passes").get<int64_t>();
      res.skipped = ck.at("skipped").get<int64_t>();
      seconds_before = ck.at("seconds").get<double>();
      for (const auto& row : ck.at("trajectory")) {
        AcdcStep st;
        st.src = row.at(0).get<int64_t>();
        st.dst = row.at(1).get<int64_t>();
        st.decision = static_cast<AcdcStep::Decision>(row.at(2).get<int>());
        st.metric = row.at(3).get<double>();
        st.delta = row.at(4).get<double>();
        st.evaluations = row.at(5).get<int64_t>();
        res.trajectory.push_back(st);
        if (st.decision != AcdcStep::Decision::Skipped) score[st.src * R + st.dst] = row.at(6).get<double>();
      }
    } catch (const std::exception& ex) {
      fail(opt.run.checkpoint, std::string("damaged ACDC checkpoint (") + ex.what() + ")");
    }
    e.update_live();
    e.full_pass();  // the state of the circuit so far
  }
  CheckpointClock ck_clock(opt.run);
  auto save = [&](int64_t next_reader) {
    if (opt.run.checkpoint.empty() || !dist::is_root()) return;  // rank 0 writes
    nlohmann::json ck = {{"format", "edgewise-acdc-checkpoint"}, {"version", 1}, {"fingerprint", fp},
                         {"next", next_reader}, {"current", e.current_value}, {"evaluations", res.evaluations},
                         {"passes", res.passes}, {"skipped", res.skipped},
                         {"seconds", seconds_before + std::chrono::duration<double>(Clock::now() - t0).count()}};
    std::vector<int64_t> removed;
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < graph.reader_fan_in(r); ++s)
        if (!keep[s * R + r]) removed.push_back(s * R + r);
    ck["removed"] = removed;
    nlohmann::json traj = nlohmann::json::array();
    for (const AcdcStep& st : res.trajectory)
      traj.push_back({st.src, st.dst, static_cast<int>(st.decision), st.metric, st.delta, st.evaluations,
                      score[st.src * R + st.dst]});
    ck["trajectory"] = std::move(traj);
    write_file_atomic(opt.run.checkpoint, ck.dump());
    ck_clock.saved();
  };

  auto record = [&](int64_t s, int64_t d, AcdcStep::Decision dec, double v, double delta, double before) {
    res.trajectory.push_back({s, d, dec, v, delta, res.evaluations});
    if (dec != AcdcStep::Decision::Skipped) score[s * R + d] = v - before;
    if (dec != AcdcStep::Decision::Kept) keep[s * R + d] = 0;
  };
  // The largest K whose recomputed values fit a 2 GiB budget: each mask holds one input per
  // changed reader and one output per changed source, at the prediction positions only one row
  // per prompt (plus full copies of the few changed key/value inputs).
  // Across ranks, every rank sizes its passes for the largest share (rank 0's), so that all run
  // the same passes.
  const double rows_scale = static_cast<double>(dist::range_of(0, data.size()).size()) / static_cast<double>(local.size());
  auto mem_cap = [&](int64_t d) {
    const double full = static_cast<double>(e.tokens_bytes()) * rows_scale;
    const double per_mask = e.change_needs_all(d) ? full * (2.0 * e.n_live() + 2.0)
                                                  : full / e.tokens() * (2.0 * e.n_live() + 2.0) + 4 * full;
    return std::max<int64_t>(1, static_cast<int64_t>(2.0 * (1 << 30) / per_mask));
  };
  auto eval = [&](int64_t d, const std::vector<int64_t>& cand, const at::Tensor& w) {
    res.evaluations += w.size(0);
    res.passes += 1;
    return e.evaluate(d, cand, w);
  };

  int64_t K = std::min<int64_t>(opt.max_candidates, 4);
  for (; next < R; ++next) {
    if (dist::any(opt.run.stopping(), "ACDC's stop request")) {
      save(next);
      res.complete = false;
      break;
    }
    const int64_t d = R - 1 - next;
    std::vector<int64_t> cand;  // latest source first
    for (int64_t s = graph.reader_fan_in(d) - 1; s >= 0; --s) cand.push_back(s);
    const double v0 = e.current_value;
    if (!e.reader_live(d)) {
      for (int64_t s : cand) record(s, d, AcdcStep::Decision::Skipped, v0, 0.0, v0);
      res.skipped += static_cast<int64_t>(cand.size());
    } else if (opt.mode == AcdcOptions::Mode::Classic) {
      // Speculation: mask k removes candidates [i, i + k]; the walk stops at the first kept edge.
      size_t i = 0;
      while (i < cand.size()) {
        const int64_t Kp = std::min<int64_t>({K, static_cast<int64_t>(cand.size() - i), mem_cap(d)});
        std::vector<int64_t> part(cand.begin() + i, cand.begin() + i + Kp);
        Evaluated ev = eval(d, part, at::ones({Kp, Kp}, at::kDouble).tril());
        int64_t accepted = -1, stop_at = -1;
        for (int64_t k = 0; k < Kp; ++k) {
          const double v = ev.values[k], before = e.current_value, delta = loss(v) - loss(before);
          if (passes(delta, opt.tau)) {
            record(part[k], d, AcdcStep::Decision::Removed, v, delta, before);
            e.current_value = v;
            accepted = k;
          } else {
            record(part[k], d, AcdcStep::Decision::Kept, v, delta, before);
            stop_at = k;
            break;
          }
        }
        if (accepted >= 0) e.accept(ev, accepted);
        if (stop_at >= 0) {
          i += stop_at + 1;
          K = std::clamp<int64_t>(2 * stop_at, 1, opt.max_candidates);
        } else {
          i += Kp;
          K = std::min<int64_t>(2 * K, opt.max_candidates);
        }
      }
    } else if (opt.mode == AcdcOptions::Mode::Group) {
      // Recursive halving: a set whose joint removal passes goes at once.
      std::function<void(const std::vector<int64_t>&)> test = [&](const std::vector<int64_t>& set) {
        const int64_t n = static_cast<int64_t>(set.size());
        Evaluated ev = eval(d, set, at::ones({1, n}, at::kDouble));
        const double v = ev.values[0], before = e.current_value, delta = loss(v) - loss(before);
        if (passes(delta, opt.tau)) {
          for (int64_t s : set) record(s, d, AcdcStep::Decision::Removed, v, delta, before);
          e.current_value = v;
          e.accept(ev, 0);
        } else if (n == 1) {
          record(set[0], d, AcdcStep::Decision::Kept, v, delta, before);
        } else {
          test(std::vector<int64_t>(set.begin(), set.begin() + n / 2));
          test(std::vector<int64_t>(set.begin() + n / 2, set.end()));
        }
      };
      test(cand);
    } else {
      // Try many, then roll back (Phylliida/ACDC): every pending edge alone; those that pass, best
      // first, removed together when their joint change passes rollback_tau, else the best half,
      // quarter, ..., (one masked pass tries all these prefixes); the rest are tried again.
      std::vector<int64_t> pending = cand;
      while (!pending.empty()) {
        const double before = e.current_value;
        std::vector<std::pair<double, size_t>> ok;  // (delta, index in pending)
        std::vector<double> single(pending.size());
        for (size_t i = 0; i < pending.size();) {
          const int64_t Kp = std::min<int64_t>({opt.max_candidates, static_cast<int64_t>(pending.size() - i), mem_cap(d)});
          std::vector<int64_t> part(pending.begin() + i, pending.begin() + i + Kp);
          Evaluated ev = eval(d, part, at::eye(Kp, at::kDouble));
          for (int64_t k = 0; k < Kp; ++k) single[i + k] = ev.values[k];
          i += Kp;
        }
        for (size_t i = 0; i < pending.size(); ++i) {
          const double delta = loss(single[i]) - loss(before);
          if (passes(delta, opt.tau)) ok.push_back({opt.absolute ? std::abs(delta) : delta, i});
          else record(pending[i], d, AcdcStep::Decision::Kept, single[i], delta, before);
        }
        if (ok.empty()) break;
        std::stable_sort(ok.begin(), ok.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        const int64_t n = static_cast<int64_t>(ok.size());
        std::vector<int64_t> sizes;  // prefix sizes tried: n, n/2 + 1, n/4 + 1, ..., 1 (Phylliida's i <= pivot)
        sizes.push_back(n);
        for (int64_t p = n / 2; p > 0; p /= 2) sizes.push_back(p + 1);
        if (sizes.back() != 1) sizes.push_back(1);
        std::vector<int64_t> set;
        for (const auto& o : ok) set.push_back(pending[o.second]);
        at::Tensor w = at::zeros({static_cast<int64_t>(sizes.size()), n}, at::kDouble);
        for (size_t k = 0; k < sizes.size(); ++k) w[k].narrow(0, 0, std::min(sizes[k], n)).fill_(1.0);
        Evaluated ev = eval(d, set, w);
        size_t pick = sizes.size() - 1;  // the best single edge passed on its own
        for (size_t k = 0; k < sizes.size(); ++k)
          if (passes(loss(ev.values[k]) - loss(before), rollback_tau)) {
            pick = k;
            break;
          }
        const int64_t m = std::min(sizes[pick], n);
        const double v = ev.values[pick], delta = loss(v) - loss(before);
        for (int64_t i = 0; i < m; ++i) record(set[i], d, AcdcStep::Decision::Removed, v, delta, before);
        e.current_value = v;
        e.accept(ev, static_cast<int64_t>(pick));
        pending.assign(set.begin() + m, set.end());
      }
    }
    e.update_live();
    if (opt.run.progress) {
      int64_t kept_n = 0;
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < graph.reader_fan_in(r); ++s) kept_n += keep[s * R + r];
      opt.run.report({"readers", next + 1, R,
                      {{"edges kept", static_cast<double>(kept_n)},
                       {"evaluations", static_cast<double>(res.evaluations)},
                       {"metric", e.current_value}}});
    }
    if (ck_clock.due()) save(next + 1);
  }
  if (next >= R) {
    res.complete = true;
    if (!opt.run.checkpoint.empty()) save(R);
  }
  res.kept = at::zeros({S, R}, at::kBool);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t s = 0; s < graph.reader_fan_in(r); ++s)
      if (keep[s * R + r]) res.kept[s][r] = true;
  res.metric_final = e.current_value;
  res.last_position_evaluations = e.last_only_evaluations;
  res.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

void acdc_write_trajectory(const AcdcResult& r, const Graph& graph, const std::string& path) {
  std::ostringstream s;
  s << "step,edge,decision,metric,delta,evaluations\n";
  char buf[96];
  for (size_t i = 0; i < r.trajectory.size(); ++i) {
    const AcdcStep& st = r.trajectory[i];
    s << i << "," << graph.edge_name(st.src, st.dst) << "," << acdc_decision_name(st.decision) << ",";
    std::snprintf(buf, sizeof buf, "%.9g,%.9g,%lld\n", st.metric, st.delta, (long long)st.evaluations);
    s << buf;
  }
  write_file_atomic(path, s.str());
}

}  // namespace edgewise
