#!/usr/bin/env python3
"""Reference values for tests/test_tasks.cpp.

Writes into --out:
  metrics.safetensors  fixed random logits [N, V] (seed 1234) for a "patched" and a "clean" run,
                       padded answer sets (ids + masks), and the metrics computed here with
                       torch.nn.functional in float64:
                         logit_diff  mean correct logit - mean incorrect logit (0 if none)
                         prob_diff   sum p(correct) - sum p(incorrect)
                         kl          F.kl_div(log_softmax(patched), log_softmax(clean),
                                     log_target=True, reduction="none").sum(-1) = KL(clean||patched)
                                     (the call ACDC and EAP-IG make)
                         accuracy    argmax in the correct set
                       and the gradients of the batch means w.r.t. the patched logits.
  tokens.json          {"gpt2": {text: ids}, "smollm": {text: ids} or absent}: HF `tokenizers`
                       encodings of probe strings: every word list literal in src/tasks/tasks.cpp
                       (with a leading space), digits, two-digit numbers and year pieces.
"""
import argparse
import json
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tokenizer_golden as tg  # noqa: E402  (GPT-2 and SmolLM2 reference tokenizers)


def metrics(out):
    g = torch.Generator().manual_seed(1234)
    N, V, A = 7, 40, 3
    patched = torch.randn(N, V, generator=g) * 3
    clean = torch.randn(N, V, generator=g) * 3
    correct = torch.randint(0, V, (N, A), generator=g)
    incorrect = torch.randint(0, V, (N, A), generator=g)
    cmask = torch.ones(N, A)
    imask = torch.ones(N, A)
    cmask[1, 1:] = 0      # one correct answer
    imask[2, 2] = 0       # two incorrect answers
    imask[3, :] = 0       # no incorrect answer
    correct[4, 0] = patched[4].argmax()  # guaranteed hits for accuracy
    correct[5, 2] = patched[5].argmax()
    x = patched.double().requires_grad_(True)
    c = clean.double()

    def ld(x):
        lc = (x.gather(1, correct) * cmask).sum(1) / cmask.sum(1)
        li = (x.gather(1, incorrect) * imask).sum(1) / imask.sum(1).clamp_min(1)
        return lc - li

    def pd(x):
        p = F.softmax(x, -1)
        return (p.gather(1, correct) * cmask).sum(1) - (p.gather(1, incorrect) * imask).sum(1)

    def kl(x):
        return F.kl_div(F.log_softmax(x, -1), F.log_softmax(c, -1), log_target=True, reduction="none").sum(-1)

    res = {}
    for name, fn in [("logit_diff", ld), ("prob_diff", pd), ("kl", kl)]:
        v = fn(x)
        (gx,) = torch.autograd.grad(v.mean(), x)
        res[name] = v.detach()
        res["grad_" + name] = gx
    top = patched.argmax(-1, keepdim=True)
    res["accuracy"] = ((correct == top) & (cmask > 0)).any(1).double()
    tensors = {"patched": patched, "clean": clean, "correct": correct, "incorrect": incorrect,
               "correct_mask": cmask, "incorrect_mask": imask}
    tensors.update(res)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "metrics.safetensors"))


def probes():
    src = (HERE.parent.parent / "src" / "tasks" / "tasks.cpp").read_text(encoding="utf-8")
    words = set()
    for m in re.finditer(r"const std::vector<std::string> k(\w+) = \{(.*?)\};", src, re.S):
        if "Templates" in m.group(1):
            continue
        words.update(re.findall(r'"([^"]*)"', m.group(2)))
    out = sorted(" " + w for w in words)
    out += [" he", " she", "1732", " 1732", " 17", "17", " 11", " 1701"]
    out += [str(d) for d in range(10)] + ["%02d" % v for v in range(100)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics(out)
    texts = probes()
    gpt2 = tg.gpt2_tokenizer()
    toks = {"gpt2": {t: gpt2.encode(t).ids for t in texts}}
    gguf = tg.default_model_path()
    if gguf.exists():
        _, smol = tg.smollm_tokenizers(gguf, out)
        toks["smollm"] = {t: smol.encode(t, add_special_tokens=False).ids for t in texts}
        toks["smollm_gguf"] = str(gguf)
    (out / "tokens.json").write_text(json.dumps(toks, indent=0))
    print(f"wrote {out}: {len(texts)} probe strings, tokenizers {sorted(k for k in toks if 'gguf' not in k)}")


if __name__ == "__main__":
    main()
