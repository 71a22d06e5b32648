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
                         mse         F.mse_loss(patched, clean, reduction="none").mean(-1)
                       and the gradients of the batch means w.r.t. the patched logits.
  tokens.json          {"gpt2": {text: ids}, "smollm": {text: ids} or absent}: HF `tokenizers`
                       encodings of probe strings: every word list literal in src/tasks/tasks.cpp
                       (with a leading space), digits, two-digit numbers and year pieces.
                       "sva": {tokenizer: {...}}: the subject-verb agreement task decided here from
                       the word lists and templates parsed out of tasks.cpp, with HF `tokenizers`:
                         nouns / people  kept (singular, plural) pairs: equal token counts
                         verbs           kept answer pairs: both forms single tokens
                         pairs           [clean, corrupted] prompts: every template x every kept
                                         subject pair x both numbers (distractor, preposition and
                                         clause verb cycled deterministically)
                         ids             {text: ids} of every prompt and answer above
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

    def mse(x):
        return F.mse_loss(x, c, reduction="none").mean(-1)

    res = {}
    for name, fn in [("logit_diff", ld), ("prob_diff", pd), ("kl", kl), ("mse", mse)]:
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


def tasks_src():
    return (HERE.parent.parent / "src" / "tasks" / "tasks.cpp").read_text(encoding="utf-8")


def cpp_list(src, name, pairs):
    """The literal `const std::vector<...> <name> = {...};` of tasks.cpp: strings or (a, b) pairs."""
    kind = "WordPair" if pairs else "std::string"
    m = re.search(r"const std::vector<%s> %s = \{(.*?)\};" % (re.escape(kind), name), src, re.S)
    if not m:
        sys.exit(f"tasks_golden: {name} not found in src/tasks/tasks.cpp")
    body = re.sub(r"//[^\n]*", "", m.group(1))
    if pairs:
        return re.findall(r'\{"([^"]*)", "([^"]*)"\}', body)
    return re.findall(r'"([^"]*)"', body)


def probes():
    src = tasks_src()
    words = set()
    for m in re.finditer(r"const std::vector<std::string> k(\w+) = \{(.*?)\};", src, re.S):
        if "Templates" in m.group(1):
            continue
        words.update(re.findall(r'"([^"]*)"', m.group(2)))
    for name in ["kSvaPeople", "kSvaThings", "kSvaVerbs", "kSvaClauseVerbs"]:
        for a, b in cpp_list(src, name, True):
            words.update([a, b])
    out = sorted(" " + w for w in words)
    out += [" he", " she", "1732", " 1732", " 17", "17", " 11", " 1701"]
    out += [str(d) for d in range(10)] + ["%02d" % v for v in range(100)]
    return out


def sva(encode):
    """The sva task's vocabulary decisions and prompts for one tokenizer (encode: text -> ids)."""
    src = tasks_src()
    people, things = cpp_list(src, "kSvaPeople", True), cpp_list(src, "kSvaThings", True)
    verbs, cverbs = cpp_list(src, "kSvaVerbs", True), cpp_list(src, "kSvaClauseVerbs", True)
    preps, templates = cpp_list(src, "kSvaPreps", False), cpp_list(src, "kSvaTemplates", False)
    assert len(templates) == 3 and len(people) >= 30 and len(verbs) >= 3, (templates, people, verbs)

    def aligned(pairs):
        return [(a, b) for a, b in pairs if len(encode(" " + a)) == len(encode(" " + b))]

    kept_people = aligned(people)
    nouns = kept_people + aligned(things)
    kept_verbs = [(a, b) for a, b in verbs if len(encode(" " + a)) == 1 and len(encode(" " + b)) == 1]
    pairs = []
    for t, tpl in enumerate(templates):
        for k, subj in enumerate(nouns):
            pool = kept_people if "[V]" in tpl else nouns
            d = pool[(k + 1 + t) % len(pool)]
            if d == subj:
                d = pool[(k + 2 + t) % len(pool)]
            prep, cv = preps[k % len(preps)], cverbs[k % len(cverbs)]
            for singular in (True, False):
                # the distractor has the other number; the clause verb agrees with the distractor
                fill = (tpl.replace("[D]", d[1] if singular else d[0])
                        .replace("[V]", cv[1] if singular else cv[0]).replace("[PREP]", prep))
                clean = fill.replace("[S]", subj[0] if singular else subj[1])
                corrupted = fill.replace("[S]", subj[1] if singular else subj[0])
                pairs.append([clean, corrupted])
    texts = {t for p in pairs for t in p} | {" " + w for v in kept_verbs for w in v}
    ids = {t: encode(t) for t in sorted(texts)}
    bad = [p for p in pairs if len(ids[p[0]]) != len(ids[p[1]])]
    if bad:
        print(f"warning: sva prompts with different token counts: {bad[:3]}", file=sys.stderr)
    return {"nouns": nouns, "people": kept_people, "verbs": kept_verbs, "pairs": pairs, "ids": ids}


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
    toks["sva"] = {"gpt2": sva(lambda t: gpt2.encode(t).ids)}
    gguf = tg.default_model_path()
    if gguf.exists():
        _, smol = tg.smollm_tokenizers(gguf, out)
        toks["smollm"] = {t: smol.encode(t, add_special_tokens=False).ids for t in texts}
        toks["smollm_gguf"] = str(gguf)
        toks["sva"]["smollm"] = sva(lambda t: smol.encode(t, add_special_tokens=False).ids)
    (out / "tokens.json").write_text(json.dumps(toks, indent=0))
    names = sorted(k for k in toks if "gguf" not in k and k != "sva")
    sva_note = ", ".join(f"{k} {len(v['nouns'])} noun / {len(v['verbs'])} verb pairs" for k, v in toks["sva"].items())
    print(f"wrote {out}: {len(texts)} probe strings, tokenizers {names}; sva: {sva_note}")


if __name__ == "__main__":
    main()
