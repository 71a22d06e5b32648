#!/usr/bin/env bash
# Where FLAP ranks the heads that plain path patching finds, per task and FLAP kind: the bound
# that no cliff rule can beat. APP can only select heads FLAP keeps, so at a sparsity that keeps
# k heads its TPR against path patching is at most |PP ∩ top-k| / |PP|. This prints, for each
# task of an app_table.sh run, every path-patching head's FLAP rank (1 = kept first) and the
# fewest heads FLAP must keep for that bound to reach 0.8 and 1.0, next to what the first-cliff
# rule kept (docs/BENCHMARKS.md, "Path patching vs APP").
#
#   bash bench/app_ranks.sh OUT_DIR      # OUT_DIR of bench/app_table.sh (reads */pp.report.json)
#
# FLAP's scores come from a one-level `edgewise prune --flap hybrid` on the same task, examples
# and seed (N, SEED, THREADS from the environment as in app_table.sh); its report holds both
# kinds' per-head scores. Heads tie-break by lower index, as flap_select does.
set -euo pipefail
EW=${EW:-build/edgewise}
OUT=${1:?usage: app_ranks.sh OUT_DIR}
N=${N:-6}
SEED=${SEED:-0}
TASKS=${TASKS:-ioi,greater-than,induction,gendered-pronouns,docstring}
THREADS=${THREADS:-1}
export OMP_WAIT_POLICY=passive
for t in ${TASKS//,/ }; do
  d="$OUT/$t"
  [ -f "$d/pp.report.json" ] || { echo "app_ranks: $d/pp.report.json missing (run bench/app_table.sh first)" >&2; continue; }
  [ -f "$d/flap-scores.report.json" ] || "$EW" prune --task "$t" -n "$N" --seed "$SEED" --threads "$THREADS" \
      --flap hybrid --lowest 0.6 --highest 0.6 -o "$d/flap-scores.json" > /dev/null 2> "$d/flap-scores.err"
done
python3 - "$OUT" "$TASKS" <<'PY' | tee "$OUT/ranks.md"
import json, math, os, re, sys
out, tasks = sys.argv[1], sys.argv[2].split(",")

def order(scores):
    # best first; ties keep the lower (layer, head) index
    key = lambda n: tuple(int(x) for x in re.findall(r"\d+", n))
    return sorted(scores, key=lambda n: (-scores[n], key(n)))

def union_needed(orders, pp, want):
    # hybrid keeps the union of each kind's top-k at the same sparsity
    n = len(orders[0])
    for k in range(1, n + 1):
        kept = set().union(*(set(o[:k]) for o in orders))
        if len(kept & pp) >= want:
            return k, len(kept)
    return n, n

print("| task | PP heads | kind | ranks of the PP heads | heads for TPR bound 0.8 | heads for 1.0 | heads kept at first cliff |")
print("|---|---|---|---|---|---|---|")
for t in tasks:
    pr, fr = os.path.join(out, t, "pp.report.json"), os.path.join(out, t, "flap-scores.report.json")
    if not (os.path.exists(pr) and os.path.exists(fr)):
        continue
    pp = set(json.load(open(pr))["path_patching"]["heads"])
    curves = json.load(open(fr))["flap"]["curves"]
    want8, want10 = math.ceil(0.8 * len(pp) - 1e-9), len(pp)
    orders = {}
    for kind in ("vanilla", "contrastive"):
        o = order(curves[kind]["head_scores"])
        orders[kind] = o
        ranks = sorted(o.index(h) + 1 for h in pp)
        cliff = ""
        a = os.path.join(out, t, f"app.{kind}.report.json")
        if os.path.exists(a):
            cliff = json.load(open(a))["flap"]["n_heads"]
        print(f"| {t} | {len(pp)} | {kind} | {', '.join(map(str, ranks))} | {ranks[want8 - 1]} | {ranks[-1]} | {cliff} |")
    k8, n8 = union_needed(list(orders.values()), pp, want8)
    k10, n10 = union_needed(list(orders.values()), pp, want10)
    cliff = ""
    a = os.path.join(out, t, "app.hybrid.report.json")
    if os.path.exists(a):
        cliff = json.load(open(a))["flap"]["n_heads"]
    print(f"| {t} | {len(pp)} | hybrid | (top-k of each kind) | {n8} | {n10} | {cliff} |")
PY
