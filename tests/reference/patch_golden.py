#!/usr/bin/env python3
"""Reference for tests/test_patch.cpp: single-edge ablations computed with plain forward hooks in
transformers, independently of edgewise's patched forward.

For an edge src->dst and the paired prompts (clean, corrupted):
  1. run the corrupted prompt and record the sender's output õ (input: the embeddings,
     hidden_states[0]; head h of layer l: its contribution z_h @ W_O_h, no o bias; m{l}: the
     MLP's output minus its down-projection bias);
  2. run the clean prompt and record the sender's clean output o (with one edge patched, the
     sender's output in the patched pass IS its clean output: it lies upstream of the reader);
  3. run the clean prompt with hooks that subtract delta = o - õ from only the chosen reader's
     input: for a q/k/v reader, the head's (or key/value head's) slice of the q/k/v projection
     is recomputed from ln1(resid - delta); for m{l}, the input of the MLP's norm (ln_2 /
     post_attention_layernorm; the residual itself is untouched); for logits, the final norm's
     input. Head-level readers (a{l}.h{h}, GPT-2 only) get q, k and v recomputed.

Models: a random GPT-2 (4 layers, 4 heads, d 64, vocab 512), a random grouped-query Llama
(4 layers, 4 heads, 2 key/value heads) and two random GPT-NeoX (Pythia's block: LayerNorm, fused
per-head q/k/v, partial rotary): "neox" with parallel attention + MLP (use_parallel_residual,
rotary_pct 0.25, as Pythia) and "neox_seq" sequential (rotary_pct 0.5); weights redrawn as in
model_golden.py. In a parallel block the MLP reads the block's input, so the graph has no
a{l}.h{h} -> m{l} edges. "gemma3": a random Gemma-3-shaped model (post-norms, q/k norms, GeGLU,
scaled embeddings, query_pre_attn_scalar != head_dim, grouped k/v, a 4-token sliding window on
layers 0, 1 and 3 with their own rotary base). Its sources are defined as edgewise defines them
(docs/PATCHING.md, "Post-norms"): head h's output is its share of the post-normed attention
output, (z_h @ W_O_h) * rsqrt(mean(a^2) + eps) * (1 + w_post) with a = o_proj(z) of the same run;
the MLP's output is post_feedforward_layernorm(mlp(x)); the input is the scaled embedding.
For each model, >= 20 random edges of every kind (input->q/k/v, head->q/k/v, head->mlp,
mlp->q/k/v, any->logits) plus all input->mlp and mlp->mlp edges.

Writes into --out:
  gpt2/, llama/, neox/, neox_seq/     save_pretrained directories
  <name>_patch.safetensors            clean_ids, corrupt_ids [B, T] int64; clean_logits,
                                      corrupt_logits [B, T, V]; edge_logits [N, B, T, V];
                                      clean_logits_f64, corrupt_logits_f64: the model in double
                                      (head-level: head_edge_logits [M, B, T, V])
  <name>_edges.json                   {"edges": [...N names], "head_edges": [...M names]}
"""
import argparse
import copy
import json
import os
import random
import types
import sys

import torch
from safetensors.torch import save_file
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config, GPT2LMHeadModel, GPTNeoXConfig,
                          GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_golden import randomise  # noqa: E402

B, T, VOCAB, L, H, D = 2, 8, 512, 4, 4, 64
PER_KIND = 20


def make_gpt2(seed):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=D, n_layer=L, n_head=H,
                     activation_function="gelu_new", layer_norm_epsilon=1e-5,
                     attn_implementation="eager")
    m = GPT2LMHeadModel(cfg)
    randomise(m, seed)
    m.tie_weights()
    return m.eval()


def make_llama(seed):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=160, num_hidden_layers=L,
                      num_attention_heads=H, num_key_value_heads=2, max_position_embeddings=256,
                      rms_norm_eps=1e-5, tie_word_embeddings=False,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                      bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    m = LlamaForCausalLM(cfg)
    randomise(m, seed)
    return m.eval()


def make_neox(seed, parallel, rotary_pct):
    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=4 * D, num_hidden_layers=L,
                        num_attention_heads=H, max_position_embeddings=256, layer_norm_eps=1e-5,
                        hidden_act="gelu", use_parallel_residual=parallel, attention_bias=True,
                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                         "partial_rotary_factor": rotary_pct},
                        tie_word_embeddings=False, bos_token_id=0, eos_token_id=0,
                        attn_implementation="eager")
    m = GPTNeoXForCausalLM(cfg)
    randomise(m, seed)
    assert m.gpt_neox.layers[0].attention.rotary_ndims == int(D // H * rotary_pct)
    return m.eval()


def make_gemma3(seed):
    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=96, num_hidden_layers=L,
                           num_attention_heads=H, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24,
                           max_position_embeddings=256, rms_norm_eps=1e-6, sliding_window=4,
                           layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                        "sliding_attention"],
                           rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                                            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                           tie_word_embeddings=True, bos_token_id=2, eos_token_id=1, pad_token_id=0,
                           attn_implementation="eager")
    m = Gemma3ForCausalLM(cfg)
    randomise(m, seed)
    # The tied embedding at a third of randomise's scale: the unembedding then gives logits of
    # the other models' size (~16, not ~50), so the same absolute fp32 tolerances apply.
    with torch.no_grad():
        m.model.embed_tokens.weight.mul_(0.3)
    m.tie_weights()
    return m.eval()


def rms_norm_f64(self, x):
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


def gemma_norm_f64(self, x):
    # The multiplier 1 + w as the fp32 model computes it (in fp32): edgewise holds exactly that
    # fp32 multiplier as the weight, so its double pass multiplies by it too.
    return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)) * (1.0 + self.weight.float()).to(x.dtype)


def to_f64(model):
    """A copy of the model that computes in double throughout. transformers' RMSNorm normalises
    in fp32 whatever the dtype (and its rotary tables are computed in fp32 then cast, as
    edgewise's are): the norm is made double here. Its eager attention takes the softmax in fp32
    too: SDPA keeps double."""
    m64 = copy.deepcopy(model).double()
    m64.set_attn_implementation("sdpa")
    for mod in m64.modules():
        if type(mod).__name__ == "LlamaRMSNorm":
            mod.forward = types.MethodType(rms_norm_f64, mod)
        if type(mod).__name__ == "Gemma3RMSNorm":
            mod.forward = types.MethodType(gemma_norm_f64, mod)
    return m64


class Arch:
    """Where things live in one transformers model."""

    def __init__(self, model):
        self.m = model
        self.gpt2 = isinstance(model, GPT2LMHeadModel)
        self.neox = isinstance(model, GPTNeoXForCausalLM)
        self.gemma = isinstance(model, Gemma3ForCausalLM)
        c = model.config
        self.H = c.num_attention_heads
        self.G = c.num_key_value_heads if hasattr(c, "num_key_value_heads") and not self.neox else self.H
        self.Dh = c.head_dim if self.gemma else c.hidden_size // self.H
        self.parallel = self.neox and c.use_parallel_residual
        self.layers = (model.transformer.h if self.gpt2 else model.gpt_neox.layers if self.neox
                       else model.model.layers)

    def ln1(self, l):
        return self.layers[l].ln_1 if self.gpt2 else self.layers[l].input_layernorm

    def ln2(self, l):
        """The MLP's input norm (Gemma: pre_feedforward_layernorm; its post_attention_layernorm is
        the attention's post-norm)."""
        if self.gemma:
            return self.layers[l].pre_feedforward_layernorm
        return self.layers[l].ln_2 if self.gpt2 else self.layers[l].post_attention_layernorm

    def final_norm(self):
        return (self.m.transformer.ln_f if self.gpt2 else self.m.gpt_neox.final_layer_norm if self.neox
                else self.m.model.norm)

    def o_proj(self, l):
        if self.neox:
            return self.layers[l].attention.dense
        return self.layers[l].attn.c_proj if self.gpt2 else self.layers[l].self_attn.o_proj

    def mlp(self, l):
        return self.layers[l].mlp

    def head_result(self, l, z, h):
        """Head h's contribution z_h @ W_O_h (no bias) from o_proj's input z [B, T, H*Dh]; with
        Gemma's post-norm, its share of the normed output: the raw contribution times the norm's
        scale of the whole output a = o_proj(z), times (1 + w)."""
        s = slice(h * self.Dh, (h + 1) * self.Dh)
        w = self.o_proj(l).weight
        raw = z[..., s] @ w[s, :] if self.gpt2 else z[..., s] @ w[:, s].T  # Conv1D is [in, out]
        if not self.gemma:
            return raw
        pn = self.layers[l].post_attention_layernorm
        a = self.o_proj(l)(z).float()
        scale = torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + pn.eps)
        return (raw.float() * scale * (1.0 + pn.weight.float())).to(raw.dtype)

    def mlp_bias(self, l):
        if self.neox:
            return self.mlp(l).dense_4h_to_h.bias
        return self.mlp(l).c_proj.bias if self.gpt2 else None

    def proj_slices(self, l, kind, idx):
        """(module, slice) list whose output slice is the q/k/v of head/kv-head idx."""
        Dh = self.Dh
        if self.gpt2:
            c_attn = self.layers[l].attn.c_attn
            off = {"q": 0, "k": self.H * Dh, "v": 2 * self.H * Dh}
            return [(c_attn, slice(off[k] + idx * Dh, off[k] + (idx + 1) * Dh)) for k in kind]
        if self.neox:  # query_key_value's rows are grouped by head: [H, 3, Dh]
            qkv = self.layers[l].attention.query_key_value
            off = {"q": 0, "k": Dh, "v": 2 * Dh}
            return [(qkv, slice(idx * 3 * Dh + off[k], idx * 3 * Dh + off[k] + Dh)) for k in kind]
        a = self.layers[l].self_attn
        mods = {"q": a.q_proj, "k": a.k_proj, "v": a.v_proj}
        return [(mods[k], slice(idx * Dh, (idx + 1) * Dh)) for k in kind]


def record_sources(arch, ids):
    """Every source's output in a plain run: dict name -> [B, T, D]."""
    zs, mlps, hooks = {}, {}, []
    for l in range(L):
        hooks.append(arch.o_proj(l).register_forward_pre_hook(
            lambda mod, args, l=l: zs.__setitem__(l, args[0].detach().clone())))
        # The MLP's output as the residual receives it (Gemma: after post_feedforward_layernorm).
        mlp_out = arch.layers[l].post_feedforward_layernorm if arch.gemma else arch.mlp(l)
        hooks.append(mlp_out.register_forward_hook(
            lambda mod, args, out, l=l: mlps.__setitem__(l, out.detach().clone())))
    with torch.no_grad():
        out = arch.m(ids, output_hidden_states=True)
    for h in hooks:
        h.remove()
    src = {"input": out.hidden_states[0].detach().clone()}
    with torch.no_grad():
        for l in range(L):
            for h in range(arch.H):
                src[f"a{l}.h{h}"] = arch.head_result(l, zs[l], h)
            b = arch.mlp_bias(l)
            src[f"m{l}"] = mlps[l] - b if b is not None else mlps[l]
    return src, out.logits.detach().clone()


def parse_reader(name):
    """('logits'|'mlp'|'attn', layer, kinds, index)."""
    if name == "logits":
        return "logits", L, None, None
    if name.startswith("m"):
        return "mlp", int(name[1:]), None, None
    layer = int(name[1:name.index(".")])
    rest = name[name.index(".") + 1:]
    if "<" in rest:
        node, kind = rest[:-3], rest[-2]
        idx = int(node[2:] if node.startswith("kv") else node[1:])
        return "attn", layer, kind, idx
    return "attn", layer, "qkv", int(rest[1:])


def patched_logits(arch, ids, reader, delta):
    kind, layer, kinds, idx = parse_reader(reader)
    hooks = []
    if kind == "logits":
        hooks.append(arch.final_norm().register_forward_pre_hook(lambda mod, args: (args[0] - delta,)))
    elif kind == "mlp":
        hooks.append(arch.ln2(layer).register_forward_pre_hook(lambda mod, args: (args[0] - delta,)))
    else:
        resid = {}
        ln1 = arch.ln1(layer)
        hooks.append(ln1.register_forward_pre_hook(lambda mod, args: resid.__setitem__("x", args[0])))
        for mod, s in arch.proj_slices(layer, kinds, idx):
            def fix(m, args, out, s=s):
                xn = ln1.forward(resid["x"] - delta)  # .forward: no hooks
                y = out.clone()
                y[..., s] = m.forward(xn)[..., s]
                return y
            hooks.append(mod.register_forward_hook(fix))
    with torch.no_grad():
        logits = arch.m(ids).logits.detach().clone()
    for h in hooks:
        h.remove()
    return logits


def edge_kind(src, dst):
    s = "input" if src == "input" else ("mlp" if src.startswith("m") else "head")
    if dst == "logits":
        return "any->logits"
    if dst.startswith("m"):
        return s + "->mlp"
    if "<" not in dst:
        return "any->head"
    return s + "->" + dst[-2]


def all_edges(arch, split):
    """Edges as (src, dst) names, in the graph's rule: sources of earlier layers feed attention
    readers; heads of the same layer also feed the MLP unless the block is parallel; all feed
    logits."""
    srcs = lambda upto_layer, with_heads_of=None: (
        ["input"] + [f"a{l}.h{h}" for l in range(upto_layer) for h in range(arch.H)]
        + [f"m{l}" for l in range(upto_layer)]
        + ([f"a{with_heads_of}.h{h}" for h in range(arch.H)] if with_heads_of is not None else []))
    edges = []
    for l in range(L):
        readers = []
        if split:
            kv = "kv" if arch.G != arch.H else "h"
            readers += [f"a{l}.h{h}<q>" for h in range(arch.H)]
            readers += [f"a{l}.{kv}{g}<k>" for g in range(arch.G)]
            readers += [f"a{l}.{kv}{g}<v>" for g in range(arch.G)]
        else:
            readers += [f"a{l}.h{h}" for h in range(arch.H)]
        for r in readers:
            edges += [(s, r) for s in srcs(l)]
        edges += [(s, f"m{l}") for s in (srcs(l) if arch.parallel else srcs(l, l))]
    edges += [(s, "logits") for s in srcs(L)]
    return edges


def sample(edges, rng, kinds_always_all=("input->mlp", "mlp->mlp")):
    by = {}
    for e in edges:
        by.setdefault(edge_kind(*e), []).append(e)
    out = []
    for k in sorted(by):
        es = by[k]
        out += es if k in kinds_always_all or len(es) <= PER_KIND else rng.sample(es, PER_KIND)
    return out


def golden(name, model, out_dir, seed):
    model.save_pretrained(os.path.join(out_dir, name), safe_serialization=True)
    arch = Arch(model)
    g = torch.Generator().manual_seed(seed + 7)
    clean = torch.randint(0, VOCAB, (B, T), generator=g)
    corrupt = torch.randint(0, VOCAB, (B, T), generator=g)
    o, clean_logits = record_sources(arch, clean)
    oc, corrupt_logits = record_sources(arch, corrupt)
    rng = random.Random(seed)
    edges = sample(all_edges(arch, True), rng)
    t = {"clean_ids": clean, "corrupt_ids": corrupt, "clean_logits": clean_logits,
         "corrupt_logits": corrupt_logits,
         "edge_logits": torch.stack([patched_logits(arch, clean, d, o[s] - oc[s]) for s, d in edges])}
    names = {"edges": [f"{s}->{d}" for s, d in edges], "head_edges": []}
    if arch.G == arch.H:  # head level needs per-head k/v: only without grouping
        hedges = rng.sample(all_edges(arch, False), 3 * PER_KIND)
        hedges = [e for e in hedges if edge_kind(*e) == "any->head"][:PER_KIND]
        t["head_edge_logits"] = torch.stack([patched_logits(arch, clean, d, o[s] - oc[s]) for s, d in hedges])
        names["head_edges"] = [f"{s}->{d}" for s, d in hedges]
    # The same model in double: checks that all-ones / all-zeros masks are exact algebraically,
    # below fp32 rounding (the C++ side runs the patched pass in double for these).
    m64 = to_f64(model)
    with torch.no_grad():
        t["clean_logits_f64"] = m64(clean).logits.detach().clone()
        t["corrupt_logits_f64"] = m64(corrupt).logits.detach().clone()
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(out_dir, f"{name}_patch.safetensors"))
    with open(os.path.join(out_dir, f"{name}_edges.json"), "w") as f:
        json.dump(names, f, indent=1)
    kinds = {}
    for s, d in edges:
        kinds[edge_kind(s, d)] = kinds.get(edge_kind(s, d), 0) + 1
    print(name, len(edges), "edges", kinds, len(names["head_edges"]), "head-level")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    golden("gpt2", make_gpt2(11), a.out, 11)
    golden("llama", make_llama(12), a.out, 12)
    golden("neox", make_neox(13, parallel=True, rotary_pct=0.25), a.out, 13)
    golden("neox_seq", make_neox(14, parallel=False, rotary_pct=0.5), a.out, 14)
    golden("gemma3", make_gemma3(15), a.out, 15)


if __name__ == "__main__":
    main()
