#!/usr/bin/env bash
# Path patching vs APP (vanilla, contrastive, hybrid FLAP) on the default model for the five
# standard tasks: heads, performance %, TPR against path patching, FLOP and wall-time ratios
# (docs/BENCHMARKS.md, "Path patching vs APP"). One plain path-patching run per task, then one APP
# run per pruning kind that reads it (--pp-circuit), so every ratio compares runs of the same
# settings on the same machine.
#
#   bash bench/app_table.sh OUT_DIR
#
# Runs checkpoint as they go (every 60 s, --checkpoint-every): re-running the same command resumes them.
# Settings come from the environment: N (examples, 6), TASKS, KINDS, THREADS (1), EXTRA (more
# discover options, e.g. "--importance-threshold 3"). The table is written to OUT_DIR/table.md.
set -euo pipefail
EW=${EW:-build/edgewise}
OUT=${1:?usage: app_table.sh OUT_DIR}
N=${N:-6}
TASKS=${TASKS:-ioi,greater-than,induction,gendered-pronouns,docstring}
KINDS=${KINDS:-vanilla,contrastive,hybrid}
THREADS=${THREADS:-1}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=passive
for t in ${TASKS//,/ }; do
  d="$OUT/$t"
  mkdir -p "$d"
  [ -f "$d/pp.report.json" ] || "$EW" discover --task "$t" -n "$N" --threads "$THREADS" --method path-patching --calc-flops \
      --checkpoint "$d/pp.ck" --resume $EXTRA -o "$d/pp.json" > "$d/pp.out" 2> "$d/pp.err"
  for k in ${KINDS//,/ }; do
    [ -f "$d/app.$k.report.json" ] || "$EW" discover --task "$t" -n "$N" --threads "$THREADS" --method app --pruning "$k" \
        --pp-circuit "$d/pp.json" --checkpoint "$d/app.$k.ck" --resume $EXTRA -o "$d/app.$k.json" > "$d/app.$k.out" 2> "$d/app.$k.err"
  done
done
python3 - "$OUT" "$TASKS" "$KINDS" <<'PY' | tee "$OUT/table.md"
import json, os, sys
out, tasks, kinds = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
print("| task | method | heads allowed | heads | performance % | TPR | GFLOPs | FLOP ratio | FLOP ratio incl. FLAP | seconds | time ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for t in tasks:
    p = os.path.join(out, t, "pp.report.json")
    if not os.path.exists(p):
        continue
    pp = json.load(open(p))["path_patching"]
    print(f"| {t} | path patching | all | {pp['n_heads']} | {pp['performance_percent']:.1f} | 1 | {pp['flops']/1e9:.0f} | 1 | 1 | {pp['seconds']:.0f} | 1 |")
    for k in kinds:
        a = os.path.join(out, t, f"app.{k}.report.json")
        if not os.path.exists(a):
            continue
        r = json.load(open(a))
        app, c, f = r["app"], r["comparison"], r["flap"]
        print(f"| {t} | APP {k} | {f['n_heads']} | {app['n_heads']} | {app['performance_percent']:.1f} | {c['tpr']:.3f} | "
              f"{app['flops']/1e9:.0f} | {c['flop_ratio']:.2f} | {c['flop_ratio_with_flap']:.2f} | {app['seconds']:.0f} | {c['time_ratio']:.2f} |")
PY
