#!/usr/bin/env python3
"""Reference for the attribution tests (EAP, EAP-IG, clean-corrupted): edge scores computed
directly with transformers, torch autograd and forward hooks, independently of edgewise.

Graph and sources as in docs/PATCHING.md and patch_golden.py: sources input (embeddings; GPT-2:
token + position), a{l}.h{h} (z_h @ W_O_h, no o bias), m{l} (MLP output, no down bias); readers
a{l}.h{h}<q>, a{l}.h{h}<k>/<v> (GPT-2) or a{l}.kv{g}<k>/<v> (grouped-query Llama), m{l}, logits.

Metric M = mean_b (logit[b, T-1, correct_b] - logit[b, T-1, incorrect_b]).
g_d = dM/d(input of reader d), each reader reading its own copy of the residual: the copy is
resid + e_d with e_d a zero leaf that only reader d sees (q/k/v: the head's slice of the
projection recomputed from ln1(resid + e_d); m{l}: the MLP norm's input; logits: the final
norm's input). diff_s = õ_s - o_s (corrupted run minus clean run), [B, T, D].
  eap                 score[s->d] = sum_{b,t,D} diff_s * g_d(clean run)
  eap_ig_inputs       ... * mean_{k=0..steps-1} g_d(clean tokens, input source replaced by
                      õ_input + k/steps * (o_input - õ_input))  (EAP-IG get_scores_eap_ig)
  clean_corrupted     ... * (g_d(clean run) + g_d(corrupted run, clean answers)) / 2
  eap_ig_activations  ... * mean over groups G in [input, attn 0, mlp 0, attn 1, ...] and
                      k = 1..steps of g_d(clean tokens, G's outputs replaced by constants
                      k/steps * o + (1 - k/steps) * õ)  (get_scores_ig_activations). As in
                      EAP-IG the replaced outputs are constants: no gradient flows through the
                      replaced group, so the readers feeding it get g_d = 0 in those runs.
Scores are not divided by the batch size (M is already a batch mean). steps = 5.

Everything runs in double (patch_golden.to_f64: double RMSNorm, SDPA attention) on the same
random models as patch_golden.py (same builders and seeds; their fp32 weights are saved, the
C++ side casts them to double exactly as .double() does here).

Self-checks (asserted, figures printed):
  1. for random edges, the EAP score = dM/d eps with reader d's input x_d + eps * diff_s
     (central difference, eps 1e-4);
  2. for every source s, score[s->logits] = diff_s . dM/d(final residual), and
     sum_d score[s->d] = diff_s . dM/d(o_s), the gradients taken in a plain run without
     per-reader inputs (the residual stream is a sum: its gradient is the sum over readers);
  3. with e = 0 the per-reader plumbing reproduces the plain forward; IG-inputs' step 0 equals
     the corrupted run's gradients; IG-activations' last input step equals the clean run's.

Writes into --out, for name in gpt2, llama:
  <name>/                      save_pretrained directory (model.safetensors, config.json)
  <name>/attribution.safetensors
      clean_ids, corrupt_ids [B, T] int64 (B = 3, T = 8); correct, incorrect [B] int64
      eap, eap_ig_inputs, clean_corrupted, eap_ig_activations [n_edges] float64
      metric_clean, metric_corrupt [1] float64 (M on the clean / corrupted tokens)
      metric_ig_inputs [steps] float64 (M at each IG-inputs step)
      metric_ig_activations [(2L + 1) * steps] float64 (M at each group/step, group-major)
  <name>/edges.json            {"edges": [n_edges names "src->dst"], "steps": 5}
Edge order: row-major over [n_src, n_dst] as include/edgewise/graph.h orders them (sources
input, a0.h0.., m0, a1.h0.., ...; readers per layer q's, k's, v's, m{l}; then logits), real
edges only: the order of scores.masked_select(real_edges).

Does not: use any edgewise code, pad prompts, or test mean/zero ablation.
"""
import argparse
import json
import os
import random
import sys
import time

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patch_golden as pg  # noqa: E402

B, T, STEPS = 3, 8, 5
L = pg.L
F64 = torch.float64


def sources(arch):
    return ["input"] + [n for l in range(L) for n in [f"a{l}.h{h}" for h in range(arch.H)] + [f"m{l}"]]


def readers(arch):
    kv = "kv" if arch.G != arch.H else "h"
    out = []
    for l in range(L):
        out += [f"a{l}.h{h}<q>" for h in range(arch.H)]
        out += [f"a{l}.{kv}{g}<k>" for g in range(arch.G)]
        out += [f"a{l}.{kv}{g}<v>" for g in range(arch.G)]
        out.append(f"m{l}")
    return out + ["logits"]


def edge_list(arch):
    real = set(pg.all_edges(arch, True))
    return [(s, d) for s in sources(arch) for d in readers(arch) if (s, d) in real]


def embed_module(arch):
    return arch.m.transformer.drop if arch.gpt2 else arch.m.model.embed_tokens


def metric(logits, correct, incorrect):
    last = logits[:, -1, :]  # [B, V]
    r = torch.arange(last.shape[0])
    return (last[r, correct] - last[r, incorrect]).mean()


def reader_grads(arch, ids, correct, incorrect, rnames, replace=None, perturb=None, grads=True):
    """One run with per-reader inputs resid + e_d (+ perturb[d]).
    replace: None, ("input", [B, T, D]), ("attn", l, [B, T, D] sum of the heads' outputs) or
    ("mlp", l, [B, T, D]): that group's output replaced by the constant (+ the o / down bias).
    Returns (M, logits, {reader: g_d [B, T, D]} or None)."""
    D = arch.m.config.hidden_size
    perturb = perturb or {}
    e = {d: torch.zeros(ids.shape[0], ids.shape[1], D, dtype=F64, requires_grad=grads) for d in rnames}
    x = lambda d, base: base + e[d] + perturb[d] if d in perturb else base + e[d]
    hooks = []
    kv = "kv" if arch.G != arch.H else "h"
    for l in range(L):
        resid = {}
        ln1 = arch.ln1(l)
        hooks.append(ln1.register_forward_pre_hook(lambda mod, args, resid=resid: resid.__setitem__("x", args[0])))
        # Per projection module, the readers of its output slices, in slice order.
        names = {"q": [f"a{l}.h{h}<q>" for h in range(arch.H)],
                 "k": [f"a{l}.{kv}{g}<k>" for g in range(arch.G)],
                 "v": [f"a{l}.{kv}{g}<v>" for g in range(arch.G)]}
        if arch.gpt2:
            groups = [(arch.layers[l].attn.c_attn, names["q"] + names["k"] + names["v"])]
        else:
            a = arch.layers[l].self_attn
            groups = [(a.q_proj, names["q"]), (a.k_proj, names["k"]), (a.v_proj, names["v"])]
        for mod, rs in groups:
            def per_reader(m, args, out, rs=rs, resid=resid, ln1=ln1):
                Dh = arch.Dh
                parts = [m.forward(ln1.forward(x(d, resid["x"])))[..., i * Dh:(i + 1) * Dh]  # .forward: no hooks
                         for i, d in enumerate(rs)]
                y = torch.cat(parts, -1)  # [B, T, n*Dh]
                assert y.shape == out.shape
                return y
            hooks.append(mod.register_forward_hook(per_reader))
        hooks.append(arch.ln2(l).register_forward_pre_hook(lambda mod, args, l=l: (x(f"m{l}", args[0]),)))
    hooks.append(arch.final_norm().register_forward_pre_hook(lambda mod, args: (x("logits", args[0]),)))
    if replace is not None:
        if replace[0] == "input":
            hooks.append(embed_module(arch).register_forward_hook(lambda mod, args, out: replace[1]))
        elif replace[0] == "attn":
            b = arch.o_proj(replace[1]).bias
            val = replace[2] + b if b is not None else replace[2]
            hooks.append(arch.o_proj(replace[1]).register_forward_hook(lambda mod, args, out: val))
        else:
            b = arch.mlp_bias(replace[1])
            val = replace[2] + b if b is not None else replace[2]
            hooks.append(arch.mlp(replace[1]).register_forward_hook(lambda mod, args, out: val))
    try:
        with torch.set_grad_enabled(grads):
            logits = arch.m(ids).logits
            M = metric(logits, correct, incorrect)
            g = None
            if grads:
                gs = torch.autograd.grad(M, [e[d] for d in rnames], allow_unused=True, materialize_grads=True)
                g = {d: t.detach() for d, t in zip(rnames, gs)}
    finally:
        for h in hooks:
            h.remove()
    return M.detach().item(), logits.detach(), g


def plain_grads(arch, ids, correct, incorrect):
    """A plain run (no per-reader inputs): dM/d of each source group's output (embeddings, o_proj
    output = sum of the heads' outputs + bias, MLP output) and of the final residual, as the
    gradient of a zero added to each (the weights do not require grad)."""
    z, hooks = {}, []

    def add_zero(key, t):
        z[key] = torch.zeros_like(t, requires_grad=True)
        return t + z[key]
    hooks.append(embed_module(arch).register_forward_hook(lambda mod, args, out: add_zero("input", out)))
    for l in range(L):
        hooks.append(arch.o_proj(l).register_forward_hook(lambda mod, args, out, l=l: add_zero(f"a{l}", out)))
        hooks.append(arch.mlp(l).register_forward_hook(lambda mod, args, out, l=l: add_zero(f"m{l}", out)))
    hooks.append(arch.final_norm().register_forward_pre_hook(lambda mod, args: (add_zero("final", args[0]),)))
    try:
        logits = arch.m(ids).logits
        M = metric(logits, correct, incorrect)
        keys = list(z)
        gs = torch.autograd.grad(M, [z[k] for k in keys])
    finally:
        for h in hooks:
            h.remove()
    return logits.detach(), dict(zip(keys, gs))


def score(diff, g, edges):
    return torch.stack([(diff[s] * g[d]).sum() for s, d in edges])


def mean_grads(gs):
    return {d: torch.stack([g[d] for g in gs]).mean(0) for d in gs[0]}


def golden(name, model, out_dir, seed):
    t0 = time.time()
    d_out = os.path.join(out_dir, name)
    model.save_pretrained(d_out, safe_serialization=True)
    arch = pg.Arch(pg.to_f64(model))
    for p in arch.m.parameters():
        p.requires_grad_(False)  # gradients only w.r.t. reader inputs
    gen = torch.Generator().manual_seed(seed + 101)
    V = arch.m.config.vocab_size
    clean = torch.randint(0, V, (B, T), generator=gen)
    corrupt = torch.randint(0, V, (B, T), generator=gen)
    correct = torch.randint(0, V, (B,), generator=gen)
    incorrect = (correct + torch.randint(1, V, (B,), generator=gen)) % V  # != correct
    rn = readers(arch)
    edges = edge_list(arch)
    src_names = sources(arch)

    o, clean_logits = pg.record_sources(arch, clean)
    oc, corrupt_logits = pg.record_sources(arch, corrupt)
    diff = {s: oc[s] - o[s] for s in src_names}  # [B, T, D] each

    # Clean and corrupted runs with per-reader inputs.
    m_clean, lg, g_clean = reader_grads(arch, clean, correct, incorrect, rn)
    plumbing = (lg - clean_logits).abs().max().item()
    m_corrupt, lg, g_corrupt = reader_grads(arch, corrupt, correct, incorrect, rn)
    plumbing = max(plumbing, (lg - corrupt_logits).abs().max().item())
    assert plumbing < 1e-12, f"per-reader plumbing changes the forward: {plumbing}"
    assert abs(m_clean - metric(clean_logits, correct, incorrect).item()) < 1e-12

    eap = score(diff, g_clean, edges)
    cc = score(diff, mean_grads([g_clean, g_corrupt]), edges)

    # EAP-IG, interpolating the input embeddings (on the clean tokens).
    ig_in, m_ig_in = [], []
    for k in range(STEPS):
        emb = oc["input"] + (k / STEPS) * (o["input"] - oc["input"])
        m, _, g = reader_grads(arch, clean, correct, incorrect, rn, replace=("input", emb))
        ig_in.append(g)
        m_ig_in.append(m)
    step0 = max((ig_in[0][d] - g_corrupt[d]).abs().max().item() for d in rn)
    assert step0 < 1e-12, f"IG-inputs step 0 differs from the corrupted run: {step0}"
    eap_ig_inputs = score(diff, mean_grads(ig_in), edges)

    # EAP-IG, interpolating each group's outputs in turn.
    groups = [("input",)] + [g for l in range(L) for g in (("attn", l), ("mlp", l))]
    ig_act, m_ig_act = [], []
    for grp in groups:
        for k in range(1, STEPS + 1):
            a = k / STEPS
            if grp[0] == "input":
                rep = ("input", a * o["input"] + (1 - a) * oc["input"])
            elif grp[0] == "attn":
                l = grp[1]
                heads = [f"a{l}.h{h}" for h in range(arch.H)]
                rep = ("attn", l, sum(a * o[s] + (1 - a) * oc[s] for s in heads))
            else:
                rep = ("mlp", grp[1], a * o[f"m{grp[1]}"] + (1 - a) * oc[f"m{grp[1]}"])
            m, _, g = reader_grads(arch, clean, correct, incorrect, rn, replace=rep)
            ig_act.append(g)
            m_ig_act.append(m)
    last_input = max((ig_act[STEPS - 1][d] - g_clean[d]).abs().max().item() for d in rn)
    assert last_input < 1e-12, f"IG-activations input step alpha=1 differs from the clean run: {last_input}"
    eap_ig_act = score(diff, mean_grads(ig_act), edges)

    # Check 1: EAP = central finite difference of M in the edge's direction.
    eps, fd_worst = 1e-4, 0.0
    rng = random.Random(seed)
    idx = rng.sample(range(len(edges)), 5)
    for i in idx:
        s, d = edges[i]
        mp = reader_grads(arch, clean, correct, incorrect, rn, perturb={d: eps * diff[s]}, grads=False)[0]
        mm = reader_grads(arch, clean, correct, incorrect, rn, perturb={d: -eps * diff[s]}, grads=False)[0]
        fd = (mp - mm) / (2 * eps)
        err = abs(fd - eap[i].item())
        fd_worst = max(fd_worst, err / max(1.0, abs(fd)))
        print(f"  fd {s}->{d}: eap {eap[i].item():+.10e} fd {fd:+.10e} |diff| {err:.2e}")
        # Central difference error ~ eps^2 * M''' (~1e-8 * O(1)) plus rounding ~1e-16/eps.
        assert err < 1e-6 * max(1.0, abs(fd)), f"EAP {s}->{d} differs from finite difference: {err}"

    # Check 2: against plain-run gradients of the residual stream.
    with torch.enable_grad():
        _, pgr = plain_grads(arch, clean, correct, incorrect)
    pos = {e: i for i, e in enumerate(edges)}
    worst_logits = worst_sum = 0.0
    scale = eap.abs().max().item()
    for s in src_names:
        want_logits = (diff[s] * pgr["final"]).sum().item()
        worst_logits = max(worst_logits, abs(eap[pos[(s, "logits")]].item() - want_logits))
        key = s if not s.startswith("a") else s[:s.index(".")]  # heads: the o_proj output's gradient
        want_sum = (diff[s] * pgr[key]).sum().item()
        got_sum = sum(eap[pos[(s, d)]].item() for d in rn if (s, d) in pos)
        worst_sum = max(worst_sum, abs(got_sum - want_sum))
    # Double rounding over sums of ~1e3 terms of size <= max|score|.
    assert worst_logits < 1e-12 * max(1.0, scale), worst_logits
    assert worst_sum < 1e-12 * max(1.0, scale), worst_sum

    t = {"clean_ids": clean, "corrupt_ids": corrupt, "correct": correct, "incorrect": incorrect,
         "eap": eap, "eap_ig_inputs": eap_ig_inputs, "clean_corrupted": cc,
         "eap_ig_activations": eap_ig_act,
         "metric_clean": torch.tensor([m_clean], dtype=F64),
         "metric_corrupt": torch.tensor([m_corrupt], dtype=F64),
         "metric_ig_inputs": torch.tensor(m_ig_in, dtype=F64),
         "metric_ig_activations": torch.tensor(m_ig_act, dtype=F64)}
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(d_out, "attribution.safetensors"))
    with open(os.path.join(d_out, "edges.json"), "w") as f:
        json.dump({"edges": [f"{s}->{d}" for s, d in edges], "steps": STEPS}, f, indent=1)
    print(f"{name}: {len(edges)} edges ({len(src_names)} sources, {len(rn)} readers); "
          f"M clean {m_clean:+.6f} corrupted {m_corrupt:+.6f}")
    for k in ("eap", "eap_ig_inputs", "clean_corrupted", "eap_ig_activations"):
        print(f"  max|{k}| = {t[k].abs().max().item():.6e}")
    print(f"  checks: plumbing {plumbing:.1e}, IG step0 vs corrupted {step0:.1e}, "
          f"IG-act alpha=1 vs clean {last_input:.1e}, fd rel err max {fd_worst:.1e}, "
          f"logits reader {worst_logits:.1e}, sum over readers {worst_sum:.1e}; {time.time() - t0:.1f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.time()
    golden("gpt2", pg.make_gpt2(11), a.out, 11)
    golden("llama", pg.make_llama(12), a.out, 12)
    print(f"total {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
