// The forward pass: one decoder-only transformer for GPT-2 and the Llama family, computed as
// transformers computes it (pre-norm blocks; RMSNorm in fp32 then weight; HF rotate_half RoPE;
// softmax in fp32), naming every intermediate with its TransformerLens hook name where it is
// computed. Per-head values (scores, pattern, per-head result) are only built when asked for;
// otherwise attention goes through at::scaled_dot_product_attention.
//
// Hook points, in order, per layer l ("blocks.{l}." prefix):
//   hook_resid_pre, ln1.hook_normalized (norm output incl. weight/bias), attn.hook_q/k/v
//   (pre-rotary, [B,T,H,Dh] / [B,T,G,Dh]), attn.hook_rot_q/rot_k (post-rotary),
//   attn.hook_attn_scores (scaled, causal-masked with -inf, [B,H,T,T]), attn.hook_pattern,
//   attn.hook_z [B,T,H,Dh], attn.hook_result [B,T,H,D] (no o bias), hook_attn_out, hook_resid_mid,
//   hook_mlp_in (the MLP's input before ln2; replacing it does not change the residual),
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

#include "edgewise/error.h"
#include "internal.h"

namespace edgewise {

using namespace model_detail;

namespace model_detail {

at::Tensor rope_inv_freq(const ModelConfig& c, const at::Tensor& freq_factors) {
  // transformers: 1.0 / (base ** (arange(0, dim, 2, int64).float() / dim)), in fp32.
  const int64_t dim = c.d_head;
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

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  // ATen's fused kernel computes exactly this sequence for fp32 and double (same reduction,
  // weight applied last; checked bit for bit against the explicit ops in test_model) in one
  // pass instead of five; bf16 keeps the explicit ops, where transformers rounds to bf16
  // before the weight.
  if ((x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) && w.scalar_type() == x.scalar_type())
    return at::rms_norm(x, {x.size(-1)}, w, eps);
  at::Tensor xf = x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return w * (xf * at::rsqrt(var + eps)).to(x.scalar_type());
}

at::Tensor norm(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (c.norm == Norm::RMSNorm) return rms_norm(x, w, c.norm_eps);
  return at::layer_norm(x, {c.d_model}, w, b, c.norm_eps);
}

at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t h = x.size(-1) / 2;
  at::Tensor rot = at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);  // rotate_half
  return x * cos + rot * sin;
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


LayerWeights layer_weights(const std::map<std::string, at::Tensor>& w, int64_t l) {
  const std::string p = "blk." + std::to_string(l) + ".";
  auto g = [&](const char* n) {
    auto it = w.find(p + n);
    return it == w.end() ? at::Tensor() : it->second;
  };
  return {g("attn_norm.weight"), g("attn_norm.bias"), g("attn_q.weight"), g("attn_q.bias"),
          g("attn_k.weight"),    g("attn_k.bias"),    g("attn_v.weight"), g("attn_v.bias"),
          g("attn_output.weight"), g("attn_output.bias"), g("ffn_norm.weight"), g("ffn_norm.bias"),
          g("ffn_gate.weight"),  g("ffn_gate.bias"),  g("ffn_up.weight"), g("ffn_up.bias"),
          g("ffn_down.weight"),  g("ffn_down.bias")};
}

LayerWeights layer_weights_as(const LayerWeights& w, at::ScalarType dt) {
  LayerWeights r = w;
  for (at::Tensor* t : {&r.an_w, &r.an_b, &r.q_w, &r.q_b, &r.k_w, &r.k_b, &r.v_w, &r.v_b, &r.o_w, &r.o_b,
                        &r.fn_w, &r.fn_b, &r.gate_w, &r.gate_b, &r.up_w, &r.up_b, &r.down_w, &r.down_b})
    if (t->defined()) *t = t->to(dt);
  return r;
}

at::Tensor fused_rows(std::initializer_list<const at::Tensor*> parts) {
  const at::Tensor& first = **parts.begin();
  if (!first.defined() || !first.is_contiguous()) return {};
  int64_t rows = 0;
  const char* expect = static_cast<const char*>(first.data_ptr());
  for (const at::Tensor* t : parts) {
    if (!t->defined() || !t->is_contiguous() || t->dim() != first.dim() ||
        t->scalar_type() != first.scalar_type() || !t->storage().is_alias_of(first.storage()) ||
        static_cast<const char*>(t->data_ptr()) != expect)
      return {};
    for (int64_t d = 1; d < t->dim(); ++d)
      if (t->size(d) != first.size(d)) return {};
    expect += t->nbytes();
    rows += t->size(0);
  }
  std::vector<int64_t> size = first.sizes().vec();
  size[0] = rows;
  // Under autograd, as_strided on a row view reaches only the view's own rows (the gradient of
  // the k and v rows of a packed q/k/v leaf was lost): take the window from the base buffer.
  if (first.requires_grad() && first.is_view()) {
    const at::Tensor base(first._base());
    if (base.is_contiguous() && base.data_ptr() == base.storage().data())
      return base.as_strided(size, first.strides(), first.storage_offset());
    return {};
  }
  return first.as_strided(size, first.strides(), first.storage_offset());
}

at::Tensor qkv_weight(const LayerWeights& w) {
  at::Tensor f = fused_rows({&w.q_w, &w.k_w, &w.v_w});
  return f.defined() ? f : at::cat({w.q_w, w.k_w, w.v_w}, 0);
}

at::Tensor qkv_bias(const LayerWeights& w) {
  if (!w.q_b.defined()) return {};
  at::Tensor f = fused_rows({&w.q_b, &w.k_b, &w.v_b});
  return f.defined() ? f : at::cat({w.q_b, w.k_b, w.v_b}, 0);
}

at::Tensor qkv_linear(const LayerWeights& w, const at::Tensor& xn) {
  const at::Tensor fw = fused_rows({&w.q_w, &w.k_w, &w.v_w});
  const at::Tensor fb = fused_rows({&w.q_b, &w.k_b, &w.v_b});
  if (fw.defined() && (fb.defined() || !w.q_b.defined())) return at::linear(xn, fw, fb);  // one matmul
  return at::cat({at::linear(xn, w.q_w, w.q_b), at::linear(xn, w.k_w, w.k_b), at::linear(xn, w.v_w, w.v_b)}, -1);
}

at::Tensor mlp_hidden(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xn, const HookFn* hook) {
  auto hk = [hook](const char* name, at::Tensor& t) {
    if (hook) (*hook)(name, t);
  };
  if (c.gated_mlp) {
    at::Tensor gate, up;  // [.., F]
    const at::Tensor gu_w = fused_rows({&w.gate_w, &w.up_w});
    const at::Tensor gu_b = fused_rows({&w.gate_b, &w.up_b});
    if (gu_w.defined() && (gu_b.defined() || !w.gate_b.defined())) {
      at::Tensor gu = at::linear(xn, gu_w, gu_b);  // [.., 2F]: one matmul
      gate = gu.narrow(-1, 0, c.d_mlp);
      up = gu.narrow(-1, c.d_mlp, c.d_mlp);
    } else {
      gate = at::linear(xn, w.gate_w, w.gate_b);
      up = at::linear(xn, w.up_w, w.up_b);
    }
    hk("mlp.hook_pre", gate);
    hk("mlp.hook_pre_linear", up);
    at::Tensor post = at::silu(gate) * up;
    hk("mlp.hook_post", post);
    return post;
  }
  at::Tensor pre = at::linear(xn, w.up_w, w.up_b);  // [.., F]
  hk("mlp.hook_pre", pre);
  at::Tensor post = c.act == Act::GeluNew ? at::gelu(pre, "tanh") : at::gelu(pre);
  hk("mlp.hook_post", post);
  return post;
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true,
                                          scale, /*enable_gqa=*/k.size(1) != q.size(1));
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

at::Tensor opt_weight(const std::map<std::string, at::Tensor>& w, const std::string& name) {
  auto it = w.find(name);
  return it == w.end() ? at::Tensor() : it->second;
}

// Attention of one layer on the normalised input xn [B, T, D]; returns attn_out [B, T, D].
at::Tensor attention(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xn,
                     const at::Tensor& cos, const at::Tensor& sin, const HookAt& hk) {
  const int64_t B = xn.size(0), T = xn.size(1), H = c.n_heads, G = c.n_kv_heads, R = H / G,
                Dh = c.d_head, D = c.d_model;
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  at::Tensor qkv = qkv_linear(w, xn);  // [B, T, (H + 2G) * Dh]
  at::Tensor q = qkv.narrow(-1, 0, H * Dh).view({B, T, H, Dh});          // [B, T, H, Dh]
  at::Tensor k = qkv.narrow(-1, H * Dh, G * Dh).view({B, T, G, Dh});     // [B, T, G, Dh]
  at::Tensor v = qkv.narrow(-1, (H + G) * Dh, G * Dh).view({B, T, G, Dh});
  hk("attn.hook_q", q);
  hk("attn.hook_k", k);
  hk("attn.hook_v", v);
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
    at::Tensor future = at::ones({T, T}, scores.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
    hk("attn.hook_attn_scores", scores);
    at::Tensor pattern = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    hk("attn.hook_pattern", pattern);
    at::Tensor vg = v.permute({0, 2, 1, 3});  // [B, G, T, Dh]
    z = at::matmul(pattern.view({B, G, R * T, T}), vg)  // [B, G, R*T, Dh]
            .view({B, G, R, T, Dh})
            .permute({0, 3, 1, 2, 4})
            .reshape({B, T, H, Dh});
  } else {
    z = causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2);  // [B, T, H, Dh]
  }
  hk("attn.hook_z", z);

  if (hk.wants("attn.hook_result")) {
    // Per-head output in residual space: result[b,t,h] = z[b,t,h] @ W_O[:, h*Dh:(h+1)*Dh]^T.
    at::Tensor zh = z.permute({2, 0, 1, 3}).reshape({H, B * T, Dh});  // [H, B*T, Dh]
    at::Tensor wo = w.o_w.view({D, H, Dh}).permute({1, 2, 0});       // [H, Dh, D]
    at::Tensor result = at::bmm(zh, wo).view({H, B, T, D}).permute({1, 2, 0, 3});  // [B, T, H, D]
    hk("attn.hook_result", result);
    at::Tensor out = result.sum(2);
    return w.o_b.defined() ? out + w.o_b : out;
  }
  return at::linear(z.reshape({B, T, H * Dh}), w.o_w, w.o_b);
}

// The MLP on its normalised input xn [B, T, D]; returns mlp_out [B, T, D].
at::Tensor mlp(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xn, const HookAt& hk) {
  at::Tensor post;
  if (hk.hooks) {
    const HookFn fn = [&hk](const char* name, at::Tensor& t) { hk(name, t); };
    post = mlp_hidden(c, w, xn, &fn);
  } else {
    post = mlp_hidden(c, w, xn, nullptr);
  }
  return at::linear(post, w.down_w, w.down_b);
}

}  // namespace

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

  const HookAt top{hooks, ""};
  at::Tensor x = at::embedding(weights_.at("token_embd.weight"), tokens);  // [B, T, D]
  top("hook_embed", x);
  if (c.positional_embedding) {
    at::Tensor pos = weights_.at("position_embd.weight").narrow(0, 0, T).unsqueeze(0);  // [1, T, D]
    if (top.wants("hook_pos_embed")) {
      pos = pos.expand({B, T, c.d_model});
      top("hook_pos_embed", pos);
    }
    x = x + pos;
  }
  at::Tensor cos, sin;  // [1, T, 1, Dh]
  if (c.rope) {
    cos = rope_cos_.narrow(0, 0, T).view({1, T, 1, c.d_head});
    sin = rope_sin_.narrow(0, 0, T).view({1, T, 1, c.d_head});
  }

  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights w = layer_weights(weights_, l);
    // Layers without requested hooks run as if no Hooks object was given.
    const std::string prefix = hooks ? "blocks." + std::to_string(l) + "." : std::string();
    const HookAt hk{hooks && hooks->wants_any_prefix(prefix) ? hooks : nullptr, prefix};
    hk("hook_resid_pre", x);
    at::Tensor xn = norm(c, x, w.an_w, w.an_b);  // [B, T, D]
    hk("ln1.hook_normalized", xn);
    at::Tensor attn_out = attention(c, w, xn, cos, sin, hk);  // [B, T, D]
    hk("hook_attn_out", attn_out);
    at::Tensor resid_mid = x + attn_out;
    hk("hook_resid_mid", resid_mid);
    at::Tensor mlp_in = resid_mid;
    hk("hook_mlp_in", mlp_in);
    at::Tensor xn2 = norm(c, mlp_in, w.fn_w, w.fn_b);
    hk("ln2.hook_normalized", xn2);
    at::Tensor mlp_out = mlp(c, w, xn2, hk);
    hk("hook_mlp_out", mlp_out);
    x = resid_mid + mlp_out;
    hk("hook_resid_post", x);
  }

  at::Tensor xf = norm(c, x, weights_.at("output_norm.weight"), opt_weight(weights_, "output_norm.bias"));
  top("ln_final.hook_normalized", xf);
  return at::linear(xf, weights_.at("output.weight")).to(at::kFloat);  // [B, T, V]
}

}  // namespace edgewise
