#!/usr/bin/env python3
"""Reference check for path patching, FLAP scores and analytic FLOPs (tests/test_path_patching.cpp
writes the cases).

For each subdirectory <dir>/<name>/ holding case.json (a small random GPT-2 or grouped-query Llama
saved by Hugging Face, the prompts, and edgewise's results), the model is loaded in transformers
in float64 (eager attention, eval mode), so the reference's own rounding is negligible (GPT-2 is
float64 throughout; transformers' Llama keeps RMSNorm, the attention softmax and the rotary angles
in float32 whatever the dtype, which leaves ~1e-7 relative error: still 100x below the tolerances
below), and:

  1. path patching (Wang et al.'s two passes, plain forward hooks / pre-hooks on the HF modules):
     the clean and corrupted prompts are run once, caching every layer's per-head attention output
     before the output projection (the input of GPT-2's attn.c_proj / Llama's self_attn.o_proj,
     head h = channels h*Dh..(h+1)*Dh) and every layer's MLP output (the `mlp` module's output).
     Pass 1 (clean tokens): every o_proj/c_proj input is replaced by its clean cache, except the
     sender head's channels, which take the corrupted cache; for "direct" paths every MLP output
     is also replaced by its clean cache, for "via-mlps" the MLPs are recomputed (norms always
     are). For receiver "logits" the metric of pass 1 is the answer. Otherwise pass 1 also captures
     the receiver's head slice of its q / k / v projection output (GPT-2: c_attn's output split in
     three; Llama: q_proj / k_proj / v_proj, k and v indexed by key/value head), and pass 2 (clean
     tokens) replaces only that slice, at every position; pass 2's metric is the answer.
     Metric: mean over the batch of logit[b, T-1, correct_b] - logit[b, T-1, incorrect_b].
     Tolerance |edgewise - reference| <= 1e-4: edgewise computes in float32 over 4 layers and
     random models have logit differences of order 0.1-1.
  2. FLAP: the input of the attention output projection and of the MLP down projection (GPT-2:
     mlp.c_proj) are captured over real tokens only (positions >= length are padding and excluded;
     N_tok = sum(lengths)); per channel j: mean, population variance IFV, mean square sq;
     with W as [out, in] (GPT-2's Conv1D [in, out] transposed) WIFV_j = IFV_j * sum_i W_ij^2 and
     WIFN_j = mean_i |W_ij| * sqrt(sq_j). Vanilla head scores: a = metric^2 standardised per layer
     over the H*Dh channels ((a - mean) / unbiased std), averaged over the head's Dh channels;
     MLP scores: the metric itself standardised per layer over F channels. Contrastive: attention
     a = |m_clean^2 - m_corr^2|, MLP |m_clean - m_corr|, then the same. Tolerance: relative
     difference max|a - b| / max|b| per array <= 1e-5 (edgewise collects float32 activations
     and accumulates the statistics in float64).
  3. FLOPs: transformers' forward (float32, eager attention) on random tokens [rows, tokens] under
     torch.utils.flop_counter.FlopCounterMode; get_total_flops() // 2 (it counts a multiply-add as
     2) must equal edgewise's analytic count exactly; on a mismatch the per-op breakdown is printed.
"""
import argparse
import json
import os
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForCausalLM

PATH_TOL = 1e-4
FLAP_TOL = 1e-5
REQUIRED_FLAP = {"channel": ("ifv", "wifv", "wifn"), "heads": ("ifv", "wifv", "wifn"), "mlp_scores": ("wifv",),
                 "contrastive_heads": ("wifn",), "contrastive_mlp": ("wifn",)}


class Arch:
    """Hook points of a Hugging Face GPT-2 or Llama model."""

    def __init__(self, model, arch):
        self.model, self.arch = model, arch
        cfg = model.config
        if arch == "gpt2":
            self.layers = model.transformer.h
            self.D, self.H = cfg.n_embd, cfg.n_head
            self.G, self.Dh = self.H, self.D // self.H
            self.F = cfg.n_inner or 4 * self.D
            self.gated = False
        else:
            self.layers = model.model.layers
            self.D, self.H = cfg.hidden_size, cfg.num_attention_heads
            self.G = cfg.num_key_value_heads
            self.Dh = getattr(cfg, "head_dim", None) or self.D // self.H
            self.F = cfg.intermediate_size
            self.gated = True
        self.L, self.V = len(self.layers), cfg.vocab_size

    def o_proj(self, l):
        return self.layers[l].attn.c_proj if self.arch == "gpt2" else self.layers[l].self_attn.o_proj

    def mlp(self, l):
        return self.layers[l].mlp

    def down(self, l):
        return self.layers[l].mlp.c_proj if self.arch == "gpt2" else self.layers[l].mlp.down_proj

    def weight_out_in(self, module):
        w = module.weight.detach()
        return w.t() if self.arch == "gpt2" else w  # GPT-2 Conv1D stores [in, out]

    def qkv(self, l, kind, head):
        """(module, channel slice of its output) of head `head`'s q/k/v (k/v: key/value head)."""
        if self.arch == "gpt2":
            off = {"q": 0, "k": self.D, "v": 2 * self.D}[kind]
            return self.layers[l].attn.c_attn, slice(off + head * self.Dh, off + (head + 1) * self.Dh)
        a = self.layers[l].self_attn
        mod = {"q": a.q_proj, "k": a.k_proj, "v": a.v_proj}[kind]
        return mod, slice(head * self.Dh, (head + 1) * self.Dh)


def load(model_dir, dtype):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="eager").eval()


def run_with(model, tokens, hooks):
    handles = []
    try:
        for mod, kind, fn in hooks:
            handles.append(mod.register_forward_pre_hook(fn) if kind == "pre" else mod.register_forward_hook(fn))
        with torch.no_grad():
            return model(tokens, use_cache=False).logits
    finally:
        for h in handles:
            h.remove()


def logit_diff(logits, correct, incorrect):
    last = logits[:, -1, :]
    b = torch.arange(last.shape[0])
    return (last[b, correct] - last[b, incorrect]).mean().item()


def cache_run(a, tokens):
    """Run `tokens`, returning (per-layer o_proj inputs, per-layer MLP outputs, logits)."""
    z, m, hooks = {}, {}, []
    for l in range(a.L):
        hooks.append((a.o_proj(l), "pre", lambda mod, args, l=l: z.__setitem__(l, args[0].detach().clone())))
        hooks.append((a.mlp(l), "post", lambda mod, args, out, l=l: m.__setitem__(l, out.detach().clone())))
    logits = run_with(a.model, tokens, hooks)
    return z, m, logits


def path_patch(a, clean, corr_z, clean_z, clean_m, sender, receiver, paths):
    """Wang et al.'s path patching; returns the logits of the final pass."""
    sl, sh = sender
    sch = slice(sh * a.Dh, (sh + 1) * a.Dh)
    hooks = []

    def freeze_z(mod, args, l):
        x = clean_z[l].clone()
        if l == sl:
            x[..., sch] = corr_z[l][..., sch]
        return (x,) + tuple(args[1:])

    for l in range(a.L):
        hooks.append((a.o_proj(l), "pre", lambda mod, args, l=l: freeze_z(mod, args, l)))
        if paths == "direct":
            hooks.append((a.mlp(l), "post", lambda mod, args, out, l=l: clean_m[l].clone()))
        elif paths != "via-mlps":
            raise ValueError(f"unknown paths {paths!r}")
    if receiver == "logits":
        return run_with(a.model, clean, hooks)
    mod, ch = a.qkv(receiver["layer"], receiver["input"], receiver["head"])
    got = {}
    hooks.append((mod, "post", lambda m_, args, out: got.__setitem__("x", out[..., ch].detach().clone())))
    run_with(a.model, clean, hooks)

    def put(m_, args, out):
        out = out.clone()
        out[..., ch] = got["x"]
        return out

    return run_with(a.model, clean, [(mod, "post", put)])


def channel_metrics(a, tokens, lengths):
    """Raw per-channel IFV / WIFV / WIFN of the o_proj and down-projection inputs over real tokens."""
    tokens = torch.tensor(tokens)
    lengths = torch.tensor(lengths)
    real = torch.arange(tokens.shape[1])[None, :] < lengths[:, None]  # [N, T]
    xs, hooks = {}, []
    for l in range(a.L):
        for kind, mod in (("attn", a.o_proj(l)), ("mlp", a.down(l))):
            hooks.append((mod, "pre", lambda m_, args, key=(kind, l): xs.__setitem__(key, args[0][real].detach().clone())))
    run_with(a.model, tokens, hooks)
    out = {k: {"attn": [], "mlp": []} for k in ("ifv", "wifv", "wifn")}
    for l in range(a.L):
        for kind, mod in (("attn", a.o_proj(l)), ("mlp", a.down(l))):
            x = xs[(kind, l)]  # [N_tok, C]
            n = x.shape[0]
            mean = x.sum(0) / n
            ifv = ((x - mean) ** 2).sum(0) / n
            sq = (x ** 2).sum(0) / n
            w = a.weight_out_in(mod)  # [out, in]
            out["ifv"][kind].append(ifv)
            out["wifv"][kind].append(ifv * (w ** 2).sum(0))
            out["wifn"][kind].append(w.abs().mean(0) * sq.sqrt())
    return {k: {kind: torch.stack(v) for kind, v in d.items()} for k, d in out.items()}


def standardise(x):
    """Per row (layer): (x - mean) / unbiased std."""
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)


def head_scores(a, attn_a):
    """attn_a: [L, H*Dh] channel scores -> [L, H]."""
    return standardise(attn_a).reshape(a.L, a.H, a.Dh).mean(-1)


def flap_reference(a, flap):
    clean = channel_metrics(a, flap["tokens"], flap["lengths"])
    corr = channel_metrics(a, flap["corrupted_tokens"], flap["corrupted_lengths"])
    ref = {"channel": clean,
           "heads": {k: head_scores(a, clean[k]["attn"] ** 2) for k in clean},
           "mlp_scores": {k: standardise(clean[k]["mlp"]) for k in clean},
           "contrastive_heads": {k: head_scores(a, (clean[k]["attn"] ** 2 - corr[k]["attn"] ** 2).abs()) for k in clean},
           "contrastive_mlp": {k: standardise((clean[k]["mlp"] - corr[k]["mlp"]).abs()) for k in clean}}
    return ref


def count_flops(model_dir, rows, tokens, seed=0):
    """transformers' forward FLOPs (multiply-adds) and the per-op breakdown."""
    model = load(model_dir, torch.float32)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(model.config.vocab_size, (rows, tokens), generator=g)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(ids, use_cache=False)
    return fc.get_total_flops() // 2, fc.get_flop_counts()


def formula_flops(a, rows, T):
    per_layer = (rows * T * a.D * (a.H + 2 * a.G) * a.Dh + rows * T * a.H * a.Dh * a.D
                 + 2 * rows * a.H * T * T * a.Dh + rows * T * a.D * a.F * (3 if a.gated else 2))
    return a.L * per_layer + rows * T * a.D * a.V


def rel_diff(ours, ref):
    ours = torch.as_tensor(ours, dtype=torch.float64)
    if ours.shape != ref.shape:
        return None
    scale = ref.abs().max().item()
    return (ours - ref).abs().max().item() / (scale if scale > 0 else 1.0)


def check_case(d, bad):
    name = os.path.basename(d)
    case = json.load(open(os.path.join(d, "case.json")))
    model = load(case["model_dir"], torch.float64)
    a = Arch(model, case["arch"])
    clean = torch.tensor(case["clean"])
    corrupted = torch.tensor(case["corrupted"])
    correct, incorrect = torch.tensor(case["correct"]), torch.tensor(case["incorrect"])
    clean_z, clean_m, clean_logits = cache_run(a, clean)
    corr_z, _, corr_logits = cache_run(a, corrupted)
    print(f"pp_check: {name}: clean metric {logit_diff(clean_logits, correct, incorrect):.6f}, "
          f"corrupted {logit_diff(corr_logits, correct, incorrect):.6f}")

    for section in ("path_cases", "flap", "flops"):
        if not case.get(section):
            bad.append(f"{name}: case.json has no {section}: nothing to compare")
    worst, failed = 0.0, len(bad)
    clean_metric = logit_diff(clean_logits, correct, incorrect)
    by_paths = {}
    for pc in case.get("path_cases", []):
        logits = path_patch(a, clean, corr_z, clean_z, clean_m, pc["sender"], pc["receiver"], pc["paths"])
        ref = logit_diff(logits, correct, incorrect)
        by_paths.setdefault(json.dumps([pc["sender"], pc["receiver"]]), {})[pc["paths"]] = ref
        # A case whose patch changes nothing could not catch a wrong edgewise value.
        if not abs(ref - clean_metric) > 1e-4:
            bad.append(f"{name}: path {pc['sender']} -> {pc['receiver']} ({pc['paths']}) leaves the clean metric "
                       f"unchanged: the case checks nothing")
        diff = abs(pc["metric"] - ref)
        worst = max(worst, diff)
        if not diff <= PATH_TOL:
            bad.append(f"{name}: path {pc['sender']} -> {pc['receiver']} ({pc['paths']}): edgewise "
                       f"{pc['metric']:.8g} != reference {ref:.8g} (|diff| {diff:.3g} > {PATH_TOL})")
    if by_paths and not any(abs(v.get("direct", 0) - v.get("via-mlps", 0)) > 1e-4 for v in by_paths.values()):
        bad.append(f"{name}: direct and via-mlps paths never differ: the cases cannot tell them apart")
    if case.get("path_cases"):
        print(f"pp_check: {name}: {'ok' if len(bad) == failed else 'FAILED'} {len(case['path_cases'])} path cases, "
              f"max |diff| {worst:.2e}")

    if "flap" in case:
        flap = case["flap"]
        ref = flap_reference(a, flap)
        for field, metrics in REQUIRED_FLAP.items():
            for metric in metrics:
                if metric not in flap.get(field, {}):
                    bad.append(f"{name}: flap.{field}.{metric} missing")
        n, worst, failed = 0, 0.0, len(bad)
        for field in ("channel", "heads", "mlp_scores", "contrastive_heads", "contrastive_mlp"):
            for metric, val in flap.get(field, {}).items():
                if metric not in ref[field]:
                    bad.append(f"{name}: flap.{field}.{metric}: unknown metric")
                    continue
                items = val.items() if field == "channel" else [(None, val)]
                for kind, ours in items:
                    r = ref[field][metric][kind] if kind else ref[field][metric]
                    label = f"flap.{field}.{metric}" + (f".{kind}" if kind else "")
                    rd = rel_diff(ours, r)
                    n += 1
                    if rd is None:
                        bad.append(f"{name}: {label}: shape {list(torch.as_tensor(ours).shape)} != reference {list(r.shape)}")
                    elif not rd <= FLAP_TOL:
                        bad.append(f"{name}: {label}: relative difference {rd:.3g} > {FLAP_TOL}")
                    worst = max(worst, rd or 0.0)
        print(f"pp_check: {name}: {'ok' if len(bad) == failed else 'FAILED'} {n} FLAP arrays, "
              f"max relative diff {worst:.2e}")

    for fl in case.get("flops", []):
        ref, breakdown = count_flops(case["model_dir"], fl["rows"], fl["tokens"])
        if fl["edgewise"] != ref:
            ops = {str(op): c // 2 for op, c in breakdown.get("Global", {}).items()}
            bad.append(f"{name}: FLOPs rows={fl['rows']} tokens={fl['tokens']}: edgewise {fl['edgewise']} != "
                       f"FlopCounterMode {ref} (multiply-adds by op: {ops})")
        else:
            print(f"pp_check: {name}: ok FLOPs rows={fl['rows']} tokens={fl['tokens']}: {ref}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    root = ap.parse_args().dir
    torch.set_num_threads(1)  # tiny models: threading costs ~100x here, and single-threaded is deterministic
    bad = []
    cases = sorted(e for e in os.listdir(root) if os.path.isfile(os.path.join(root, e, "case.json")))
    if not cases:
        bad.append(f"{root}: no case directories")
    for c in cases:
        check_case(os.path.join(root, c), bad)
    if bad:
        print("pp_check FAILED:\n  " + "\n  ".join(bad))
        sys.exit(1)
    print(f"pp_check: all {len(cases)} cases match")


if __name__ == "__main__":
    main()
