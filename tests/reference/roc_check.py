"""edgewise's ROC/AUC (`edgewise roc`, src/eval/roc.cpp) against sklearn.metrics.roc_auc_score
on random scores and truths, ties included: circuit files of a 3-layer, 2-head graph with random
scores (rounded to one decimal, so many ties) and a random truth, at edge level (with and
without merged q/k/v readers) and node level (a node's importance: its best out-edge's), ranked
by |score| and by the signed score. The AUC lines of the command's CSV must equal sklearn's to
1e-9 (both are exact sums of a few hundred terms; the CSV prints 12 significant digits).

  .venv/bin/python tests/reference/roc_check.py --cli build/edgewise
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.metrics import roc_auc_score

L, H = 3, 2


def graph():
    sources = ["input"] + [n for l in range(L) for n in [f"a{l}.h{h}" for h in range(H)] + [f"m{l}"]]
    readers = [n for l in range(L) for n in [f"a{l}.h{h}<{x}>" for h in range(H) for x in "qkv"] + [f"m{l}"]] + ["logits"]

    def before(s, r):
        if s == "input" or r == "logits":
            return True
        ls, lr = int(s[1:].split(".")[0]), int(r[1:].split(".")[0].split("<")[0])
        return ls < lr if r.startswith("a") else (ls < lr or (ls == lr and s.startswith("a")))

    return sources, [(s, r) for s in sources for r in readers if before(s, r)]


def write(path, edges, scores, flags):
    c = {"cfg": {"n_layers": L, "n_heads": H, "d_model": 8, "parallel_attn_mlp": False}, "nodes": {},
         "edges": {f"{s}->{r}": {"score": float(v), "in_graph": bool(f)} for (s, r), v, f in zip(edges, scores, flags)}}
    with open(path, "w") as f:
        json.dump(c, f)


def auc_lines(csv):
    out = {}
    for line in csv.splitlines():
        if line.startswith("# "):
            parts = line[2:].split(" AUC ")
            out[parts[0]] = float(parts[1].split()[0])
    return out


def expected(edges, sources, scores, truth, absolute, merge):
    imp = np.abs(scores) if absolute else scores
    items = {}
    for (s, r), v, t in zip(edges, imp, truth):
        key = f"{s}->{r.split('<')[0]}" if merge else f"{s}->{r}"
        a, b = items.get(key, (-np.inf, 0))
        items[key] = (max(a, v), b | t)
    e = roc_auc_score([t for _, t in items.values()], [v for v, _ in items.values()])
    nodes = {}
    for (s, r), v, t in zip(edges, imp, truth):
        a, b = nodes.get(s, (-np.inf, 0))
        nodes[s] = (max(a, v), b | t)
    n = roc_auc_score([t for _, t in nodes.values()], [v for v, _ in nodes.values()])
    return e, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--trials", type=int, default=12)
    a = ap.parse_args()
    sources, edges = graph()
    rng = np.random.default_rng(0)
    worst, checked = 0.0, 0
    with tempfile.TemporaryDirectory() as d:
        for trial in range(a.trials):
            scores = np.round(rng.normal(size=len(edges)), 1)  # one decimal: many ties
            truth = (rng.random(len(edges)) < 0.2).astype(int)
            if trial % 3 == 0:  # truth correlated with |score|: AUCs far from 0.5
                truth = (np.abs(scores) + rng.normal(scale=0.5, size=len(edges)) > 1.2).astype(int)
            chosen = rng.random(len(edges)) < 0.3
            sp, tp = os.path.join(d, "s.json"), os.path.join(d, "t.json")
            write(sp, edges, scores, chosen)
            write(tp, edges, np.zeros(len(edges)), truth)
            for absolute in (True, False):
                for merge in (False, True):
                    csv = os.path.join(d, "roc.csv")
                    args = [a.cli, "roc", "-c", sp, "-t", tp, "--csv", csv]
                    if not absolute:
                        args.append("--signed")
                    if merge:
                        args.append("--merge-qkv")
                    r = subprocess.run(args, capture_output=True, text=True)
                    if r.returncode != 0:
                        raise SystemExit(f"roc_check: {' '.join(args)} failed: {r.stderr}")
                    with open(csv) as f:
                        got = auc_lines(f.read())
                    e, n = expected(edges, sources, scores, truth, absolute, merge)
                    ge = got["edge (q/k/v merged)" if merge else "edge"]
                    for x, y in ((ge, e), (got["node"], n)):
                        worst = max(worst, abs(x - y))
                        checked += 1
                        if abs(x - y) > 1e-9:
                            raise SystemExit(f"roc_check: trial {trial} absolute={absolute} merge={merge}: "
                                             f"edgewise {x} sklearn {y}")
    print(f"roc_check: {checked} AUCs equal sklearn's roc_auc_score (largest difference {worst:.2g})")


if __name__ == "__main__":
    sys.exit(main())
