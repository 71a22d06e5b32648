#!/usr/bin/env python3
"""Ground-truth recovery on the Tracr tasks (issue 25): every method of `edgewise discover` on
tracr-reverse and tracr-xproportion, scored against the compiled models' known circuits with
`edgewise roc` (edge- and node-level AUC, and the TPR / FPR of the circuit a method picks), with
the time of each run. Prints the markdown tables of docs/TRACR.md and docs/BENCHMARKS.md.

A harness only: every number comes from the command line (`discover`, `roc`); nothing is
computed here but the table layout.

  python3 bench/tracr_auc.py [--edgewise build/edgewise] [--out /tmp/tracr_auc]
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TASKS = {  # program -> (task, all examples, truth edges)
    "reverse": ("tracr-reverse", 324),
    "xproportion": ("tracr-xproportion", 1024),
}

# (row label, method, extra options). Scored methods rank every edge by |score|; the circuit
# whose TPR / FPR is shown is the top-n with n = the truth's size (--edges). Searches are
# ranked over their sweep: each edge's score is the largest tau / target that keeps it.
TAUS = "1e-6,1e-5,1e-4,1e-3,1e-2,1e-1"
TARGETS = "0.6,0.7,0.78,0.87,0.9"
# Edge Pruning at the Tracr models' scale: their losses are at most ~0.3 (KL or MSE), against
# nats on a language model, so the reference's own Tracr scripts lower the learning rates (log
# alphas 0.03, lambdas 0.001); log alphas start at 3 rather than 10, where the hard-concrete gate
# is not yet saturated and the loss's gradient reaches every mask from the first step (from 10,
# reverse's length computation is dropped before its gradient arrives: docs/TRACR.md).
EP_TRACR = ["--steps", "3000", "--warmup-steps", "300", "--target-warmup-steps", "2500", "--lr", "0.03",
            "--lambda-lr", "0.001", "--init-log-alpha", "3", "--batch-size", "16", "--validation-fraction", "0"]
RUNS = [
    ("eap (mse)", "eap", ["-m", "mse"]),
    ("eap (logit-diff)", "eap", ["-m", "logit-diff"]),
    ("eap-ig-inputs (mse)", "eap-ig-inputs", ["-m", "mse"]),
    ("eap-ig-inputs (logit-diff)", "eap-ig-inputs", ["-m", "logit-diff"]),
    ("eap-ig-activations (mse)", "eap-ig-activations", ["-m", "mse"]),
    ("clean-corrupted (mse, resample)", "clean-corrupted", ["-m", "mse", "-a", "resample"]),
    ("mask-gradient-ig (mse)", "mask-gradient-ig", ["-m", "mse"]),
    ("exact (mse)", "exact", ["-m", "mse"]),
    ("acdc, tau sweep (mse)", "acdc", ["-m", "mse", "--tau", TAUS]),
    ("edge-pruning, target sweep (mse)", "edge-pruning", ["-m", "mse", "--target", TARGETS] + EP_TRACR),
    # A head-set method: it keeps heads (every MLP stays), so its circuit is judged by its nodes.
    # With 1 head per layer the default 2-SD outlier rule selects nothing; 0 SD keeps the heads
    # whose effect exceeds the mean.
    ("path-patching (logit-diff, 0 SD, via MLPs)", "path-patching",
     ["-m", "logit-diff", "--importance-threshold", "0", "--min-value-threshold", "0.001", "--paths", "via-mlps"]),
]


def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"tracr_auc.py: {' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return p.stdout, dt


def roc(ew, circuit, truth, merge=False):
    out, _ = run([ew, "roc", "-c", circuit, "-t", truth] + (["--merge-qkv"] if merge else []))
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(edge|node)(?: \(q/k/v merged\))?\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            rows[m.group(1)] = dict(auc=float(m.group(2)), chosen=int(m.group(5)), tpr=float(m.group(6)),
                                    fpr=float(m.group(7)))
    if set(rows) != {"edge", "node"}:
        sys.exit(f"tracr_auc.py: could not read the ROC table of {circuit}:\n{out}")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgewise", default=os.path.join(ROOT, "build", "edgewise"))
    ap.add_argument("--out", default="/tmp/tracr_auc")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    print(f"machine: {platform.node()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}\n")
    results = {}
    for program, (task, n) in TASKS.items():
        model = os.path.join(ROOT, "tests", "data", "tracr", program)
        truth = os.path.join(model, "truth.json")
        n_truth = sum(1 for _ in re.finditer(r'"in_graph": true', open(truth).read().split('"edges"')[1]))
        for label, method, extra in RUNS:
            out = os.path.join(a.out, f"{program}.{method}.{'-'.join(extra[1:2])}.json")
            cmd = [a.edgewise, "discover", model, "-t", task, "-n", str(n), "--method", method, "-o", out] + extra
            sweep = "--tau" in extra or "--target" in extra
            if not sweep and method != "path-patching":
                cmd += ["--edges", str(n_truth)]
            _, dt = run(cmd)
            scored = re.sub(r"\.json$", ".sweep.json", out) if sweep else out
            r = roc(a.edgewise, scored, truth)
            m = roc(a.edgewise, scored, truth, merge=True)
            if sweep:  # the sweep values whose circuit is exactly the truth
                stem = out[:-len(".json")]
                exact = []
                for f in sorted(os.listdir(a.out)):
                    p = os.path.join(a.out, f)
                    if f.startswith(os.path.basename(stem) + ".") and f.endswith(".json") and not f.endswith(
                            (".sweep.json", ".report.json")):
                        c = roc(a.edgewise, p, truth)["edge"]
                        if c["tpr"] == 1.0 and c["fpr"] == 0.0:
                            exact.append(f[len(os.path.basename(stem)) + 1:-len(".json")])
                r["exact"] = ", ".join(exact) or "none"
            results[(program, label)] = (r, m, dt, n)
            print(f"{program:12s} {label:34s} edge AUC {r['edge']['auc']:.4f} node AUC {r['node']['auc']:.4f} "
                  f"({dt:.2f} s)", flush=True)

    print("\n| method | reverse: edge AUC | node AUC | heads AUC (q/k/v merged) | circuit (TPR / FPR at the truth's size; sweeps: the values giving the truth) |"
          " xproportion: edge AUC | node AUC | heads AUC | circuit |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---|")
    for label, _, _ in RUNS:
        cells = []
        for program in TASKS:
            r, m, _, _ = results[(program, label)]
            chosen = (f"= truth at {r['exact']}" if "exact" in r else
                      f"{r['edge']['tpr']:.2f} / {r['edge']['fpr']:.2f}")
            cells += [f"{r['edge']['auc']:.3f}", f"{r['node']['auc']:.3f}", f"{m['edge']['auc']:.3f}", chosen]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n| method | tracr-reverse (324 examples) s | tracr-xproportion (1024 examples) s |")
    print("|---|---:|---:|")
    for label, _, _ in RUNS:
        print(f"| {label} | " + " | ".join(f"{results[(p, label)][2]:.2f}" for p in TASKS) + " |")


if __name__ == "__main__":
    main()
