// The forward pass: one decoder-only transformer for GPT-2, GPT-NeoX, the Llama family and Gemma 3,
// computed as transformers computes it (pre-norm blocks, sequential or parallel, with or without
// post-norms; RMSNorm in fp32 then weight; HF rotate_half RoPE, full or partial; per-head q/k
// norms; sliding-window layers; softmax in fp32), from the block primitives
// of block.h, naming every intermediate with its TransformerLens hook name where it is
// computed. Per-head values (scores, pattern, per-head result) are only built when asked for;
// otherwise attention goes through at::scaled_dot_product_attention.
//
// Hook points, in order, per layer l ("blocks.{l}." prefix):
//   hook_resid_pre, ln1.hook_normalized (norm output incl. weight/bias), attn.hook_q/k/v
//   (pre-rotary, [B,T,H,Dh] / [B,T,G,Dh]), attn.hook_rot_q/rot_k (post-rotary),
//   attn.hook_attn_scores (scaled, causal-masked with -inf, [B,H,T,T]), attn.hook_pattern,
//   attn.hook_z [B,T,H,Dh], attn.hook_result [B,T,H,D] (no o bias; with post-norms each head's
//   share of the normed output), hook_attn_out (after the post-norm), hook_resid_mid
//   (sequential blocks only, as in TransformerLens), hook_mlp_in (the MLP's input before ln2:
//   resid_mid, or resid_pre in a parallel block; replacing it does not change the residual),
//   ln2.hook_normalized, mlp.hook_pre, mlp.hook_pre_linear (gated: up projection), mlp.hook_post,
//   hook_mlp_out, hook_resid_post. Before the blocks: hook_embed, hook_pos_embed ([B,T,D]);
//   after: ln_final.hook_normalized.
// Hooks replace by returning a new tensor of the same shape; in-place edits of a hooked tensor
// are not supported (tensors are shared, not cloned).
//
// Dimension letters: B batch, T tokens, D model width, H query heads, G key/value heads,
// R = H/G query heads per key/value head, Dh head width, F MLP width, V vocabulary.
//
// Not here: KV caches / incremental decoding, padding masks (inputs are right-padded),
// the patched forward of the circuit graph (graph/).
#include <cmath>
#include <limits>
#include <numbers>

#include "edgewise/distributed.h"
#include "edgewise/error.h"
#include "internal.h"

namespace edgewise {

using namespace model_detail;

namespace model_detail {

at::Tensor rope_inv_freq(const ModelConfig& c, const at::Tensor& freq_factors) {
  // transformers: 1.0 / (base ** (arange(0, dim, 2, int64).float() / dim)), in fp32, dim the
  // rotated width (GPT-NeoX: int(head_dim * partial_rotary_factor)).
  const int64_t dim = rotary_dims(c);
  at::Tensor e = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim);
  at::Tensor inv = at::reciprocal(at::pow(c.rope_theta, e));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == "linear") {
    inv = inv / s.factor;
  } else if (s.type == "llama3") {
    // transformers' _compute_llama3_parameters, op for op.
    const double old_ctx = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_ctx / s.low_freq_factor;
    const double high_wavelen = old_ctx / s.high_freq_factor;
    at::Tensor wavelen = at::reciprocal(inv) * (2 * std::numbers::pi);
    at::Tensor inv_l = at::where(wavelen > low_wavelen, inv / s.factor, inv);
    at::Tensor smooth = (at::reciprocal(wavelen) * old_ctx - s.low_freq_factor) /
                        (s.high_freq_factor - s.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * inv_l / s.factor + smooth * inv_l;
    at::Tensor medium = at::logical_not(wavelen < high_wavelen).logical_and(
        at::logical_not(wavelen > low_wavelen));
    inv = at::where(medium, smoothed, inv_l);
  }
  if (freq_factors.defined()) inv = inv / freq_factors;
  return inv;
}

void rope_tables(const at::Tensor& inv_freq, int64_t T, at::Tensor* cos, at::Tensor* sin) {
  at::Tensor pos = at::arange(T, at::kLong).to(at::kFloat);
  at::Tensor freqs = at::outer(pos, inv_freq);  // [T, Dh/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);  // [T, Dh]
  *cos = emb.cos();
  *sin = emb.sin();
}

at::Tensor index_tensor(const std::vector<int64_t>& v, const c10::Device& d) {
  return at::tensor(v, at::kLong).to(d);  // no copy when d is the CPU
}

at::Tensor real_token_mask(const at::Tensor& lengths, int64_t B, int64_t T, at::ScalarType dt, const c10::Device& d) {
  const at::TensorOptions o = at::TensorOptions().dtype(dt).device(d);
  if (!lengths.defined()) return at::ones({B, T}, o);
  at::Tensor len = lengths.to(d, at::kLong);
  return (at::arange(T, len.options()).unsqueeze(0) < len.unsqueeze(1)).to(dt);
}


}  // namespace model_detail

namespace {

// Calls the hooks of one prefix ("blocks.3.") without building names when there are none.
struct HookAt {
  const Hooks* hooks;
  std::string prefix;

  bool wants(const char* name) const { return hooks && hooks->wants(prefix + name); }
  void operator()(const char* name, at::Tensor& t) const {
    if (!hooks) return;
    const std::string full = prefix + name;
    if (!hooks->wants(full)) return;
    const std::vector<int64_t> before = t.sizes().vec();
    hooks->call(full, t);
    if (!t.defined() || t.sizes().vec() != before)
      fail(full, "hook replaced a " + shape_str(before) + " tensor with " +
                     (t.defined() ? "a " + shape_str(t.sizes().vec()) + " one" : "an undefined one"));
  }
};

// Attention of one layer on the normalised input xn [B, T, D]; returns attn_out [B, T, D].
at::Tensor attention(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xn,
                     const at::Tensor& cos, const at::Tensor& sin, const AttnSpec& spec, const HookAt& hk) {
  const int64_t B = xn.size(0), T = xn.size(1), H = c.n_heads, G = c.n_kv_heads, R = H / G,
                Dh = c.d_head, D = c.d_model;
  const double scale = spec.scale > 0 ? spec.scale : 1.0 / std::sqrt(static_cast<double>(Dh));
  at::Tensor qkv = qkv_linear(w, xn);  // [B, T, (H + 2G) * Dh]
  at::Tensor q = qkv.narrow(-1, 0, H * Dh).view({B, T, H, Dh});          // [B, T, H, Dh]
  at::Tensor k = qkv.narrow(-1, H * Dh, G * Dh).view({B, T, G, Dh});     // [B, T, G, Dh]
  at::Tensor v = qkv.narrow(-1, (H + G) * Dh, G * Dh).view({B, T, G, Dh});
  hk("attn.hook_q", q);
  hk("attn.hook_k", k);
  hk("attn.hook_v", v);
  q = head_norm(c, q, w.qn_w);  // Gemma 3's per-head q / k norms, before the rotary embedding
  k = head_norm(c, k, w.kn_w);
  if (c.rope) {
    q = rotary(q, cos, sin);
    k = rotary(k, cos, sin);
    hk("attn.hook_rot_q", q);
    hk("attn.hook_rot_k", k);
  }

  at::Tensor z;  // [B, T, H, Dh]
  if (hk.wants("attn.hook_attn_scores") || hk.wants("attn.hook_pattern")) {
    // Explicit path, grouped without repeating k/v: the R query heads of a key/value head
    // share one matmul ([B, G, R*T, Dh] x [B, G, Dh, T]); head h uses key/value head h / R.
    at::Tensor qg = q.view({B, T, G, R, Dh}).permute({0, 2, 3, 1, 4}).reshape({B, G, R * T, Dh});
    at::Tensor kg = k.permute({0, 2, 3, 1});                             // [B, G, Dh, T]
    at::Tensor scores = (at::matmul(qg, kg) * scale).view({B, H, T, T});  // [B, H, T, T]
    if (c.causal) {
      const at::Tensor hidden = attention_mask(spec, T, scores.device()).logical_not();
      scores = scores.masked_fill(hidden, -std::numeric_limits<double>::infinity());
    }
    hk("attn.hook_attn_scores", scores);
    at::Tensor pattern = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    hk("attn.hook_pattern", pattern);
    at::Tensor vg = v.permute({0, 2, 1, 3});  // [B, G, T, Dh]
    z = at::matmul(pattern.view({B, G, R * T, T}), vg)  // [B, G, R*T, Dh]
            .view({B, G, R, T, Dh})
            .permute({0, 3, 1, 2, 4})
            .reshape({B, T, H, Dh});
  } else {
    z = causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), spec).transpose(1, 2);  // [B, T, H, Dh]
  }
  hk("attn.hook_z", z);

  if (hk.wants("attn.hook_result")) {
    // Per-head output in residual space: result[b,t,h] = z[b,t,h] @ W_O[:, h*Dh:(h+1)*Dh]^T.
    at::Tensor zh = z.permute({2, 0, 1, 3}).reshape({H, B * T, Dh});  // [H, B*T, Dh]
    at::Tensor heads = head_results(zh, out_proj_heads(c, w)).view({H, B, T, D});  // [H, B, T, D]
    // Post-norms: each head's share of the normed output (block.h), which is what it adds.
    at::Tensor result = post_norm_shares(c, heads, heads.sum(0), w.pan_w).permute({1, 2, 0, 3});  // [B, T, H, D]
    hk("attn.hook_result", result);
    at::Tensor out = result.sum(2);
    return w.o_b.defined() ? out + w.o_b : out;
  }
  return post_norm(c, at::linear(z.reshape({B, T, H * Dh}), w.o_w, w.o_b), w.pan_w);
}

// The MLP on its normalised input xn [B, T, D]; returns mlp_out [B, T, D].
at::Tensor mlp(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xn, const HookAt& hk) {
  if (!hk.hooks) return post_norm(c, mlp_output(c, w, xn, nullptr, /*bias=*/true), w.pfn_w);
  const HookFn fn = [&hk](const char* name, at::Tensor& t) { hk(name, t); };
  return post_norm(c, mlp_output(c, w, xn, &fn, /*bias=*/true), w.pfn_w);
}

// The pipeline links of internal.h as autograd nodes. PipeRecv: the identity on what a stage
// received, whose backward sends its gradients back.
struct PipeRecv : public torch::autograd::Function<PipeRecv> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, at::TensorList anchors,
                                                const at::Tensor& x, const at::Tensor& rows, int64_t from,
                                                int64_t tag) {
    ctx->saved_data["n_anchors"] = static_cast<int64_t>(anchors.size());
    ctx->saved_data["from"] = from;
    ctx->saved_data["tag"] = tag;
    return {x, rows};
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const int from = static_cast<int>(ctx->saved_data["from"].toInt()), tag = static_cast<int>(ctx->saved_data["tag"].toInt());
    dist::send(grad[0].contiguous(), from, tag, "the pipeline's residual gradient");
    if (grad[1].numel() > 0) dist::send(grad[1].contiguous(), from, tag, "the pipeline's store gradient");
    return torch::autograd::variable_list(ctx->saved_data["n_anchors"].toInt() + 4);
  }
};

// PipeSend: the broadcast logits, whose backward receives the gradients of what the stage sent
// (the logits' own gradient is the last stage's to use).
struct PipeSend : public torch::autograd::Function<PipeSend> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::TensorList anchors, const at::Tensor& logits,
                            const at::Tensor& x, at::TensorList blocks, int64_t to, int64_t tag) {
    std::vector<int64_t> sizes;
    for (const at::Tensor& b : blocks) sizes.push_back(b.size(0));
    ctx->saved_data["n_anchors"] = static_cast<int64_t>(anchors.size());
    ctx->saved_data["sizes"] = sizes;
    ctx->saved_data["x_shape"] = x.sizes().vec();
    ctx->saved_data["row_shape"] = blocks.empty() ? std::vector<int64_t>{} : blocks[0].sizes().vec();
    ctx->saved_data["to"] = to;
    ctx->saved_data["tag"] = tag;
    ctx->saved_data["like"] = at::empty({0}, x.options());
    return logits;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list) {
    const int to = static_cast<int>(ctx->saved_data["to"].toInt()), tag = static_cast<int>(ctx->saved_data["tag"].toInt());
    const at::TensorOptions o = ctx->saved_data["like"].toTensor().options();
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    const int64_t na = ctx->saved_data["n_anchors"].toInt();
    at::Tensor gx = at::empty(ctx->saved_data["x_shape"].toIntVector(), o);
    dist::recv(gx, to, tag, "the pipeline's residual gradient");
    torch::autograd::variable_list out(na + 2 + sizes.size() + 2);
    out[na + 1] = gx;
    if (!sizes.empty()) {
      std::vector<int64_t> shape = ctx->saved_data["row_shape"].toIntVector();
      int64_t n = 0;
      for (int64_t k : sizes) n += k;
      shape[0] = n;
      at::Tensor gr = at::empty(shape, o);
      dist::recv(gr, to, tag, "the pipeline's store gradient");
      int64_t off = 0;
      for (size_t i = 0; i < sizes.size(); ++i) {
        out[na + 2 + i] = gr.narrow(0, off, sizes[i]);
        off += sizes[i];
      }
    }
    return out;
  }
};

}  // namespace

std::vector<at::Tensor> model_detail::pipeline_received(const std::vector<at::Tensor>& anchors,
                                                        const at::Tensor& x, const at::Tensor& rows, int from,
                                                        int tag) {
  return PipeRecv::apply(at::TensorList(anchors), x, rows, from, tag);
}

at::Tensor model_detail::pipeline_sent(const std::vector<at::Tensor>& anchors, const at::Tensor& logits,
                                       const at::Tensor& x, const std::vector<at::Tensor>& blocks, int to,
                                       int tag) {
  return PipeSend::apply(at::TensorList(anchors), logits, x, at::TensorList(blocks), to, tag);
}

at::Tensor Model::forward(const at::Tensor& tokens_in, const Hooks* hooks) const {
  const ModelConfig& c = cfg_;
  if (!tokens_in.defined() || tokens_in.dim() != 2)
    fail("forward", "tokens must be a [B, T] tensor, got " +
                        (tokens_in.defined() ? shape_str(tokens_in.sizes().vec()) : std::string("none")));
  if (tokens_in.scalar_type() != at::kLong && tokens_in.scalar_type() != at::kInt)
    fail("forward", "tokens must be int64 or int32");
  at::Tensor tokens = tokens_in.to(device(), at::kLong);
  const int64_t B = tokens.size(0), T = tokens.size(1);
  if (B == 0 || T == 0) fail("forward", "empty batch " + shape_str(tokens.sizes().vec()));
  const int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
  if (lo < 0 || hi >= c.vocab_size)
    fail("forward", "token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary [0, " +
                        std::to_string(c.vocab_size) + ")");
  if (c.positional_embedding && T > c.n_ctx)
    fail("forward", std::to_string(T) + " tokens exceed the context length " + std::to_string(c.n_ctx));
  if (c.rope && T > rope_cos_.size(0))
    fail("forward", std::to_string(T) + " tokens exceed the " + std::to_string(rope_cos_.size(0)) +
                        " positions this model's rotary tables cover");

  // A pipeline stage (layers split over ranks): the residual arrives from the stage before, and
  // leaves for the next; the last stage's logits reach every stage (dist::broadcast_from_stage).
  // Hooks run where their layer is (the embedding's on the first stage, the final norm's on the
  // last).
  const int P = dist::stages(), stage = dist::stage();
  const dist::Range layers = dist::stage_range(stage, c.n_layers);
  // With gradients the stages are joined by the pipeline links (internal.h), anchored on a scalar.
  const at::Tensor anchor = P > 1 && at::GradMode::is_enabled()
                                ? at::zeros({}, at::kFloat).requires_grad_(true)
                                : at::Tensor();
  const HookAt top{hooks, ""};
  at::Tensor x;  // [B, T, D]
  if (stage > 0) {
    x = at::empty({B, T, c.d_model}, weights_.at("token_embd.weight").options());
    dist::recv(x, stage - 1, 0, "the forward's residual stream");
    if (anchor.defined()) x = pipeline_received({anchor}, x, at::empty({0}, x.options()), stage - 1, 0)[0];
  } else {
    x = at::embedding(weights_.at("token_embd.weight"), tokens);  // [B, T, D]
    if (c.block.embed_scale > 0)  // Gemma: the scale in the weights' dtype, as transformers applies it
      x = x * at::scalar_tensor(c.block.embed_scale, at::kFloat).to(x.scalar_type()).to(x.device());
    top("hook_embed", x);
    if (c.positional_embedding) {
      at::Tensor pos = weights_.at("position_embd.weight").narrow(0, 0, T).unsqueeze(0);  // [1, T, D]
      if (top.wants("hook_pos_embed")) {
        pos = pos.expand({B, T, c.d_model});
        top("hook_pos_embed", pos);
      }
      x = x + pos;
    }
  }
  // Rotary tables [1, T, 1, Dr] of layer l (sliding-window layers may have their own base).
  auto rope_at = [&](const at::Tensor& table) { return table.narrow(0, 0, T).view({1, T, 1, table.size(1)}); };

  for (int64_t l = layers.begin; l < layers.end; ++l) {
    const LayerWeights w = layer_weights(weights_, l);
    // Layers without requested hooks run as if no Hooks object was given.
    const std::string prefix = hooks ? "blocks." + std::to_string(l) + "." : std::string();
    const HookAt hk{hooks && hooks->wants_any_prefix(prefix) ? hooks : nullptr, prefix};
    hk("hook_resid_pre", x);
    at::Tensor xn = norm(c, x, w.an_w, w.an_b);  // [B, T, D]
    hk("ln1.hook_normalized", xn);
    at::Tensor cos, sin;
    if (c.rope) cos = rope_at(rope_cos(l)), sin = rope_at(rope_sin(l));
    at::Tensor attn_out = attention(c, w, xn, cos, sin, attn_spec(c, l), hk);  // [B, T, D]
    hk("hook_attn_out", attn_out);
    const bool parallel = mlp_reads_block_input(c);
    at::Tensor resid_mid = x + attn_out;  // parallel: the sum so far, not a point of its own
    if (!parallel) hk("hook_resid_mid", resid_mid);
    at::Tensor mlp_in = parallel ? x : resid_mid;
    hk("hook_mlp_in", mlp_in);
    at::Tensor xn2 = norm(c, mlp_in, w.fn_w, w.fn_b);
    hk("ln2.hook_normalized", xn2);
    at::Tensor mlp_out = mlp(c, w, xn2, hk);
    hk("hook_mlp_out", mlp_out);
    x = resid_mid + mlp_out;
    hk("hook_resid_post", x);
  }

  if (stage < P - 1) {
    dist::send(x.contiguous(), stage + 1, 0, "the forward's residual stream");
    at::Tensor logits = at::empty({B, T, c.vocab_size}, at::TensorOptions().dtype(at::kFloat).device(device()));
    dist::broadcast_from_stage(logits, P - 1, "the forward's logits");
    return anchor.defined() ? pipeline_sent({anchor}, logits, x, {}, stage + 1, 0) : logits;
  }
  at::Tensor xf = norm(c, x, opt_weight(weights_, "output_norm.weight"), opt_weight(weights_, "output_norm.bias"));
  top("ln_final.hook_normalized", xf);
  at::Tensor logits = at::linear(xf, weights_.at("output.weight")).to(at::kFloat);  // [B, T, V]
  if (P > 1) {
    at::Tensor copy = logits.detach().contiguous().clone();
    dist::broadcast_from_stage(copy, P - 1, "the forward's logits");
  }
  return logits;
}

}  // namespace edgewise
