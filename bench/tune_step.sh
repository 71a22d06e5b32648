#!/usr/bin/env bash
# Circuit-tuning vs full fine-tuning on the default model: seconds per training step and the
# process's peak memory (GNU time's maximum resident set), one run of each with the same data
# and steps (docs/BENCHMARKS.md, "Circuit-tuning").
#
#   bash bench/tune_step.sh OUT_DIR [STEPS] [THREADS]
#
# The step time is the report's seconds / step (training only; discovery rounds included for
# circuit-tuning, as they are part of its cost); the model is measured before and after too,
# which the peak memory includes.
set -euo pipefail
EW=${EW:-build/edgewise}
OUT=${1:?usage: tune_step.sh OUT_DIR [STEPS] [THREADS]}
STEPS=${2:-10}
THREADS=${3:-2}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=passive
for mode in circuit full; do
  extra=()
  [ "$mode" = full ] && extra=(--full)
  /usr/bin/time -v "$EW" tune --task sva -n 160 --nodes 30 --rounds 1 --steps-per-round "$STEPS" --batch-size 16 \
    --threads "$THREADS" "${extra[@]}" -o "$OUT/$mode" --report "$OUT/$mode.json" > "$OUT/$mode.out" 2> "$OUT/$mode.err"
  python3 - "$OUT/$mode.json" "$OUT/$mode.err" "$mode" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
run = r.get("circuit_tuning") or r.get("full_fine_tuning")
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(sys.argv[2]).read()).group(1))
print(f"{sys.argv[3]:8s} s/step {run['seconds_per_step']:.3f}  updated {100 * run['fraction_updated']:.1f}%  peak RSS {rss / 2**20:.2f} GiB")
PY
done
