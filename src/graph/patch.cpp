// The patched forward (see include/edgewise/patch.h and docs/PATCHING.md): the model's layers
// recomputed with one input per reader, the dense path. Per layer, the differences
// (o_s - õ_s) of every source seen so far, [K, S, B*T*D], meet the reader columns of (1 - m),
// [K, R, S], in one batched matmul; each reader's input is the residual minus its row.
// The arithmetic is the block primitives' (src/model/block.h), as in Model::forward (norms in
// fp32, HF rotate_half, SDPA with grouped k/v), so that all-ones masks reproduce the plain run;
// the block's shape (sequential or parallel) decides which residual the MLP's readers read.
//
// Dimension letters: K circuits, B batch, T tokens, D width, H query heads, G key/value heads,
// R readers of a layer (split: H + 2G; head level: H), S sources seen so far, Dh head width.
//
// The sparse path (no gradients, few sources with an ablated edge): only those sources'
// differences are kept and multiplied; the rest of the pass is the same code.
//
// Downstream-only recompute: with a CleanCache and no gradients, the pass starts at the first
// layer that has a reader with an ablated edge, from the cached clean residual and sources.
//
// Not here: KV caches, padding masks.
#include "edgewise/patch.h"

#include <algorithm>
#include <cmath>

#include "edgewise/distributed.h"
#include "edgewise/error.h"
#include "edgewise/tasks.h"
#include "../model/internal.h"
#include "reader_norm.h"

namespace edgewise {

using namespace model_detail;

namespace {

// A flag tensor's entries as bytes on the host (host-side decisions: which sources, readers...).
std::vector<uint8_t> host_flags(const at::Tensor& t) {
  const at::Tensor h = t.to(at::kCPU, at::kByte).contiguous();
  return {h.data_ptr<uint8_t>(), h.data_ptr<uint8_t>() + h.numel()};
}

std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "none";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// Where each layer's readers start in the graph's reader list.
struct ReaderIndex {
  std::vector<int64_t> attn_first, mlp;
  int64_t logits = -1;
};

ReaderIndex reader_index(const Graph& g) {
  const int64_t L = g.shape().n_layers;
  ReaderIndex ri{std::vector<int64_t>(L, -1), std::vector<int64_t>(L, -1), -1};
  for (int64_t j = 0; j < g.n_readers(); ++j) {
    const Graph::Reader& r = g.reader(j);
    if (r.kind == Graph::ReaderKind::Logits) ri.logits = j;
    else if (r.kind == Graph::ReaderKind::Mlp) ri.mlp[r.layer] = j;
    else if (ri.attn_first[r.layer] < 0) ri.attn_first[r.layer] = j;
  }
  return ri;
}

void check_graph(const Model& m, const Graph& g) {
  const ModelConfig& c = m.config();
  const GraphShape& s = g.shape();
  if (s.parallel != c.block.parallel)
    fail("patched forward", std::string("graph of ") + (s.parallel ? "parallel" : "sequential") +
                                " blocks does not match the model's " + (c.block.parallel ? "parallel" : "sequential") +
                                " ones (build it with model_graph)");
  if (s.n_layers != c.n_layers || s.n_heads != c.n_heads || s.n_kv_heads != c.n_kv_heads)
    fail("patched forward", "graph of " + std::to_string(s.n_layers) + " layers, " +
                                std::to_string(s.n_heads) + " heads, " + std::to_string(s.n_kv_heads) +
                                " kv heads does not match the model (" + std::to_string(c.n_layers) + ", " +
                                std::to_string(c.n_heads) + ", " + std::to_string(c.n_kv_heads) + ")");
}

at::Tensor check_tokens(const Model& m, const at::Tensor& tokens, const char* what) {
  if (!tokens.defined() || tokens.dim() != 2 || tokens.size(0) == 0 || tokens.size(1) == 0)
    fail("patched forward", std::string(what) + " must be a non-empty [B, T] tensor, got " + shape_of(tokens));
  if (tokens.scalar_type() != at::kLong && tokens.scalar_type() != at::kInt)
    fail("patched forward", std::string(what) + " must be int64 or int32");
  at::Tensor t = tokens.to(m.device(), at::kLong);
  const ModelConfig& c = m.config();
  const int64_t lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
  if (lo < 0 || hi >= c.vocab_size)
    fail("patched forward", std::string(what) + ": token id " + std::to_string(lo < 0 ? lo : hi) +
                                " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  const int64_t T = t.size(1);
  if (c.positional_embedding && T > c.n_ctx)
    fail("patched forward", std::to_string(T) + " tokens exceed the context length " + std::to_string(c.n_ctx));
  if (c.rope && T > m.rope_cos().size(0))
    fail("patched forward", std::to_string(T) + " tokens exceed the rotary tables (" +
                                std::to_string(m.rope_cos().size(0)) + " positions)");
  return t;
}

// The difference buffer as an autograd argument that autograd does not track: it is written
// row block by row block during the pass, after Mix calls that read its first rows, which
// autograd would (wrongly, for rows never written again) report as an in-place change.
struct BufRef {
  at::Tensor t;        // [n, K, BTD]
  bool zero_w = false;  // every mask weight is 0 (all edges in): the forward is 0, no buffer gradient
};

// corr [K, nr, BTD]: corr[k] = w[k]^T @ rows[:, k] for rows [n, K, BTD], w [K, n, nr].
at::Tensor mix_forward(const at::Tensor& w, const at::Tensor& rows) {
  const int64_t K = w.size(0), n = rows.size(0), BTD = rows.size(2);
  if (K == 1) return at::mm(w.select(0, 0).t(), rows.view({n, BTD})).unsqueeze(0);
  at::Tensor out = at::empty({K, w.size(2), BTD}, rows.options());
  for (int64_t k = 0; k < K; ++k) {
    at::Tensor ok = out.select(0, k);
    at::mm_out(ok, w.select(0, k).t(), rows.select(1, k));
  }
  return out;
}

// mix_forward with gradients. `blocks` are the differentiable tensors whose values the buffer
// rows hold, in order ([n_b, K, BTD] each, n_b summing to n); the backward gives them their
// share of the gradient and w its gradient, without ever copying the buffer.
struct Mix : public torch::autograd::Function<Mix> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& w, at::TensorList blocks,
                            BufRef buf) {
    std::vector<int64_t> sizes;
    for (const at::Tensor& b : blocks) sizes.push_back(b.size(0));
    ctx->save_for_backward({w});
    ctx->saved_data["buf"] = buf.t;
    ctx->saved_data["sizes"] = sizes;
    ctx->saved_data["zero_w"] = buf.zero_w;
    if (buf.zero_w)  // all 0: a broadcast zero, nothing allocated
      return at::zeros({1, 1, 1}, buf.t.options()).expand({w.size(0), w.size(2), buf.t.size(2)});
    return mix_forward(w, buf.t);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const at::Tensor w = ctx->get_saved_variables()[0];  // [K, n, nr]
    const at::Tensor rows = ctx->saved_data["buf"].toTensor();  // [n, K, BTD]
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    const at::Tensor g = grad[0];  // [K, nr, BTD]
    const int64_t K = w.size(0), n = rows.size(0), BTD = rows.size(2);
    torch::autograd::variable_list out(sizes.size() + 2);
    if (ctx->needs_input_grad(0)) {
      // Computed transposed, [nr, BTD] @ [BTD, n]: with few readers (nr ~ 15) MKL runs this
      // orientation about twice as fast as [n, BTD] @ [BTD, nr] (docs/BENCHMARKS.md).
      at::Tensor gwt = at::empty({K, w.size(2), n}, w.options());  // [K, nr, n]
      for (int64_t k = 0; k < K; ++k) {
        at::Tensor gk = gwt.select(0, k);
        at::mm_out(gk, g.select(0, k), rows.select(1, k).t());
      }
      out[0] = gwt.transpose(1, 2);  // [K, n, nr]
    }
    bool any = false;
    for (size_t i = 0; i < sizes.size(); ++i) any = any || ctx->needs_input_grad(i + 1);
    if (any && !ctx->saved_data["zero_w"].toBool()) {  // w = 0: the blocks' gradient is 0 (undefined)
      at::Tensor gb = at::empty({n, K, BTD}, g.options());
      for (int64_t k = 0; k < K; ++k) {
        at::Tensor gk = gb.select(1, k);
        at::mm_out(gk, w.select(0, k), g.select(0, k));  // [n, nr] @ [nr, BTD]
      }
      int64_t off = 0;
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (ctx->needs_input_grad(i + 1)) out[i + 1] = gb.narrow(0, off, sizes[i]);
        off += sizes[i];
      }
    }
    return out;
  }
};

// The pipeline's passes, numbered alike on every stage (every stage runs every pass): a pass's
// messages carry its number, so that backward passes run in any order meet the right ones.
int next_pass_tag() {
  static int64_t n = 0;
  return static_cast<int>(1 + (n++ % 1000000000));
}

enum class Mode {
  Record,  // a plain run recording every source's output (no masks)
  Dense,   // every reader its own input, every source's difference kept (gradients possible)
  Sparse,  // only the sources with an ablated edge kept, only the readers with one recomputed
};

// One pass over tokens [B, T] (see the file comment). The residual x is [Kx, B, T, D] with
// Kx = 1 while every circuit still agrees (before the first reader with an ablated edge) and
// K after; ops broadcast.
class Pass {
 public:
  Pass(const Model& model, const Graph& g, const at::Tensor& tokens, Mode mode, at::ScalarType dt,
       const at::Tensor& abl, const at::Tensor& keep, const at::Tensor& active, const at::Tensor& touched,
       const at::Tensor& fixed = {}, const at::Tensor& embeddings = {}, const at::Tensor& detach = {})
      : model_(model), g_(g), c_(model.config()), ri_(reader_index(g)), mode_(mode), dt_(dt), abl_(abl),
        keep_(keep), tokens_(tokens), fixed_(fixed), embeddings_(embeddings) {
    B_ = tokens.size(0);
    T_ = tokens.size(1);
    D_ = c_.d_model;
    H_ = c_.n_heads;
    G_ = c_.n_kv_heads;
    Dh_ = c_.d_head;
    BTD_ = B_ * T_ * D_;
    K_ = keep.defined() ? keep.size(0) : 1;
    dev_ = tokens.device();
    // The fused norms are CPU loops over float32 / float64; a model without norms (Tracr) has
    // nothing to fuse.
    fusable_ = (dt == at::kFloat || dt == at::kDouble) && dev_.is_cpu() && c_.norm != Norm::None;
    grad_ = mode == Mode::Dense && at::GradMode::is_enabled() &&
            (keep.requires_grad() || (abl.defined() && abl.requires_grad()) ||
             (embeddings.defined() && embeddings.requires_grad()));
    const int64_t n_src = g.n_sources(), n_dst = g.n_readers();
    slot_.assign(n_src, -1);
    touched_.assign(n_dst, mode == Mode::Dense ? 1 : 0);
    if (mode == Mode::Sparse) {
      const std::vector<uint8_t> a = host_flags(active);
      std::vector<int64_t> idx;
      for (int64_t s = 0; s < n_src; ++s)
        if (a[s]) idx.push_back(s);
      for (size_t i = 0; i < idx.size(); ++i) slot_[idx[i]] = static_cast<int64_t>(i);
      at::Tensor rows = index_tensor(idx, dev_);
      keep_rows_ = keep.index_select(1, rows);  // [K, n_active, n_dst]
      touched_ = host_flags(touched);  // readers with an ablated edge
    } else {
      for (int64_t s = 0; s < n_src; ++s) slot_[s] = s;
      keep_rows_ = keep;
    }
    if (grad_) zero_keep_ = (keep == 0).all().item<bool>();
    if (grad_ && detach.defined()) detach_ = host_flags(detach);
    rows_before_.assign(n_src + 1, 0);
    for (int64_t s = 0; s < n_src; ++s) rows_before_[s + 1] = rows_before_[s] + (slot_[s] >= 0);
    const auto bo = at::TensorOptions().dtype(dt).device(dev_);
    const std::vector<int64_t> bs = {rows_before_[n_src], mode == Mode::Record ? 1 : K_, BTD_};
    // A pipeline's Record pass sums the stages' buffers: rows of other stages' sources are zero.
    buf_ = mode == Mode::Record && dist::stages() > 1 ? at::zeros(bs, bo) : at::empty(bs, bo);
  }

  // Runs from layer `start` (the residual entering it and the sources before it from `cache`),
  // or from the embeddings. Returns logits [K, B, P|T, V] (Record: none). In a pipeline this
  // stage runs its own layers: from the residual and store rows the stage before sends (or from
  // the cache when the start lies here or later), sending its own on; the logits come from the
  // last stage (dist.h; Record: the recorded rows are summed over the stages, each holding its own).
  at::Tensor operator()(const CleanCache* cache, int64_t start, const at::Tensor& positions, at::Tensor* rec_resid) {
    const int64_t L = c_.n_layers;
    const int P = dist::stages(), stage = dist::stage();
    const dist::Range mine = dist::stage_range(stage, L);
    const int tag = P > 1 ? next_pass_tag() : 0;
    if (!(cache && start > 0)) start = 0;
    const int64_t first = std::max(start, mine.begin);
    const bool last = stage == P - 1;
    if (stage > 0 && start < mine.begin) {
      receive(stage - 1, mine.begin, tag);
    } else if (first >= mine.end && !last) {
      // Nothing here: the start lies in a later stage, which takes it from the cache.
    } else if (first > 0) {
      x_ = cache->resid.select(0, first).to(dt_).unsqueeze(0);  // [1, B, T, D]
      const int64_t S0 = g_.source_begin(first);
      put_range(0, S0, cache->sources.narrow(0, 0, S0).to(dt_).unsqueeze(1));
    } else {
      at::Tensor x0;  // [B, T, D]
      if (embeddings_.defined()) {
        x0 = embeddings_.to(dt_);
      } else {
        x0 = embed_tokens(c_, model_.weights(), tokens_, dt_);
      }
      if (detached(0)) x0 = x0.detach();
      x_ = x0.unsqueeze(0);
      put_range(0, 1, x0.view({1, 1, B_, T_, D_}));
    }
    std::vector<at::Tensor> resid;
    for (int64_t l = first; l < mine.end; ++l) {
      if (rec_resid) resid.push_back(x_.select(0, 0));
      LayerWeights w = layer_weights(model_.weights(), l);
      if (w.q_w.scalar_type() != dt_) w = layer_weights_as(w, dt_);
      attention(l, w);
      mlp(l, w);
    }
    const bool sent = !last && start < mine.end;
    if (sent) send_on(stage + 1, mine.end, tag);  // before any exchange over all the stages
    if (rec_resid) {
      if (last) resid.push_back(x_.select(0, 0));
      if (P == 1) {
        *rec_resid = at::stack(resid, 0);
      } else {
        at::Tensor all = at::zeros({L + 1, B_, T_, D_}, x_.options());
        if (!resid.empty()) all.narrow(0, first, static_cast<int64_t>(resid.size())).copy_(at::stack(resid, 0));
        dist::sum_over_stages(all, "the clean run's residual stream");
        *rec_resid = all;
      }
    }
    if (mode_ == Mode::Record) {
      if (P > 1) dist::sum_over_stages(buf_, "the recorded source outputs");
      return {};
    }
    if (!last) {
      const std::vector<int64_t> shape = {K_, B_, positions.defined() ? positions.size(1) : T_, c_.vocab_size};
      at::Tensor logits = at::empty(shape, at::TensorOptions().dtype(dt_ == at::kDouble ? at::kDouble : at::kFloat).device(dev_));
      dist::broadcast_from_stage(logits, P - 1, "the pipeline's logits");
      if (!grad_ || !sent) return logits;
      const std::vector<at::Tensor> anchors = grad_anchors();
      // Fixed differences are constants, and with every mask 1 no gradient reaches the store
      // (Mix's zero weights): then only the residual's gradient comes back.
      const std::vector<at::Tensor> sent_blocks = store_grad() ? blocks_ : std::vector<at::Tensor>{};
      return pipeline_sent(anchors, logits, x_, sent_blocks, stage + 1, tag);
    }
    at::Tensor xl = reader_input(L, g_.n_sources(), ri_.logits);  // [Kx, B, T, D]
    const int64_t Kx = xl.size(0);
    if (positions.defined()) {
      const int64_t P = positions.size(1);
      xl = at::gather(xl, 2, positions.view({1, B_, P, 1}).expand({Kx, B_, P, D_}));  // [Kx, B, P, D]
    }
    const auto& W = model_.weights();
    at::Tensor xf = norm(c_, xl, opt_weight(W, "output_norm.weight", dt_), opt_weight(W, "output_norm.bias", dt_));
    at::Tensor logits = at::linear(xf, W.at("output.weight").to(dt_));
    if (Kx != K_) logits = logits.expand({K_, logits.size(1), logits.size(2), logits.size(3)}).contiguous();
    logits = dt_ == at::kDouble ? logits : logits.to(at::kFloat);
    if (P > 1) {
      at::Tensor copy = logits.detach().contiguous().clone();
      dist::broadcast_from_stage(copy, P - 1, "the pipeline's logits");
    }
    return logits;
  }

  // Every source's output [n_src, B, T, D] (Record).
  at::Tensor recorded() const { return buf_.view({buf_.size(0), B_, T_, D_}); }

 private:
  // Whether the store's rows can get a gradient: not when they are fixed differences, nor when
  // every mask is 1 (Mix then gives them none). The same on every stage.
  bool store_grad() const { return !fixed_.defined() && !zero_keep_; }

  // What requires grad among this pass's inputs (the pipeline nodes' anchors).
  std::vector<at::Tensor> grad_anchors() const {
    std::vector<at::Tensor> a;
    for (const at::Tensor& t : {keep_, abl_, embeddings_})
      if (t.defined() && t.requires_grad()) a.push_back(t);
    return a;
  }

  // Pipeline: the residual entering layer l and the store rows of the sources before it, from
  // stage `from` (Record: the residual only). The residual's leading size (1 while every circuit
  // agrees, else K) comes first.
  void receive(int from, int64_t l, int tag) {
    at::Tensor kx = at::empty({1}, at::kLong);
    dist::recv(kx, from, tag, "the pipeline's residual size");
    at::Tensor x = at::empty({kx.item<int64_t>(), B_, T_, D_}, at::TensorOptions().dtype(dt_).device(dev_));
    dist::recv(x, from, tag, "the pipeline's residual stream");
    if (mode_ == Mode::Record) {
      x_ = x;
      return;
    }
    const int64_t n = rows_before_[g_.source_begin(l)];
    at::Tensor rows = buf_.narrow(0, 0, n);  // received in place
    if (n > 0) dist::recv(rows, from, tag, "the pipeline's store of source differences");
    if (grad_) {
      // Only the residual's gradient goes back when the store's is none (store_grad).
      const bool rows_grad = n > 0 && store_grad();
      const std::vector<at::Tensor> anchors = grad_anchors();
      // The rows as a tensor of their own over the buffer's memory (keeping it alive): as a view
      // of the buffer, autograd would refuse the later writes into the buffer's other rows.
      const at::Tensor buf = buf_;
      const at::Tensor own = rows_grad ? at::from_blob(rows.data_ptr(), rows.sizes(), [buf](void*) {}, rows.options())
                                       : at::empty({0}, rows.options());
      auto out = pipeline_received(anchors, x, own, from, tag);
      x = out[0];
      if (n > 0) blocks_.push_back(rows_grad ? out[1] : rows);
    }
    x_ = x;
  }

  // Pipeline: the residual leaving this stage (entering layer l) and the store rows so far, to `to`.
  void send_on(int to, int64_t l, int tag) {
    at::Tensor kx = at::full({1}, x_.size(0), at::kLong);
    dist::send(kx, to, tag, "the pipeline's residual size");
    dist::send(x_.detach().contiguous(), to, tag, "the pipeline's residual stream");
    if (mode_ == Mode::Record) return;
    const int64_t n = rows_before_[g_.source_begin(l)];
    if (n > 0) dist::send(buf_.narrow(0, 0, n), to, tag, "the pipeline's store of source differences");
  }

  // The mask weights [K, n, nr] of buffer rows [lo, hi) for readers r0 + idx[i] (or
  // r0 .. r0 + nr - 1 when idx is empty).
  at::Tensor weights(int64_t lo, int64_t hi, int64_t r0, int64_t nr, const std::vector<int64_t>& idx) const {
    at::Tensor w = keep_rows_.narrow(1, lo, hi - lo);  // [K, n, n_dst]
    if (idx.empty()) return w.narrow(2, r0, nr);
    std::vector<int64_t> cols;
    for (int64_t i : idx) cols.push_back(r0 + i);
    return w.index_select(2, index_tensor(cols, dev_));
  }

  // sum over buffer rows [lo, hi) of keep * difference, for those readers: [K, nr, BTD];
  // undefined when the range is empty.
  at::Tensor mix(int64_t lo, int64_t hi, int64_t r0, int64_t nr, const std::vector<int64_t>& idx) {
    if (hi <= lo) return {};
    at::Tensor w = weights(lo, hi, r0, nr, idx);
    at::Tensor rows = buf_.narrow(0, lo, hi - lo);  // [n, K, BTD]
    if (!grad_) return mix_forward(w, rows);
    std::vector<at::Tensor> sub;  // the blocks holding rows [lo, hi) (blocks never straddle)
    int64_t at_row = 0, covered = 0;
    for (const at::Tensor& b : blocks_) {
      if (at_row >= lo && at_row < hi) {
        sub.push_back(b);
        covered += b.size(0);
      }
      at_row += b.size(0);
    }
    if (covered != hi - lo) fail("patched forward", "internal: difference blocks out of step with the buffer");
    return Mix::apply(w, at::TensorList(sub), BufRef{rows, zero_keep_});
  }

  // The corrections [K, nr, BTD] of readers r0 .. r0 + nr - 1 (or r0 + idx[i]) of layer `layer`
  // (L: the logits), which read the sources [0, S): the sum over those sources of keep * (o - õ);
  // undefined when there is nothing to subtract. Call once per reader group and layer (the
  // chunk state advances). Dense: the rows before the current chunk of layers come from one
  // GEMM for all the chunk's readers (acc_), computed when the chunk starts; the rows produced
  // inside the chunk from smaller GEMMs (without gradients: one per layer for all the layer's
  // readers, then the MLP's own layer's heads; with gradients: one per reader group). Sparse:
  // one small GEMM over the kept rows.
  // Without gradients the result belongs to the caller (it may overwrite it). With gradients and
  // every mask 1 (EAP's point), the corrections are a broadcast zero whose gradient is the
  // masks': *zero is set.
  at::Tensor corrections(int64_t layer, int64_t S, int64_t r0, int64_t nr, const std::vector<int64_t>& idx,
                         bool* zero = nullptr) {
    const int64_t hi = rows_before_[S];
    if (zero) *zero = false;
    if (grad_ && zero_keep_) {
      // No chunks: nothing to add up in the forward; one Mix over all rows, its backward the
      // scores' GEMM.
      if (zero) *zero = true;
      return mix(0, hi, r0, nr, idx);
    }
    int64_t lo = 0;
    at::Tensor acc;  // [K, nr, BTD]
    if (mode_ == Mode::Dense) {
      if (layer < c_.n_layers && layer >= chunk_end_) {
        // A new chunk: enough layers that their readers fill ~chunk_columns_ GEMM rows (the
        // logits join the last one).
        const int64_t per_layer = ri_.mlp[layer] - ri_.attn_first[layer] + 1;
        const int64_t l1 =
            std::min(c_.n_layers, layer + std::max<int64_t>(1, (chunk_columns_ + per_layer - 1) / per_layer));
        chunk_r0_ = ri_.attn_first[layer];
        const int64_t r_hi = l1 == c_.n_layers ? g_.n_readers() : ri_.attn_first[l1];
        chunk_n0_ = rows_before_[g_.sources_before_attn(layer)];
        acc_ = mix(0, chunk_n0_, chunk_r0_, r_hi - chunk_r0_, {});
        chunk_nr_ = r_hi - chunk_r0_;
        acc_fresh_ = !acc_.defined();  // no rows before the chunk: the per-layer GEMMs write, not add
        chunk_end_ = l1;
        acc_parts_.clear();
        if (grad_ && acc_.defined()) {
          // One piece per reader group the layers will ask for (a layer's attention readers, its
          // MLP, the logits): a split's backward concatenates their gradients once, where a
          // narrow per group would zero-fill and sum a chunk-sized gradient each time.
          std::vector<int64_t> starts;
          for (int64_t li = layer; li < l1; ++li) starts.push_back(ri_.attn_first[li]), starts.push_back(ri_.mlp[li]);
          if (l1 == c_.n_layers) starts.push_back(ri_.mlp[c_.n_layers - 1] + 1);
          starts.push_back(r_hi);
          std::vector<int64_t> sizes;
          for (size_t i = 0; i + 1 < starts.size(); ++i) sizes.push_back(starts[i + 1] - starts[i]);
          std::vector<at::Tensor> parts = acc_.split_with_sizes(sizes, 1);
          for (size_t i = 0; i < parts.size(); ++i) acc_parts_[starts[i]] = parts[i];
        }
      }
      if (!grad_ && layer < c_.n_layers && layer != layer_done_) {
        // Second level (no gradients): at a layer's first reader group, the rows from the chunk's
        // start to this layer's attention, for all the layer's readers (and the logits at the
        // last layer) in one GEMM of ~16 rows, instead of one for the attention readers and a
        // matrix-vector product for the MLP (5 GMAC/s against 20-35).
        const int64_t hi_l = rows_before_[g_.sources_before_attn(layer)];
        const int64_t ra = ri_.attn_first[layer], rb = layer == c_.n_layers - 1 ? g_.n_readers() : ri_.mlp[layer] + 1;
        if (hi_l > chunk_n0_) {
          if (!acc_.defined()) acc_ = at::empty({K_, chunk_nr_, BTD_}, x_.options());
          at::Tensor part = acc_.narrow(1, ra - chunk_r0_, rb - ra);
          const at::Tensor w = weights(chunk_n0_, hi_l, ra, rb - ra, {});
          const at::Tensor rows = buf_.narrow(0, chunk_n0_, hi_l - chunk_n0_);
          for (int64_t k = 0; k < K_; ++k) {
            at::Tensor pk = part.select(0, k);
            if (acc_fresh_) at::mm_out(pk, w.select(0, k).t(), rows.select(1, k));
            else pk.addmm_(w.select(0, k).t(), rows.select(1, k));
          }
        }
        layer_lo_ = hi_l;
        layer_done_ = layer;
      }
      if (acc_.defined()) {
        auto it = acc_parts_.find(r0);
        acc = it != acc_parts_.end() && it->second.size(1) == nr ? it->second : acc_.narrow(1, r0 - chunk_r0_, nr);
      }
      lo = grad_ ? chunk_n0_ : layer_lo_;
    }
    if (grad_) {
      at::Tensor corr = mix(lo, hi, r0, nr, idx);
      if (acc.defined()) corr = corr.defined() ? acc + corr : acc;
      return corr;
    }
    if (hi <= lo) return acc;
    const at::Tensor w = weights(lo, hi, r0, nr, idx);  // [K, n, nr]
    const at::Tensor rows = buf_.narrow(0, lo, hi - lo);
    if (!acc.defined()) return mix_forward(w, rows);
    // acc is this group's slice of the chunk's GEMM, used by no one else: add in place.
    for (int64_t k = 0; k < K_; ++k) acc.select(0, k).addmm_(w.select(0, k).t(), rows.select(1, k));
    return acc;
  }

  // The readers' inputs x - c [nr, K * B * T, D] (x repeated when c is undefined: [nr, Kx * B * T, D]).
  at::Tensor subtract(const at::Tensor& c, int64_t nr) const {
    const int64_t Kx = x_.size(0);
    const at::Tensor xv = x_.reshape({1, Kx, BTD_});
    if (!c.defined()) return xv.expand({nr, Kx, BTD_}).reshape({nr, Kx * B_ * T_, D_});
    if (grad_) return (xv - c.transpose(0, 1)).reshape({nr, K_ * B_ * T_, D_});
    at::Tensor out = at::empty({nr, K_, BTD_}, x_.options());
    at::sub_out(out, xv, c.transpose(0, 1));
    return out.view({nr, K_ * B_ * T_, D_});
  }

  fused::NormSpec norm_spec(const at::Tensor& w, const at::Tensor& b) const {
    fused::NormSpec n;
    n.w = w;
    n.b = b;
    n.eps = c_.norm_eps;
    n.layer_norm = c_.norm == Norm::LayerNorm;
    return n;
  }

  // norm(x - c) for nr readers: [nr, K * B * T, D] ([nr, Kx * B * T, D] when c is undefined).
  // Without gradients one fused pass (src/graph/reader_norm.cpp), in place over c when it
  // allows; with gradients ATen's ops (autograd).
  at::Tensor normed(const at::Tensor& c, int64_t nr, const at::Tensor& nw, const at::Tensor& nb) {
    if (grad_ || !fusable_ || !c.defined()) return norm(c_, subtract(c, nr), nw, nb);
    const int64_t Kx = x_.size(0), BT = B_ * T_;
    const at::Tensor c4 = c.view({K_, nr, BT, D_});
    const at::Tensor out = K_ == 1 && c4.is_contiguous() ? c4 : at::empty({nr, K_, BT, D_}, x_.options());
    fused::sub_norm(x_.reshape({Kx, BT, D_}).contiguous(), c4, norm_spec(nw, nb), out, {});
    return out.view({nr, K_ * BT, D_});
  }

  // Inputs [nr, K * B * T, D] of readers r0 .. r0 + nr - 1 (or r0 + idx[i]) of layer `layer`.
  at::Tensor reader_inputs(int64_t layer, int64_t S, int64_t r0, int64_t nr, const std::vector<int64_t>& idx) {
    return subtract(corrections(layer, S, r0, nr, idx), nr);
  }

  // One reader's input [Kx, B, T, D]: x itself unless it has an ablated edge.
  at::Tensor reader_input(int64_t layer, int64_t S, int64_t r) {
    if (!touched_[r]) return x_;
    at::Tensor in = reader_inputs(layer, S, r, 1, {});  // [1, Kx or K * B * T, D]
    return in.view({in.size(1) / (B_ * T_), B_, T_, D_});
  }

  // One reader's normalised input [Kx or K, B, T, D].
  at::Tensor normed_input(int64_t layer, int64_t S, int64_t r, const at::Tensor& nw, const at::Tensor& nb) {
    if (!touched_[r]) return norm(c_, x_, nw, nb);
    at::Tensor in = normed(corrections(layer, S, r, 1, {}), 1, nw, nb);
    return in.view({in.size(1) / (B_ * T_), B_, T_, D_});
  }

  // Records the outputs `out` [n, Kx, B, T, D] of sources [s0, s0 + n): Record keeps them;
  // otherwise the kept ones' differences (o - õ) go to the buffer.
  void put_range(int64_t s0, int64_t n, const at::Tensor& out) {
    if (mode_ == Mode::Record) {
      at::NoGradGuard ng;
      buf_.narrow(0, s0, n).view({n, 1, B_, T_, D_}).copy_(out);
      return;
    }
    const int64_t r0 = rows_before_[s0], nk = rows_before_[s0 + n] - r0;
    if (nk == 0) return;
    at::Tensor o = out, a = fixed_.defined() ? fixed_.narrow(0, s0, n) : abl_.narrow(0, s0, n);
    if (nk != n) {  // sparse: the kept ones only (their buffer rows are consecutive); `out` may hold only them
      std::vector<int64_t> pick;
      for (int64_t i = 0; i < n; ++i)
        if (slot_[s0 + i] >= 0) pick.push_back(i);
      at::Tensor p = index_tensor(pick, dev_);
      if (o.size(0) == n) o = o.index_select(0, p);
      a = a.index_select(0, p);
    }
    a = a.unsqueeze(1);  // [nk, 1, B|1, T|1, D]
    at::Tensor dst = buf_.narrow(0, r0, nk);  // [nk, K, BTD]
    if (fixed_.defined()) {  // the given differences, not this pass's (no gradient into them)
      at::NoGradGuard ng;
      at::Tensor d = a.expand({nk, K_, B_, T_, D_}).reshape({nk, K_, BTD_});
      dst.copy_(d);
      if (grad_) blocks_.push_back(dst);
      return;
    }
    if (grad_) {
      at::Tensor d = (o - a).expand({nk, K_, B_, T_, D_}).reshape({nk, K_, BTD_});
      {
        at::NoGradGuard ng;
        dst.copy_(d);
      }
      blocks_.push_back(d);
      return;
    }
    at::NoGradGuard ng;
    at::Tensor dv = dst.view({nk, K_, B_, T_, D_});
    if (o.size(1) == K_) at::sub_out(dv, o, a);
    else dv.copy_(o - a);
  }

  // Only the kept sources among [s0, s0 + n), as local indices (all in Record and Dense).
  std::vector<int64_t> kept(int64_t s0, int64_t n) const {
    std::vector<int64_t> r;
    for (int64_t i = 0; i < n; ++i)
      if (mode_ == Mode::Record || slot_[s0 + i] >= 0) r.push_back(i);
    return r;
  }

  void attention(int64_t l, const LayerWeights& w) {
    x_block_ = x_;  // the block's input: what a parallel block's MLP reads
    const int64_t H = H_, G = G_, Dh = Dh_, T = T_;
    const bool split = g_.split_qkv();
    const int64_t nr = split ? H + 2 * G : H, r0 = ri_.attn_first[l], S = g_.sources_before_attn(l);
    std::vector<int64_t> tl;  // readers of this layer with an ablated edge (local indices)
    for (int64_t j = 0; j < nr; ++j)
      if (touched_[r0 + j]) tl.push_back(j);
    const at::Tensor Wqkv = qkv_weight(w).view({H + 2 * G, Dh, D_}), bqkv = qkv_bias(w);
    // Head level: head h reads k and v through its key/value head's weights.
    auto head_level_w = [&](const at::Tensor& wt, int64_t off) {
      return wt.narrow(0, off, G).repeat_interleave(H / G, 0);  // [H, Dh, D]
    };
    auto head_level_b = [&](int64_t off) {
      return bqkv.view({H + 2 * G, Dh}).narrow(0, off, G).repeat_interleave(H / G, 0);  // [H, Dh]
    };
    // Per-reader projection: xn [m, N*T, D], weights [m, Dh, D], bias [m, Dh] -> [m, N*T, Dh].
    const auto& project = project_heads;
    auto rows = [&](const at::Tensor& t, const std::vector<int64_t>& idx) {
      return t.index_select(0, index_tensor(idx, dev_));
    };
    at::Tensor q, k, v;  // [N, H, T, Dh], [N, H or G, T, Dh]
    int64_t N;
    if (static_cast<int64_t>(tl.size()) == nr) {
      // Every reader its own input (the dense path).
      bool zero = false;
      const at::Tensor corr = corrections(l, S, r0, nr, {}, &zero);
      const at::Tensor b = bqkv.defined() ? bqkv.view({H + 2 * G, Dh}) : at::Tensor();
      const bool weights_grad = w.an_w.requires_grad() || (w.an_b.defined() && w.an_b.requires_grad()) ||
                                Wqkv.requires_grad() || (b.defined() && b.requires_grad());
      at::Tensor xn, yf;  // the normalised inputs [nr, N*T, D]; split and fused: the projections [nr, N*T, Dh]
      // bf16 weights on the CPU too: the node normalises in fp32 and projects in bf16, keeping
      // two numbers per row instead of ATen's normalised copies of every reader's input (an
      // 8B model's EAP held 13 GB of them).
      const bool fused_grad = fusable_ || (dt_ == at::kBFloat16 && dev_.is_cpu() && c_.norm != Norm::None);
      if (split && grad_ && fused_grad && corr.defined() && !weights_grad) {
        // Norm and projection as one autograd node (src/graph/reader_norm.cpp): at EAP's point
        // (every correction 0) one norm and one GEMM for all readers.
        const int64_t Kx = x_.size(0);
        yf = fused::norm_project(x_.reshape({Kx, B_ * T, D_}).contiguous(), corr.view({K_, nr, B_ * T, D_}), zero,
                                 norm_spec(w.an_w, w.an_b), Wqkv, b);
        N = yf.size(1) / T;
      } else {
        xn = normed(corr, nr, w.an_w, w.an_b);
        N = xn.size(1) / T;
      }
      if (split) {
        at::Tensor y = (yf.defined() ? yf : project(xn, Wqkv, b)).view({nr, N, T, Dh}).transpose(0, 1);  // [N, nr, T, Dh]
        q = y.narrow(1, 0, H);
        k = y.narrow(1, H, G);
        v = y.narrow(1, H + G, G);
      } else {
        auto part = [&](const at::Tensor& wt, const at::Tensor& bb) {
          return project(xn, wt, bb).view({H, N, T, Dh}).transpose(0, 1);
        };
        q = part(Wqkv.narrow(0, 0, H), b.defined() ? b.narrow(0, 0, H) : b);
        k = part(head_level_w(Wqkv, H), b.defined() ? head_level_b(H) : b);
        v = part(head_level_w(Wqkv, H + G), b.defined() ? head_level_b(H + G) : b);
      }
    } else {
      // As the plain forward on the shared input; readers with an ablated edge then replace
      // their slice of q, k or v with the projection of their own input.
      const int64_t Kx = x_.size(0);
      at::Tensor qkv = qkv_linear(w, norm(c_, x_.reshape({Kx * B_, T, D_}), w.an_w, w.an_b));  // [Kx*B, T, (H+2G)*Dh]
      N = Kx * B_;
      if (tl.empty()) {
        at::Tensor q4 = qkv.view({N, T, H + 2 * G, Dh});
        q = q4.narrow(2, 0, H).transpose(1, 2);
        k = q4.narrow(2, H, G).transpose(1, 2);
        v = q4.narrow(2, H + G, G).transpose(1, 2);
      } else {
        const int64_t ntl = static_cast<int64_t>(tl.size());
        at::Tensor xn = normed(corrections(l, S, r0, ntl, tl), ntl, w.an_w, w.an_b);
        if (Kx != K_) qkv = qkv.repeat({K_, 1, 1});
        N = K_ * B_;
        at::Tensor q4 = qkv.view({N, T, H + 2 * G, Dh});
        at::Tensor idx = index_tensor(tl, dev_);
        auto place = [&](const at::Tensor& y) { return y.view({y.size(0), N, T, Dh}).permute({1, 2, 0, 3}); };
        if (split) {
          const at::Tensor b = bqkv.defined() ? rows(bqkv.view({H + 2 * G, Dh}), tl) : at::Tensor();
          q4.index_copy_(2, idx, place(project(xn, rows(Wqkv, tl), b)));
          q = q4.narrow(2, 0, H).transpose(1, 2);
          k = q4.narrow(2, H, G).transpose(1, 2);
          v = q4.narrow(2, H + G, G).transpose(1, 2);
        } else {
          at::Tensor qh = q4.narrow(2, 0, H);                                  // [N, T, H, Dh] (a view)
          at::Tensor kh = q4.narrow(2, H, G).repeat_interleave(H / G, 2);      // [N, T, H, Dh]
          at::Tensor vh = q4.narrow(2, H + G, G).repeat_interleave(H / G, 2);  // [N, T, H, Dh]
          const at::Tensor b = bqkv.defined() ? bqkv.view({H + 2 * G, Dh}) : at::Tensor();
          qh.index_copy_(2, idx, place(project(xn, rows(Wqkv.narrow(0, 0, H), tl), b.defined() ? rows(b.narrow(0, 0, H), tl) : b)));
          kh.index_copy_(2, idx, place(project(xn, rows(head_level_w(Wqkv, H), tl), b.defined() ? rows(head_level_b(H), tl) : b)));
          vh.index_copy_(2, idx, place(project(xn, rows(head_level_w(Wqkv, H + G), tl), b.defined() ? rows(head_level_b(H + G), tl) : b)));
          q = qh.transpose(1, 2);
          k = kh.transpose(1, 2);
          v = vh.transpose(1, 2);
        }
      }
    }
    q = head_norm(c_, q, w.qn_w);  // per-head q / k norms (Gemma 3), before the rotary embedding
    k = head_norm(c_, k, w.kn_w);
    if (c_.rope) {
      // The layer's tables [1, 1, T, Dr] (a sliding-window layer may have its own base).
      auto table = [&](const at::Tensor& t) { return t.narrow(0, 0, T).to(dt_).view({1, 1, T, t.size(1)}); };
      const at::Tensor cs = table(model_.rope_cos(l)), sn = table(model_.rope_sin(l));
      q = rotary(q, cs, sn);
      k = rotary(k, cs, sn);
    }
    at::Tensor z = causal_attention(q, k, v, attn_spec(c_, l));  // [N, H, T, Dh]
    const int64_t Kz = N / B_;
    const at::Tensor wo = out_proj_heads(c_, w);  // [H, Dh, D]
    const int64_t s_head = g_.head_source(l, 0);
    at::Tensor attn_out;  // [Kz, B, T, D]
    if (mode_ == Mode::Dense) {
      // The per-head outputs are all needed; their sum is the attention output.
      at::Tensor heads = head_results(z.transpose(0, 1).reshape({H, N * T, Dh}), wo);  // [H, N*T, D]
      // Post-norms: each head's share of the normed attention output (docs/PATCHING.md).
      heads = post_norm_shares(c_, heads, heads.sum(0), w.pan_w);
      if (!detach_.empty()) {
        std::vector<uint8_t> flag(detach_.begin() + s_head, detach_.begin() + s_head + H);
        if (std::find(flag.begin(), flag.end(), 1) != flag.end()) {
          const at::Tensor f = at::tensor(at::ArrayRef<uint8_t>(flag)).to(dev_, at::kBool);
          heads = at::where(f.view({H, 1, 1}), heads.detach(), heads);
        }
      }
      attn_out = heads.sum(0).view({Kz, B_, T, D_});
      if (w.o_b.defined()) attn_out = attn_out + w.o_b;
      put_range(s_head, H, heads.view({H, Kz, B_, T, D_}));
    } else {
      const at::Tensor raw = at::linear(z.transpose(1, 2).reshape({N, T, H * Dh}), w.o_w, w.o_b).view({Kz, B_, T, D_});
      attn_out = post_norm(c_, raw, w.pan_w);
      std::vector<int64_t> hs = kept(s_head, H);
      if (!hs.empty()) {
        at::Tensor zh = z.transpose(0, 1);  // [H, N, T, Dh]
        at::Tensor wh = wo;
        if (static_cast<int64_t>(hs.size()) != H) {
          zh = rows(zh, hs);
          wh = rows(wo, hs);
        }
        const int64_t nh = static_cast<int64_t>(hs.size());
        at::Tensor heads = head_results(zh.reshape({nh, N * T, Dh}), wh).view({nh, Kz, B_, T, D_});
        heads = post_norm_shares(c_, heads, raw, w.pan_w);
        put_range(s_head, H, heads);  // all H, or the kept ones only
      }
    }
    x_ = x_ + attn_out;
  }

  void mlp(int64_t l, const LayerWeights& w) {
    const int64_t r = ri_.mlp[l];
    at::Tensor xn;  // [Km, B, T, D]
    if (mlp_reads_block_input(c_)) {
      // Parallel block: the MLP's readers read the block's input (the graph gives them no edge
      // from this layer's heads); the residual with the attention output added waits.
      const at::Tensor after_attn = x_;
      x_ = x_block_;
      xn = normed_input(l, g_.sources_before_mlp(l), r, w.fn_w, w.fn_b);
      x_ = after_attn;
    } else {
      xn = normed_input(l, g_.sources_before_mlp(l), r, w.fn_w, w.fn_b);
    }
    at::Tensor out = post_norm(c_, mlp_output(c_, w, xn, nullptr, /*bias=*/true), w.pfn_w);
    const int64_t s = g_.mlp_source(l);
    if (detached(s)) out = out.detach();
    x_ = x_ + out;
    if (mode_ == Mode::Record || slot_[s] >= 0)
      put_range(s, 1, (w.down_b.defined() ? out - w.down_b : out).unsqueeze(0));  // the source has no bias
  }

  const Model& model_;
  const Graph& g_;
  const ModelConfig& c_;
  const ReaderIndex ri_;
  const Mode mode_;
  const at::ScalarType dt_;
  at::Tensor abl_, keep_, tokens_, fixed_, embeddings_;
  bool zero_keep_ = false;  // dense with gradients, every mask 1: the corrections are all 0
  std::vector<uint8_t> detach_;  // per source: its output passes no gradient (grad mode only)
  bool detached(int64_t s) const { return !detach_.empty() && detach_[s]; }
  c10::Device dev_ = c10::kCPU;  // the model's, where the tokens were moved
  int64_t B_ = 0, T_ = 0, D_ = 0, H_ = 0, G_ = 0, Dh_ = 0, BTD_ = 0, K_ = 1;
  bool grad_ = false;
  bool fusable_ = false;  // float32 / float64: the fused norms (reader_norm.h) apply
  std::vector<int64_t> slot_, rows_before_;
  std::vector<uint8_t> touched_;
  at::Tensor keep_rows_, buf_, x_, x_block_;
  at::Tensor acc_;  // dense: the current chunk's corrections from the rows before it [K, n, BTD]
  std::map<int64_t, at::Tensor> acc_parts_;  // with gradients: acc_ split by first reader of each group
  int64_t chunk_end_ = 0, chunk_r0_ = 0, chunk_n0_ = 0, chunk_nr_ = 0;
  bool acc_fresh_ = false;                    // acc_ allocated empty (first chunk): written, not added to
  int64_t layer_done_ = -1, layer_lo_ = 0;  // no gradients: the last layer whose per-layer GEMM ran, its end row

 public:
  int64_t chunk_columns_ = 64;
  std::vector<at::Tensor> blocks_;
};

at::ScalarType model_dtype(const Model& m) { return m.dtype() == DType::BF16 ? at::kBFloat16 : at::kFloat; }

}  // namespace

const char* ablation_name(Ablation a) { return enum_name(kAblationNames, a); }

Ablation ablation_from_string(const std::string& s) { return enum_parse(kAblationNames, s, "ablation", "ablation"); }

CleanCache clean_cache(const Model& model, const Graph& graph, const at::Tensor& tokens) {
  check_graph(model, graph);
  at::Tensor t = check_tokens(model, tokens, "tokens");
  at::NoGradGuard no_grad;
  at::Tensor resid;
  Pass pass(model, graph, t, Mode::Record, model_dtype(model), {}, {}, {}, {});
  pass(nullptr, 0, {}, &resid);
  return {resid, pass.recorded(), t.clone()};
}

Graph model_graph(const Model& model, bool split_qkv) {
  const ModelConfig& c = model.config();
  return Graph(GraphShape{c.n_layers, c.n_heads, c.n_kv_heads, c.block.parallel}, split_qkv);
}

void check_batch_padding(const Model& model, const Batch& b, const std::string& where) {
  if (model.config().causal || b.size() == 0) return;
  const int64_t T = b.clean.size(1);
  for (const auto& [len, what] : {std::pair{b.clean_len, "clean"}, std::pair{b.corrupted_len, "corrupted"}}) {
    const at::Tensor short_rows = (len.to(at::kCPU) != T).nonzero();
    if (short_rows.numel() == 0) continue;
    const int64_t i = short_rows[0][0].item<int64_t>();
    const bool has_line = i < static_cast<int64_t>(b.lines.size()) && b.lines[i] > 0;
    const std::string line = has_line ? " (line " + std::to_string(b.lines[i]) + ")" : "";
    fail(where, std::string("this model's attention is not causal, so padding would be attended to: every prompt "
                            "must have the same number of tokens; example ") +
                    std::to_string(i) + line + " has " + std::to_string(len[i].item<int64_t>()) + " " + what +
                    " tokens, the longest " + std::to_string(T));
  }
}

at::Tensor source_outputs(const Model& model, const Graph& graph, const at::Tensor& tokens,
                          std::optional<at::ScalarType> dtype) {
  check_graph(model, graph);
  at::Tensor t = check_tokens(model, tokens, "tokens");
  at::NoGradGuard no_grad;
  Pass pass(model, graph, t, Mode::Record, dtype.value_or(model_dtype(model)), {}, {}, {}, {});
  pass(nullptr, 0, {}, nullptr);
  return pass.recorded();  // [n_src, B, T, D]
}

namespace {

// [B, T] 1.0 where a position holds a real token (t < lengths[b]), in dtype dt.
at::Tensor real_positions(const at::Tensor& lengths, int64_t B, int64_t T, at::ScalarType dt, const c10::Device& dev) {
  if (lengths.defined()) {
    if (lengths.dim() != 1 || lengths.size(0) != B)
      fail("mean ablation", "lengths must be [" + std::to_string(B) + "], got " + shape_of(lengths));
    if (lengths.min().item<int64_t>() < 1 || lengths.max().item<int64_t>() > T)
      fail("mean ablation", "lengths must lie in [1, " + std::to_string(T) + "]");
  }
  return real_token_mask(lengths, B, T, dt, dev);
}

// Sum of the sources over real tokens and the token counts: Mean [n, 1, 1, D] and [1, 1, 1, 1];
// MeanPerPosition [n, 1, T, D] and [1, 1, T, 1].
std::pair<at::Tensor, at::Tensor> masked_sums(const Model& model, const Graph& graph, Ablation how,
                                              const at::Tensor& tokens, const at::Tensor& lengths) {
  at::Tensor src = source_outputs(model, graph, tokens);  // [n, B, T, D]
  at::Tensor w = real_positions(lengths, tokens.size(0), tokens.size(1), src.scalar_type(), src.device())
                     .unsqueeze(0)
                     .unsqueeze(-1);  // [1, B, T, 1]
  if (how == Ablation::Mean) return {(src * w).sum(at::IntArrayRef{1, 2}, true), w.sum(at::IntArrayRef{1, 2}, true)};
  return {(src * w).sum(1, true), w.sum(1, true)};
}

at::Tensor finish_mean(const at::Tensor& sum, const at::Tensor& count) {
  return sum / count.clamp_min(1);  // positions without a real token: 0
}

}  // namespace

at::Tensor ablated_values(const Model& model, const Graph& graph, Ablation how, const at::Tensor& clean,
                          const at::Tensor& corrupted, const at::Tensor& lengths) {
  const int64_t D = model.config().d_model;
  switch (how) {
    case Ablation::Zero:
      return at::zeros({graph.n_sources(), 1, 1, D}, at::TensorOptions().dtype(model_dtype(model)).device(model.device()));
    case Ablation::Resample:
      if (!corrupted.defined() || !clean.defined() || corrupted.sizes() != clean.sizes())
        fail("resample ablation", "corrupted tokens " + shape_of(corrupted) + " must have the clean tokens' shape " +
                                      shape_of(clean));
      return source_outputs(model, graph, corrupted);
    case Ablation::Mean:
    case Ablation::MeanPerPosition: {
      auto [sum, count] = masked_sums(model, graph, how, clean, lengths);
      return finish_mean(sum, count);
    }
  }
  fail("ablation", "unknown ablation");
}

at::Tensor dataset_mean(const Model& model, const Graph& graph, Ablation how, const at::Tensor& tokens,
                        const at::Tensor& lengths, int64_t batch_size, const std::function<void(int64_t)>& progress) {
  if (how != Ablation::Mean && how != Ablation::MeanPerPosition)
    fail("dataset mean", std::string("ablation '") + ablation_name(how) + "' is not a mean");
  if (batch_size < 1) fail("dataset mean", "batch size must be >= 1");
  if (!tokens.defined() || tokens.dim() != 2 || tokens.size(0) == 0)
    fail("dataset mean", "tokens must be a non-empty [N, T] tensor, got " + shape_of(tokens));
  const int64_t N = tokens.size(0);
  at::Tensor sum, count;
  if (!dist::active()) {
    for (int64_t i = 0; i < N; i += batch_size) {
      const int64_t n = std::min(batch_size, N - i);
      auto [s, c] = masked_sums(model, graph, how, tokens.narrow(0, i, n),
                                lengths.defined() ? lengths.narrow(0, i, n) : at::Tensor());
      sum = sum.defined() ? sum + s : s;
      count = count.defined() ? count + c : c;
      if (progress) progress(i + n);
    }
    return finish_mean(sum, count);
  }
  // Across ranks: each computes its run of whole batches' sums; every batch's sums are gathered
  // and added in batch order, the additions one rank makes, so the mean is one rank's to the bit.
  const int64_t n_batches = (N + batch_size - 1) / batch_size;
  const dist::Range mine = dist::my_range(n_batches);
  std::vector<at::Tensor> ls, lc;
  for (int64_t k = mine.begin; k < mine.end; ++k) {
    const int64_t i = k * batch_size, n = std::min(batch_size, N - i);
    auto [s, c] = masked_sums(model, graph, how, tokens.narrow(0, i, n),
                              lengths.defined() ? lengths.narrow(0, i, n) : at::Tensor());
    ls.push_back(s), lc.push_back(c);
    if (progress) progress(dist::job_progress(k + 1 - mine.begin, mine.size(), N));
  }
  if (ls.empty()) {  // no batch here: the shapes from one example
    auto [s, c] = masked_sums(model, graph, how, tokens.narrow(0, 0, 1),
                              lengths.defined() ? lengths.narrow(0, 0, 1) : at::Tensor());
    ls.push_back(s), lc.push_back(c);
  }
  auto gathered = [&](const std::vector<at::Tensor>& mine_parts, const char* what) {
    std::vector<int64_t> shape = mine_parts[0].sizes().vec();
    shape.insert(shape.begin(), n_batches);
    at::Tensor all = at::zeros(shape, mine_parts[0].options());
    if (mine.size() > 0) all.narrow(0, mine.begin, mine.size()).copy_(at::stack(mine_parts));
    dist::all_reduce_sum(all, what);
    return all;
  };
  const at::Tensor sums = gathered(ls, "the dataset mean's sums"), counts = gathered(lc, "the dataset mean's counts");
  sum = sums[0], count = counts[0];
  for (int64_t k = 1; k < n_batches; ++k) sum = sum + sums[k], count = count + counts[k];
  return finish_mean(sum, count);
}

at::Tensor patched_forward(const Model& model, const Graph& graph, const at::Tensor& tokens,
                           const at::Tensor& ablated, const at::Tensor& masks_in, const PatchOptions& opt) {
  check_graph(model, graph);
  at::Tensor t = check_tokens(model, tokens, "tokens");
  const int64_t B = t.size(0), T = t.size(1), D = model.config().d_model;
  const int64_t n_src = graph.n_sources(), n_dst = graph.n_readers();
  if (!masks_in.defined() || (masks_in.dim() != 2 && masks_in.dim() != 3) || !masks_in.is_floating_point())
    fail("patched forward", "masks must be a floating [K, n_src, n_dst] tensor, got " + shape_of(masks_in));
  const c10::Device dev = model.device();  // inputs elsewhere are moved (autograd follows the move)
  at::Tensor masks = (masks_in.dim() == 2 ? masks_in.unsqueeze(0) : masks_in).to(dev);
  if (masks.size(0) == 0 || masks.size(1) != n_src || masks.size(2) != n_dst)
    fail("patched forward", "masks must be [K, " + std::to_string(n_src) + ", " + std::to_string(n_dst) +
                                "] for this graph, got " + shape_of(masks_in));
  if (!ablated.defined() || ablated.dim() != 4 || ablated.size(0) != n_src ||
      (ablated.size(1) != 1 && ablated.size(1) != B) || (ablated.size(2) != 1 && ablated.size(2) != T) ||
      ablated.size(3) != D)
    fail("patched forward", "ablated values must be [" + std::to_string(n_src) + ", " + std::to_string(B) +
                                " or 1, " + std::to_string(T) + " or 1, " + std::to_string(D) + "], got " +
                                shape_of(ablated));
  at::Tensor positions;
  if (opt.positions.defined()) {
    positions = opt.positions.to(dev, at::kLong);
    if (positions.dim() != 2 || positions.size(0) != B || positions.size(1) == 0)
      fail("patched forward", "positions must be [" + std::to_string(B) + ", P], got " + shape_of(opt.positions));
    const int64_t lo = positions.min().item<int64_t>(), hi = positions.max().item<int64_t>();
    if (lo < 0 || hi >= T)
      fail("patched forward", "position " + std::to_string(lo < 0 ? lo : hi) + " is outside [0, " +
                                  std::to_string(T) + ")");
  }
  if (opt.chunk_columns < 1) fail("patched forward", "chunk_columns must be >= 1");
  if (opt.fold_tokens < 1) fail("patched forward", "fold_tokens must be >= 1");
  // Circuits folded into one batch share the GEMMs' weight traffic, but past a few hundred
  // tokens the working set leaves the caches and per circuit it costs more, not less
  // (docs/BENCHMARKS.md): groups of at most fold_tokens tokens run one after the other.
  const int64_t group = std::max<int64_t>(1, opt.fold_tokens / (B * T));
  if (masks.size(0) > group) {
    std::vector<at::Tensor> parts;
    for (int64_t k = 0; k < masks.size(0); k += group)
      parts.push_back(patched_forward(model, graph, t, ablated, masks.narrow(0, k, std::min(group, masks.size(0) - k)),
                                      opt));
    return at::cat(parts, 0);
  }
  const at::ScalarType dt = masks.scalar_type() == at::kDouble ? at::kDouble : model_dtype(model);
  at::Tensor keep = (1 - masks).to(dt);  // [K, n_src, n_dst]
  // Sparse path: only sources with an ablated edge (keep != 0 on a real edge) carry
  // differences. With gradients every entry matters: dense.
  const bool grad = masks.requires_grad() || ablated.requires_grad() ||
                    (opt.embeddings.defined() && opt.embeddings.requires_grad());
  if (opt.path == PatchOptions::Path::Sparse && grad)
    fail("patched forward", "the sparse path gives no gradients; masks require grad: use Path::Dense or Auto");
  // Without gradients: which real edges are ablated ([K, n_src, n_dst] bool), computed once for
  // the sparse path's sources and readers and the downstream-only start layer.
  at::Tensor ablated_edges;
  if (!grad) {
    at::NoGradGuard no_grad;
    std::vector<uint8_t> real_v = graph.real_edges();
    at::Tensor real = at::from_blob(real_v.data(), {n_src, n_dst}, at::kByte).to(dev, at::kBool);
    ablated_edges = (keep != 0) & real.unsqueeze(0);
  }
  at::Tensor active, touched;  // [n_src] sources, [n_dst] readers with an ablated edge
  if (opt.path == PatchOptions::Path::Sparse || (opt.path == PatchOptions::Path::Auto && !grad)) {
    at::NoGradGuard no_grad;
    active = ablated_edges.any(2).any(0);
    touched = ablated_edges.any(1).any(0);
    // Mostly-ablated masks gain nothing from the index bookkeeping: dense.
    if (opt.path == PatchOptions::Path::Auto && active.sum().item<int64_t>() > n_src / 2) active = at::Tensor();
  }
  // Downstream-only recompute: start at the first layer with a reader that has an ablated edge.
  int64_t start = 0;
  const CleanCache* cache = opt.embeddings.defined() ? nullptr : opt.cache;  // the cache is of the token run
  if (cache) {
    if (!cache->tokens.defined() || !cache->tokens.sizes().equals(t.sizes()) || !cache->tokens.equal(t))
      fail("patched forward", "the clean cache was computed for other tokens " + shape_of(cache->tokens) +
                                  " than these " + shape_of(t));
    if (grad) {
      cache = nullptr;  // every layer's mask entries need their gradient: run from the start
    } else {
      at::NoGradGuard no_grad;
      const std::vector<uint8_t> readers = host_flags(ablated_edges.any(1).any(0));  // [n_dst]
      start = graph.shape().n_layers;
      for (int64_t j = 0; j < n_dst; ++j)
        if (readers[j]) start = std::min(start, graph.reader(j).layer);
    }
  }
  at::Tensor fixed, emb;
  if (opt.fixed_diffs.defined()) {
    const at::Tensor& f = opt.fixed_diffs;
    if (f.dim() != 4 || f.size(0) != n_src || (f.size(1) != 1 && f.size(1) != B) ||
        (f.size(2) != 1 && f.size(2) != T) || f.size(3) != D)
      fail("patched forward", "fixed differences must be shaped like the ablated values, got " + shape_of(f));
    fixed = f.detach().to(dev, dt);
  }
  if (opt.embeddings.defined()) {
    if (opt.embeddings.dim() != 3 || opt.embeddings.size(0) != B || opt.embeddings.size(1) != T ||
        opt.embeddings.size(2) != D)
      fail("patched forward", "embeddings must be [" + std::to_string(B) + ", " + std::to_string(T) + ", " +
                                  std::to_string(D) + "], got " + shape_of(opt.embeddings));
    emb = opt.embeddings.to(dev);
  }
  if (opt.detach_sources.defined() && (opt.detach_sources.dim() != 1 || opt.detach_sources.size(0) != n_src))
    fail("patched forward", "detach_sources must be [" + std::to_string(n_src) + "], got " +
                                shape_of(opt.detach_sources));
  Pass pass(model, graph, t, active.defined() ? Mode::Sparse : Mode::Dense, dt, ablated.to(dev, dt), keep, active,
            touched, fixed, emb, opt.detach_sources);
  pass.chunk_columns_ = opt.chunk_columns;
  return pass(cache, start, positions, nullptr);
}

at::Tensor edge_mask_from_nodes(const Graph& graph, const at::Tensor& node_mask) {
  const int64_t n_src = graph.n_sources();
  if (!node_mask.defined() || node_mask.dim() < 1 || node_mask.dim() > 2 || node_mask.size(-1) != n_src ||
      !node_mask.is_floating_point())
    fail("node mask", "expected a floating [K, " + std::to_string(n_src) + "] tensor, got " + shape_of(node_mask));
  at::Tensor nm = node_mask.dim() == 1 ? node_mask.unsqueeze(0) : node_mask;
  return nm.unsqueeze(2).expand({nm.size(0), n_src, graph.n_readers()});
}

at::Tensor full_mask(const Graph& graph, int64_t K, at::ScalarType dtype) {
  return at::ones({K, graph.n_sources(), graph.n_readers()}, at::TensorOptions().dtype(dtype));
}

}  // namespace edgewise
