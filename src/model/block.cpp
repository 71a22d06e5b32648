// The transformer block's primitives (see block.h): the only place its arithmetic is written.
#include "block.h"

#include <ATen/ATen.h>

#include <cmath>

#include "edgewise/error.h"

namespace edgewise::model_detail {

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

at::Tensor opt_weight(const std::map<std::string, at::Tensor>& w, const std::string& name,
                      std::optional<at::ScalarType> dtype) {
  auto it = w.find(name);
  if (it == w.end()) return at::Tensor();
  return dtype ? it->second.to(*dtype) : it->second;
}

at::Tensor norm(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (c.norm == Norm::None) return x;
  if (c.norm == Norm::RMSNorm) return rms_norm(x, w, c.norm_eps);
  return at::layer_norm(x, {c.d_model}, w, b, c.norm_eps);
}

int64_t rotary_dims(const ModelConfig& c) { return c.block.rotary_dims > 0 ? c.block.rotary_dims : c.d_head; }

at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t dh = x.size(-1), dr = cos.size(-1);
  if (dr < dh) {  // partial: the first dr dims turn, the rest pass through (HF's q_rot / q_pass)
    return at::cat({rotary(x.narrow(-1, 0, dr), cos, sin), x.narrow(-1, dr, dh - dr)}, -1);
  }
  const int64_t h = dh / 2;
  at::Tensor rot = at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);  // rotate_half
  return x * cos + rot * sin;
}

LayerWeights layer_weights(const std::map<std::string, at::Tensor>& w, int64_t l) {
  const std::string p = "blk." + std::to_string(l) + ".";
  auto g = [&](const char* n) {
    auto it = w.find(p + n);
    return it == w.end() ? at::Tensor() : it->second;
  };
  if (!w.count(p + "attn_q.weight"))
    fail("model", "layer " + std::to_string(l) +
                      "'s weights are not in this process (a pipeline stage holds only its own layers)");
  return {g("attn_norm.weight"), g("attn_norm.bias"), g("attn_q.weight"), g("attn_q.bias"),
          g("attn_k.weight"),    g("attn_k.bias"),    g("attn_v.weight"), g("attn_v.bias"),
          g("attn_output.weight"), g("attn_output.bias"), g("ffn_norm.weight"), g("ffn_norm.bias"),
          g("ffn_gate.weight"),  g("ffn_gate.bias"),  g("ffn_up.weight"), g("ffn_up.bias"),
          g("ffn_down.weight"),  g("ffn_down.bias"),  g("attn_q_norm.weight"), g("attn_k_norm.weight"),
          g("post_attention_norm.weight"), g("post_ffw_norm.weight")};
}

LayerWeights layer_weights_as(const LayerWeights& w, at::ScalarType dt) {
  LayerWeights r = w;
  for (at::Tensor* t : {&r.an_w, &r.an_b, &r.q_w, &r.q_b, &r.k_w, &r.k_b, &r.v_w, &r.v_b, &r.o_w, &r.o_b,
                        &r.fn_w, &r.fn_b, &r.gate_w, &r.gate_b, &r.up_w, &r.up_b, &r.down_w, &r.down_b,
                        &r.qn_w, &r.kn_w, &r.pan_w, &r.pfn_w})
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
    // SwiGLU, or GeGLU with the tanh approximation (Gemma's gelu_pytorch_tanh).
    at::Tensor post = (c.act == Act::Silu ? at::silu(gate) : c.act == Act::GeluNew ? at::gelu(gate, "tanh") : at::gelu(gate)) * up;
    hk("mlp.hook_post", post);
    return post;
  }
  at::Tensor pre = at::linear(xn, w.up_w, w.up_b);  // [.., F]
  hk("mlp.hook_pre", pre);
  at::Tensor post = c.act == Act::GeluNew ? at::gelu(pre, "tanh") : c.act == Act::Relu ? at::relu(pre) : at::gelu(pre);
  hk("mlp.hook_post", post);
  return post;
}

AttnSpec attn_spec(const ModelConfig& c, int64_t layer) {
  AttnSpec a;
  a.causal = c.causal;
  a.window = c.block.is_sliding(layer) ? c.block.sliding_window : 0;
  a.scale = c.block.attn_scale;
  return a;
}

at::Tensor attention_mask(const AttnSpec& a, int64_t T, const c10::Device& d) {
  at::Tensor i = at::arange(T, at::TensorOptions().dtype(at::kLong).device(d));
  at::Tensor diff = i.view({T, 1}) - i.view({1, T});  // query - key
  at::Tensor m = a.causal ? diff >= 0 : at::ones({T, T}, diff.options().dtype(at::kBool));
  if (a.window > 0) m = m.logical_and(diff < a.window);
  return m;
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttnSpec& a) {
  const double scale = a.scale > 0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const bool gqa = k.size(1) != q.size(1);
  const int64_t T = q.size(2);
  if (a.window > 0 && a.window < T) {  // a window that cuts: an explicit mask (SDPA's is_causal cannot say it)
    if (!a.causal) fail("attention", "a sliding window needs causal attention");
    return at::scaled_dot_product_attention(q, k, v, attention_mask(a, T, q.device()), 0.0, false, scale, gqa);
  }
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/a.causal,
                                          scale, /*enable_gqa=*/gqa);
}

at::Tensor head_norm(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w) {
  if (!c.block.qk_norm || !w.defined()) return x;
  return rms_norm(x, w, c.norm_eps);
}

at::Tensor embed_tokens(const ModelConfig& c, const std::map<std::string, at::Tensor>& w, const at::Tensor& tokens,
                        at::ScalarType dt) {
  at::Tensor x = at::embedding(w.at("token_embd.weight").to(dt), tokens);
  // transformers multiplies by the scale cast to the weights' dtype (Gemma3TextScaledWordEmbedding).
  if (c.block.embed_scale > 0) x = x * at::scalar_tensor(c.block.embed_scale, at::kFloat).to(dt).to(x.device());
  if (c.positional_embedding)
    x = x + w.at("position_embd.weight").to(dt).narrow(0, 0, tokens.size(-1)).unsqueeze(0);
  return x;
}

at::Tensor post_norm(const ModelConfig& c, const at::Tensor& out, const at::Tensor& w) {
  if (!c.block.post_norms || !w.defined()) return out;
  return rms_norm(out, w, c.norm_eps);
}

at::Tensor post_norm_shares(const ModelConfig& c, const at::Tensor& heads, const at::Tensor& total,
                            const at::Tensor& w) {
  if (!c.block.post_norms || !w.defined()) return heads;
  // The norm's scale of the whole output, computed as rms_norm computes it (fp32, or double).
  const at::Tensor tf = total.scalar_type() == at::kDouble ? total : total.to(at::kFloat);
  const at::Tensor s = at::rsqrt(tf.pow(2).mean(-1, /*keepdim=*/true) + c.norm_eps);  // [.., 1]
  return (heads.to(tf.scalar_type()) * s * w.to(tf.scalar_type())).to(heads.scalar_type());
}


at::Tensor project_heads(const at::Tensor& xn, const at::Tensor& w, const at::Tensor& b) {
  if (b.defined()) return at::baddbmm(b.unsqueeze(1), xn, w.transpose(1, 2));
  return at::bmm(xn, w.transpose(1, 2));
}

at::Tensor attention_at(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& pos,
                        const AttnSpec& a) {
  const int64_t N = q.size(0), B = pos.size(0), T = k.size(2), K = N / B;
  const double scale = a.scale > 0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  if (!a.causal) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, false, scale);
  const at::Tensor key = at::arange(T, pos.options()).view({1, T});
  at::Tensor seen = key <= pos.view({B, 1});  // [B, T]
  if (a.window > 0) seen = seen.logical_and(key > pos.view({B, 1}) - a.window);
  at::Tensor mask = seen
                        .view({1, B, 1, 1, T})
                        .expand({K, B, 1, 1, T})
                        .reshape({N, 1, 1, T});
  return at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, scale);
}

at::Tensor out_proj_heads(const ModelConfig& c, const LayerWeights& w) {
  return w.o_w.view({c.d_model, c.n_heads, c.d_head}).permute({1, 2, 0});  // [H, Dh, D]
}

at::Tensor head_results(const at::Tensor& zh, const at::Tensor& wo) { return at::bmm(zh, wo); }

at::Tensor mlp_output(const ModelConfig& c, const LayerWeights& w, const at::Tensor& xn, const HookFn* hook, bool bias) {
  return at::linear(mlp_hidden(c, w, xn, hook), w.down_w, bias ? w.down_b : at::Tensor());
}

}  // namespace edgewise::model_detail
