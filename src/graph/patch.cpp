// The patched forward (see include/edgewise/patch.h and docs/PATCHING.md): the model's layers
// recomputed with one input per reader, the dense path. Per layer, the differences
// (o_s - õ_s) of every source seen so far, [K, S, B*T*D], meet the reader columns of (1 - m),
// [K, R, S], in one batched matmul; each reader's input is the residual minus its row.
// The arithmetic follows Model::forward (src/model/forward.cpp) op for op where it can (norms in
// fp32, HF rotate_half, SDPA with grouped k/v) so that all-ones masks reproduce the plain run.
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

#include <cmath>

#include "edgewise/error.h"
#include "../model/internal.h"

namespace edgewise {

using model_detail::norm;
using model_detail::rotary;

namespace {

std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "none";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// A canonical weight in the compute dtype (no copy when it already is); undefined if absent.
at::Tensor wt(const Model& m, const std::string& name, at::ScalarType dt) {
  auto it = m.weights().find(name);
  if (it == m.weights().end()) return {};
  return it->second.to(dt);
}

struct LayerW {
  at::Tensor an_w, an_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
  at::Tensor fn_w, fn_b, gate_w, gate_b, up_w, up_b, down_w, down_b;
};

LayerW layer_w(const Model& m, int64_t l, at::ScalarType dt) {
  const std::string p = "blk." + std::to_string(l) + ".";
  auto g = [&](const char* n) { return wt(m, p + n, dt); };
  return {g("attn_norm.weight"), g("attn_norm.bias"), g("attn_q.weight"), g("attn_q.bias"),
          g("attn_k.weight"),    g("attn_k.bias"),    g("attn_v.weight"), g("attn_v.bias"),
          g("attn_output.weight"), g("attn_output.bias"), g("ffn_norm.weight"), g("ffn_norm.bias"),
          g("ffn_gate.weight"),  g("ffn_gate.bias"),  g("ffn_up.weight"), g("ffn_up.bias"),
          g("ffn_down.weight"),  g("ffn_down.bias")};
}

// The MLP before its down-projection bias: [.., D] -> [.., D].
at::Tensor mlp_no_bias(const ModelConfig& c, const LayerW& w, const at::Tensor& xn) {
  at::Tensor post;
  if (c.gated_mlp) {
    post = at::silu(at::linear(xn, w.gate_w, w.gate_b)) * at::linear(xn, w.up_w, w.up_b);
  } else {
    at::Tensor pre = at::linear(xn, w.up_w, w.up_b);
    post = c.act == Act::GeluNew ? at::gelu(pre, "tanh") : at::gelu(pre);
  }
  return at::linear(post, w.down_w);
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
  at::Tensor t = tokens.to(at::kLong);
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

// One pass over tokens [B, T]. keep = 1 - masks [K, n_src, n_dst] in dtype dt, or undefined for a
// plain run (K = 1) that records each source's output into *record ([n, B, T, D] blocks in
// source order) and returns no logits. abl [n_src, B|1, T|1, D] (patched runs only).
// active [n_src] bool (sparse path): only these sources' differences are kept; every other
// source must have keep == 0 on all its edges. Undefined: all sources (dense path).
at::Tensor run(const Model& model, const Graph& g, const at::Tensor& tokens, const at::Tensor& abl,
               const at::Tensor& keep, at::ScalarType dt, const at::Tensor& positions,
               std::vector<at::Tensor>* record, const at::Tensor& active = {},
               const CleanCache* cache = nullptr, int64_t start = 0, std::vector<at::Tensor>* record_resid = nullptr) {
  const ModelConfig& c = model.config();
  const bool patch = keep.defined();
  const int64_t B = tokens.size(0), T = tokens.size(1), D = c.d_model, H = c.n_heads, G = c.n_kv_heads,
                Dh = c.d_head, L = c.n_layers;
  const int64_t K = patch ? keep.size(0) : 1, KB = K * B, BTD = B * T * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  const ReaderIndex ri = reader_index(g);

  at::Tensor x0 = at::embedding(wt(model, "token_embd.weight", dt), tokens);  // [B, T, D]
  if (c.positional_embedding)
    x0 = x0 + wt(model, "position_embd.weight", dt).narrow(0, 0, T).unsqueeze(0);
  at::Tensor cos, sin;  // [1, 1, T, Dh]
  if (c.rope) {
    cos = model.rope_cos().narrow(0, 0, T).to(dt).view({1, 1, T, Dh});
    sin = model.rope_sin().narrow(0, 0, T).to(dt).view({1, 1, T, Dh});
  }

  at::Tensor x = x0.unsqueeze(0).expand({K, B, T, D});  // residual [K, B, T, D]
  // (o_s - õ_s) of the sources so far [K, S, B*T*D]; sparse path: of the active ones only,
  // whose indices are `kept` (and keep_act = keep's rows of them, [K, |kept|, n_dst]).
  at::Tensor dall;
  std::vector<int64_t> kept;
  std::vector<uint8_t> act;
  if (active.defined()) {
    at::Tensor a = active.to(at::kByte).contiguous();
    act.assign(a.data_ptr<uint8_t>(), a.data_ptr<uint8_t>() + a.numel());
  }
  const bool sparse = !act.empty();
  at::Tensor keep_act;
  if (sparse) {
    std::vector<int64_t> idx;
    for (int64_t s = 0; s < static_cast<int64_t>(act.size()); ++s)
      if (act[s]) idx.push_back(s);
    keep_act = keep.index_select(1, at::tensor(idx, at::kLong));
  }
  // Appends the differences of sources [s0, s0 + n), block diff [K, n, B*T*D] built on demand.
  auto append = [&](int64_t s0, int64_t n, const std::function<at::Tensor()>& diff) {
    if (!sparse) {
      at::Tensor d = diff();
      dall = dall.defined() ? at::cat({dall, d}, 1) : d;
      return;
    }
    std::vector<int64_t> pick;
    for (int64_t i = 0; i < n; ++i)
      if (act[s0 + i]) pick.push_back(i);
    if (pick.empty()) return;
    at::Tensor d = diff();
    if (static_cast<int64_t>(pick.size()) != n) d = d.index_select(1, at::tensor(pick, at::kLong));
    for (int64_t i : pick) kept.push_back(s0 + i);
    dall = dall.defined() ? at::cat({dall, d}, 1) : d;
  };
  if (cache && start > 0) {
    // Downstream-only: layers before `start` are clean; take their state from the cache.
    const int64_t S0 = g.source_begin(start);
    x = cache->resid.select(0, start).to(dt).unsqueeze(0).expand({K, B, T, D});
    at::Tensor src = cache->sources.narrow(0, 0, S0).to(dt);  // [S0, B, T, D]
    append(0, S0, [&] { return (src - abl.narrow(0, 0, S0)).reshape({1, S0, BTD}).expand({K, S0, BTD}); });
  } else if (patch) {
    append(0, 1, [&] { return (x0 - abl.select(0, 0)).reshape({1, 1, BTD}).expand({K, 1, BTD}); });
  }
  if (record) record->push_back(x0.unsqueeze(0));

  // Inputs of the nr readers starting at r0, which see sources [0, S): [K, nr, B, T, D].
  auto reader_inputs = [&](int64_t S, int64_t r0, int64_t nr) {
    at::Tensor xs = x.unsqueeze(1);  // [K, 1, B, T, D]
    if (!patch || !dall.defined()) return xs.expand({K, nr, B, T, D});
    at::Tensor w;  // [K, nr, S or the number of kept sources so far]
    if (sparse) {
      // kept sources are in increasing order; those before S are a prefix of keep_act's rows.
      int64_t n = 0;
      while (n < static_cast<int64_t>(kept.size()) && kept[n] < S) ++n;
      if (n == 0) return xs.expand({K, nr, B, T, D});
      w = keep_act.narrow(1, 0, n).narrow(2, r0, nr).transpose(1, 2);
      return xs - at::bmm(w, dall.narrow(1, 0, n)).view({K, nr, B, T, D});
    }
    w = keep.narrow(1, 0, S).narrow(2, r0, nr).transpose(1, 2);
    return xs - at::bmm(w, dall).view({K, nr, B, T, D});
  };
  // Per-reader projection: xin [K, N, B, T, D], w [N, Dh, D], b [N * Dh] -> [K*B, N, T, Dh].
  auto project = [&](const at::Tensor& xin, const at::Tensor& w, const at::Tensor& b) {
    const int64_t N = xin.size(1);
    at::Tensor y = at::bmm(xin.transpose(0, 1).reshape({N, K * B * T, D}), w.transpose(1, 2));  // [N, KBT, Dh]
    if (b.defined()) y = y + b.view({N, 1, Dh});
    return y.view({N, KB, T, Dh}).transpose(0, 1);
  };

  for (int64_t l = cache ? start : 0; l < L; ++l) {
    if (record_resid) record_resid->push_back(x.select(0, 0));
    const LayerW w = layer_w(model, l, dt);
    // --- attention: one input per q/k/v reader (split) or per head ---
    const int64_t nr = g.split_qkv() ? H + 2 * G : H;
    const int64_t S = g.sources_before_attn(l);
    at::Tensor xn = norm(c, reader_inputs(S, ri.attn_first[l], nr), w.an_w, w.an_b);  // [K, nr, B, T, D]
    at::Tensor q, k, v;  // [KB, H, T, Dh], [KB, Gk, T, Dh]
    int64_t Gk = G;
    at::Tensor kw = w.k_w.view({G, Dh, D}), vw = w.v_w.view({G, Dh, D});
    at::Tensor kb = w.k_b, vb = w.v_b;
    if (g.split_qkv()) {
      q = project(xn.narrow(1, 0, H), w.q_w.view({H, Dh, D}), w.q_b);
      k = project(xn.narrow(1, H, G), kw, kb);
      v = project(xn.narrow(1, H + G, G), vw, vb);
    } else {
      // Head level: head h reads k/v through its key/value head's weights from its own input.
      const int64_t R = H / G;
      Gk = H;
      kw = kw.repeat_interleave(R, 0);
      vw = vw.repeat_interleave(R, 0);
      if (kb.defined()) kb = kb.view({G, Dh}).repeat_interleave(R, 0).reshape({H * Dh});
      if (vb.defined()) vb = vb.view({G, Dh}).repeat_interleave(R, 0).reshape({H * Dh});
      q = project(xn, w.q_w.view({H, Dh, D}), w.q_b);
      k = project(xn, kw, kb);
      v = project(xn, vw, vb);
    }
    if (c.rope) {
      q = rotary(q, cos, sin);
      k = rotary(k, cos, sin);
    }
    at::Tensor z = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                                    /*is_causal=*/true, scale,
                                                    /*enable_gqa=*/Gk != H);  // [KB, H, T, Dh]
    at::Tensor wo = w.o_w.view({D, H, Dh}).permute({1, 2, 0});                  // [H, Dh, D]
    at::Tensor heads = at::bmm(z.transpose(0, 1).reshape({H, KB * T, Dh}), wo)  // [H, KBT, D]
                           .view({H, K, B, T, D})
                           .transpose(0, 1);  // [K, H, B, T, D]
    at::Tensor attn_out = heads.sum(1);
    if (w.o_b.defined()) attn_out = attn_out + w.o_b;
    x = x + attn_out;
    const int64_t s_head = g.head_source(l, 0);
    if (record) record->push_back(heads.select(0, 0));
    if (patch) append(s_head, H, [&] { return (heads - abl.narrow(0, s_head, H)).reshape({K, H, BTD}); });

    // --- MLP ---
    at::Tensor xm = reader_inputs(g.sources_before_mlp(l), ri.mlp[l], 1).squeeze(1);  // [K, B, T, D]
    at::Tensor mo = mlp_no_bias(c, w, norm(c, xm, w.fn_w, w.fn_b));                   // [K, B, T, D]
    x = x + (w.down_b.defined() ? mo + w.down_b : mo);
    if (record) record->push_back(mo);
    const int64_t s_mlp = g.mlp_source(l);
    if (patch) append(s_mlp, 1, [&] { return (mo - abl.select(0, s_mlp)).reshape({K, 1, BTD}); });
  }
  if (record_resid) record_resid->push_back(x.select(0, 0));
  if (!patch) return {};

  at::Tensor xl = reader_inputs(g.n_sources(), ri.logits, 1).squeeze(1);  // [K, B, T, D]
  if (positions.defined()) {
    const int64_t P = positions.size(1);
    xl = at::gather(xl, 2, positions.view({1, B, P, 1}).expand({K, B, P, D}));  // [K, B, P, D]
  }
  at::Tensor xf = norm(c, xl, wt(model, "output_norm.weight", dt), wt(model, "output_norm.bias", dt));
  at::Tensor logits = at::linear(xf, wt(model, "output.weight", dt));
  return dt == at::kDouble ? logits : logits.to(at::kFloat);
}

at::ScalarType model_dtype(const Model& m) { return m.dtype() == DType::BF16 ? at::kBFloat16 : at::kFloat; }

}  // namespace

const char* ablation_name(Ablation a) {
  switch (a) {
    case Ablation::Resample: return "resample";
    case Ablation::Mean: return "mean";
    case Ablation::MeanPerPosition: return "mean-positional";
    case Ablation::Zero: return "zero";
  }
  return "";
}

Ablation ablation_from_string(const std::string& s) {
  for (Ablation a : {Ablation::Resample, Ablation::Mean, Ablation::MeanPerPosition, Ablation::Zero})
    if (s == ablation_name(a)) return a;
  fail("ablation", "unknown ablation '" + s + "' (expected resample, mean, mean-positional or zero)");
}

CleanCache clean_cache(const Model& model, const Graph& graph, const at::Tensor& tokens) {
  check_graph(model, graph);
  at::Tensor t = check_tokens(model, tokens, "tokens");
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> rec, resid;
  run(model, graph, t, {}, {}, model_dtype(model), {}, &rec, {}, nullptr, 0, &resid);
  return {at::stack(resid, 0), at::cat(rec, 0), t.clone()};
}

Graph model_graph(const Model& model, bool split_qkv) {
  const ModelConfig& c = model.config();
  return Graph(GraphShape{c.n_layers, c.n_heads, c.n_kv_heads}, split_qkv);
}

at::Tensor source_outputs(const Model& model, const Graph& graph, const at::Tensor& tokens,
                          std::optional<at::ScalarType> dtype) {
  check_graph(model, graph);
  at::Tensor t = check_tokens(model, tokens, "tokens");
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> rec;
  run(model, graph, t, {}, {}, dtype.value_or(model_dtype(model)), {}, &rec);
  return at::cat(rec, 0);  // [n_src, B, T, D]
}

at::Tensor ablated_values(const Model& model, const Graph& graph, Ablation how, const at::Tensor& clean,
                          const at::Tensor& corrupted) {
  const int64_t D = model.config().d_model;
  switch (how) {
    case Ablation::Zero:
      return at::zeros({graph.n_sources(), 1, 1, D}, at::TensorOptions().dtype(model_dtype(model)));
    case Ablation::Resample:
      if (!corrupted.defined() || !clean.defined() || corrupted.sizes() != clean.sizes())
        fail("resample ablation", "corrupted tokens " + shape_of(corrupted) + " must have the clean tokens' shape " +
                                      shape_of(clean));
      return source_outputs(model, graph, corrupted);
    case Ablation::Mean: return source_outputs(model, graph, clean).mean({1, 2}, /*keepdim=*/true);
    case Ablation::MeanPerPosition: return source_outputs(model, graph, clean).mean(1, /*keepdim=*/true);
  }
  fail("ablation", "unknown ablation");
}

at::Tensor patched_forward(const Model& model, const Graph& graph, const at::Tensor& tokens,
                           const at::Tensor& ablated, const at::Tensor& masks_in, const PatchOptions& opt) {
  check_graph(model, graph);
  at::Tensor t = check_tokens(model, tokens, "tokens");
  const int64_t B = t.size(0), T = t.size(1), D = model.config().d_model;
  const int64_t n_src = graph.n_sources(), n_dst = graph.n_readers();
  if (!masks_in.defined() || (masks_in.dim() != 2 && masks_in.dim() != 3) || !masks_in.is_floating_point())
    fail("patched forward", "masks must be a floating [K, n_src, n_dst] tensor, got " + shape_of(masks_in));
  at::Tensor masks = masks_in.dim() == 2 ? masks_in.unsqueeze(0) : masks_in;
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
    positions = opt.positions.to(at::kLong);
    if (positions.dim() != 2 || positions.size(0) != B || positions.size(1) == 0)
      fail("patched forward", "positions must be [" + std::to_string(B) + ", P], got " + shape_of(opt.positions));
    const int64_t lo = positions.min().item<int64_t>(), hi = positions.max().item<int64_t>();
    if (lo < 0 || hi >= T)
      fail("patched forward", "position " + std::to_string(lo < 0 ? lo : hi) + " is outside [0, " +
                                  std::to_string(T) + ")");
  }
  const at::ScalarType dt = masks.scalar_type() == at::kDouble ? at::kDouble : model_dtype(model);
  at::Tensor keep = (1 - masks).to(dt);  // [K, n_src, n_dst]
  // Sparse path: only sources with an ablated edge (keep != 0 on a real edge) carry
  // differences. With gradients every entry matters: dense.
  const bool grad = masks.requires_grad() || ablated.requires_grad();
  if (opt.path == PatchOptions::Path::Sparse && grad)
    fail("patched forward", "the sparse path gives no gradients; masks require grad: use Path::Dense or Auto");
  at::Tensor active;
  if (opt.path == PatchOptions::Path::Sparse || (opt.path == PatchOptions::Path::Auto && !grad)) {
    at::NoGradGuard no_grad;
    std::vector<uint8_t> real_v = graph.real_edges();
    at::Tensor real = at::from_blob(real_v.data(), {n_src, n_dst}, at::kByte).to(at::kBool);
    active = ((keep != 0) & real.unsqueeze(0)).any(2).any(0);  // [n_src]
    // Mostly-ablated masks gain nothing from the index bookkeeping: dense.
    if (opt.path == PatchOptions::Path::Auto && active.sum().item<int64_t>() > n_src / 2) active = at::Tensor();
  }
  // Downstream-only recompute: start at the first layer with a reader that has an ablated edge.
  int64_t start = 0;
  const CleanCache* cache = opt.cache;
  if (cache) {
    if (!cache->tokens.defined() || !cache->tokens.sizes().equals(t.sizes()) || !cache->tokens.equal(t))
      fail("patched forward", "the clean cache was computed for other tokens " + shape_of(cache->tokens) +
                                  " than these " + shape_of(t));
    if (grad) {
      cache = nullptr;  // every layer's mask entries need their gradient: run from the start
    } else {
      at::NoGradGuard no_grad;
      std::vector<uint8_t> real_v = graph.real_edges();
      at::Tensor real = at::from_blob(real_v.data(), {n_src, n_dst}, at::kByte).to(at::kBool);
      at::Tensor touched = ((keep != 0) & real.unsqueeze(0)).any(1).any(0).to(at::kByte).contiguous();  // [n_dst]
      const uint8_t* tp = touched.data_ptr<uint8_t>();
      start = graph.shape().n_layers;
      for (int64_t j = 0; j < n_dst; ++j)
        if (tp[j]) start = std::min(start, graph.reader(j).layer);
    }
  }
  return run(model, graph, t, ablated.to(dt), keep, dt, positions, nullptr, active, cache, start);
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
