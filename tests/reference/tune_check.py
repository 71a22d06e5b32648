#!/usr/bin/env python3
"""Reference check for circuit-tuning (tests/test_tune.cpp writes the cases).

For each case directory <model>_<optimizer>/ (a tuned random model saved by edgewise, with
case.json: the base model, the circuit's parts, the optimiser settings, the prompts):
  1. the circuit's masks are rebuilt here from the part names in Hugging Face layouts (GPT-2's
     Conv1D [in, out] c_attn / c_proj / c_fc, Llama's [out, in] q/k/v/o, gate/up/down, GPT-NeoX's
     query_key_value grouped by head [H, 3, Dh] / dense / dense_h_to_4h / dense_4h_to_h), not
     from edgewise's canonical tensors;
  2. the base model is trained in transformers with torch.optim.SGD / AdamW for the same steps on
     the same loss (cross-entropy of the answer token at each prompt's last position, every
     example each step), the gradient masked, and every entry outside the masks (value and
     optimiser state) restored after each step: edgewise's rule ("a frozen entry is skipped");
  3. the result must equal the directory edgewise saved (loaded by transformers): max |diff|
     <= 1e-5 (float32 training, 3 steps; differences come only from summation order), while the
     masked entries moved by far more (> 1e-3) and nothing else moved at all;
  4. transformers' logits of the saved model equal the logits edgewise computed (1e-4).
For default/ (the default model tuned one step and saved with its GGUF tokenizer exported to
tokenizer.json): AutoTokenizer's ids equal edgewise's, and transformers' logits equal edgewise's
within 1e-3 (30 layers in float32, logits up to ~40: the project's default-model tolerance).
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.manual_seed(0)
ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
root = ap.parse_args().dir
bad = []


def part_masks(model, parts, mlp_heads):
    cfg = model.config
    gpt2 = cfg.model_type == "gpt2"
    neox = cfg.model_type == "gpt_neox"
    sd = dict(model.named_parameters())
    masks = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in sd.items()}
    if gpt2:
        D, H = cfg.n_embd, cfg.n_head
        Dh, G, F = D // H, H, cfg.n_inner or 4 * D
        pre = "transformer.h.{}."
    elif neox:
        D, H = cfg.hidden_size, cfg.num_attention_heads
        Dh, G, F = D // H, H, cfg.intermediate_size
        pre = "gpt_neox.layers.{}."
    else:
        D, H, G = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads
        Dh = getattr(cfg, "head_dim", None) or D // H
        F = cfg.intermediate_size
        pre = "model.layers.{}."
    for name in parts:
        comp, idx, kind = name.split(".")
        layer = int(comp[1:])
        i = int(idx[2:] if idx.startswith("kv") else idx[1:])
        p = pre.format(layer)
        lo, hi = i * F // mlp_heads, (i + 1) * F // mlp_heads
        if neox:
            off = {"q": 0, "k": Dh, "v": 2 * Dh}  # rows of head i: [i * 3 Dh, (i + 1) * 3 Dh) = q | k | v
            if kind in off:
                r = slice(i * 3 * Dh + off[kind], i * 3 * Dh + off[kind] + Dh)
                masks[p + "attention.query_key_value.weight"][r, :] = True
                masks[p + "attention.query_key_value.bias"][r] = True
            elif kind == "o":
                masks[p + "attention.dense.weight"][:, i * Dh:(i + 1) * Dh] = True
                masks[p + "attention.dense.bias"][:] = True
            elif kind == "in":
                masks[p + "mlp.dense_h_to_4h.weight"][lo:hi, :] = True
                masks[p + "mlp.dense_h_to_4h.bias"][lo:hi] = True
            elif kind == "out":
                masks[p + "mlp.dense_4h_to_h.weight"][:, lo:hi] = True
                masks[p + "mlp.dense_4h_to_h.bias"][:] = True
        elif gpt2:
            off = {"q": 0, "k": D, "v": 2 * D}
            if kind in off:
                masks[p + "attn.c_attn.weight"][:, off[kind] + i * Dh: off[kind] + (i + 1) * Dh] = True
                masks[p + "attn.c_attn.bias"][off[kind] + i * Dh: off[kind] + (i + 1) * Dh] = True
            elif kind == "o":
                masks[p + "attn.c_proj.weight"][i * Dh:(i + 1) * Dh, :] = True
                masks[p + "attn.c_proj.bias"][:] = True
            elif kind == "in":
                masks[p + "mlp.c_fc.weight"][:, lo:hi] = True
                masks[p + "mlp.c_fc.bias"][lo:hi] = True
            elif kind == "out":
                masks[p + "mlp.c_proj.weight"][lo:hi, :] = True
                masks[p + "mlp.c_proj.bias"][:] = True
        else:
            proj = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj"}
            if kind in proj:
                masks[p + proj[kind] + ".weight"][i * Dh:(i + 1) * Dh, :] = True
                if p + proj[kind] + ".bias" in masks:
                    masks[p + proj[kind] + ".bias"][i * Dh:(i + 1) * Dh] = True
            elif kind == "o":
                masks[p + "self_attn.o_proj.weight"][:, i * Dh:(i + 1) * Dh] = True
            elif kind == "in":
                masks[p + "mlp.gate_proj.weight"][lo:hi, :] = True
                masks[p + "mlp.up_proj.weight"][lo:hi, :] = True
            elif kind == "out":
                masks[p + "mlp.down_proj.weight"][:, lo:hi] = True
    return masks


def check_case(d):
    case = json.load(open(os.path.join(d, "case.json")))
    base = AutoModelForCausalLM.from_pretrained(case["base"], dtype=torch.float32).eval()
    init = {n: p.detach().clone() for n, p in base.named_parameters()}
    masks = part_masks(base, case["parts"], case["mlp_heads"])
    params = dict(base.named_parameters())
    if case["optimizer"] == "sgd":
        opt = torch.optim.SGD(params.values(), lr=case["lr"], momentum=case["momentum"],
                              weight_decay=case["weight_decay"])
    else:
        opt = torch.optim.AdamW(params.values(), lr=case["lr"], weight_decay=case["weight_decay"])
    tokens = torch.tensor(case["tokens"])
    pos = torch.tensor(case["pos"])
    answer = torch.tensor(case["answer"])
    for step in range(case["steps"]):
        opt.zero_grad()
        logits = base(tokens).logits
        loss = torch.nn.functional.cross_entropy(logits[torch.arange(len(pos)), pos], answer)
        if abs(loss.item() - case["losses"][step]) > 1e-5 * max(1.0, abs(loss.item())):
            bad.append(f"{d}: step {step + 1} loss {case['losses'][step]:.8g} != transformers' {loss.item():.8g}")
        loss.backward()
        old = {n: p.detach().clone() for n, p in params.items()}
        old_state = {n: {k: v.clone() for k, v in opt.state[p].items() if torch.is_tensor(v) and v.shape == p.shape}
                     for n, p in params.items()}
        for n, p in params.items():
            p.grad = torch.where(masks[n], p.grad, torch.zeros_like(p.grad))
        opt.step()
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(torch.where(masks[n], p, old[n]))
                for k, v in opt.state[p].items():
                    if torch.is_tensor(v) and v.shape == p.shape:
                        prev = old_state[n].get(k, torch.zeros_like(v))
                        v.copy_(torch.where(masks[n], v, prev))
    saved = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    sp = dict(saved.named_parameters())
    worst, moved = 0.0, 0.0
    for n, p in params.items():
        if n not in sp:
            bad.append(f"{d}: saved model lacks {n}")
            continue
        worst = max(worst, (p.detach() - sp[n]).abs().max().item())
        out = ~masks[n]
        if base.config.model_type == "gemma3_text" and "norm" in n:
            # edgewise holds a Gemma norm as its multiplier 1 + w in fp32 (what the model computes)
            # and saves (1 + w) - 1: w comes back within one fp32 ulp of the multiplier (<= 2.4e-7
            # for multipliers below 4), not bit for bit. Training never touches norms.
            if (sp[n][out] - init[n][out]).abs().max().item() > 2.4e-7:
                bad.append(f"{d}: {n} changed outside the circuit")
        elif not torch.equal(sp[n][out], init[n][out]):
            bad.append(f"{d}: {n} changed outside the circuit")
        if masks[n].any():
            moved = max(moved, (sp[n] - init[n]).abs()[masks[n]].max().item())
    if worst > 1e-5:
        bad.append(f"{d}: weights differ from the transformers + torch.optim run by {worst:.3g} (> 1e-5)")
    if moved < 1e-3:
        bad.append(f"{d}: the circuit barely moved ({moved:.3g}); the comparison would be vacuous")
    ours = load_file(os.path.join(d, "edgewise_logits.safetensors"))["logits"]
    with torch.no_grad():
        theirs = saved(tokens).logits
    ld = (ours - theirs).abs().max().item()
    if ld > 1e-4:
        bad.append(f"{d}: transformers' logits of the saved model differ from edgewise's by {ld:.3g} (> 1e-4)")
    print(f"tune_check: {os.path.basename(d)}: weights max diff {worst:.2e} (moved up to {moved:.2e}), logits {ld:.2e}")


def check_default(d):
    texts = json.load(open(os.path.join(d, "texts.json")))
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    ours = load_file(os.path.join(d, "edgewise_logits.safetensors"))
    for i, (text, ids) in enumerate(zip(texts["texts"], texts["ids"])):
        hf_ids = tok(text, add_special_tokens=False)["input_ids"]
        if hf_ids != ids:
            bad.append(f"{d}: AutoTokenizer ids of {text!r} {hf_ids} != edgewise's {ids}")
        with torch.no_grad():
            theirs = model(torch.tensor([ids])).logits[0]
        diff = (ours[f"logits.{i}"] - theirs).abs().max().item()
        if diff > 1e-3:
            bad.append(f"{d}: logits of {text!r} differ by {diff:.3g} (> 1e-3)")
        print(f"tune_check: default: {text!r}: ids equal, logits max diff {diff:.2e}")


cases = sorted(e for e in os.listdir(root) if os.path.isfile(os.path.join(root, e, "case.json")))
if len(cases) < 4:
    bad.append(f"{root}: expected 4 reference cases, found {cases}")
for c in cases:
    check_case(os.path.join(root, c))
if os.path.isfile(os.path.join(root, "default", "texts.json")):
    check_default(os.path.join(root, "default"))
else:
    print("tune_check: default model case absent (default model not installed): skipped")
if bad:
    print("tune_check FAILED:\n  " + "\n  ".join(bad))
    sys.exit(1)
print("tune_check: all cases match")
