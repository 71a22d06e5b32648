#!/usr/bin/env bash
# The cost of distribution on one machine (docs/SCALING.md, docs/BENCHMARKS.md): the same work
# on 1 rank x 2 threads and on 2 ranks x 1 thread (`--nproc 2`, Gloo over loopback), the same
# total cores, on the default model. Runs alternate (A B A B ...) so that drift hits both.
#
#   bash bench/dist_bench.sh OUT_DIR [REPEATS]
#
# EAP: the printed attribution seconds (64 IOI prompts, batches of 16: two per rank).
# Edge Pruning: seconds per optimisation step (the report's training seconds / steps; 32 prompts,
#   a step's batch of 16 split 8 + 8 over the ranks).
# ACDC: the report's search seconds (group testing, 8 IOI prompts, tau 0.05; one reduction per
#   candidate batch).
# Each line also gives the collectives and bytes rank 0 sent (its stderr summary).
set -euo pipefail
EW=${EW:-build/edgewise}
OUT=${1:?usage: dist_bench.sh OUT_DIR [REPEATS]}
REP=${2:-3}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=passive

one() {  # one NAME RANKS ARGS...: runs, prints the figure of interest
  local name=$1 ranks=$2; shift 2
  local launch=(--threads 2)
  [ "$ranks" -gt 1 ] && launch=(--threads 1)
  local pre=()
  [ "$ranks" -gt 1 ] && pre=(--nproc "$ranks")
  "$EW" "${pre[@]}" "$@" "${launch[@]}" -o "$OUT/$name.json" > "$OUT/$name.out" 2> "$OUT/$name.err"
  python3 - "$OUT/$name.json" "$OUT/$name.err" "$OUT/$name.out" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))["edgewise"]
err = open(sys.argv[2]).read()
out = open(sys.argv[3]).read()
m = re.search(r"distributed: (\d+) ranks, (\d+) collectives, ([\d.]+ \S+)", err)
comm = f"  [{m.group(2)} collectives, {m.group(3)}]" if m else ""
if "edge_pruning" in r:
    ep = r["edge_pruning"]
    print(f"{ep['seconds'] / ep['steps']:.3f} s/step{comm}")
elif "acdc" in r:
    print(f"{r['acdc']['seconds']:.2f} s search{comm}")
else:
    print(re.search(r"time\s+([\d.]+ s attribution)", out).group(1) + comm)
PY
}

for i in $(seq 1 "$REP"); do
  for ranks in 1 2; do
    echo "eap   ranks=$ranks run=$i: $(one eap_r${ranks}_$i $ranks discover --task ioi -n 64 --batch-size 16 --method eap)"
  done
done
for i in $(seq 1 "$REP"); do
  for ranks in 1 2; do
    echo "ep    ranks=$ranks run=$i: $(one ep_r${ranks}_$i $ranks discover --task ioi -n 40 --batch-size 16 \
      --method edge-pruning --steps 6 --target 0.5)"
  done
done
for i in $(seq 1 "$REP"); do
  for ranks in 1 2; do
    echo "acdc  ranks=$ranks run=$i: $(one acdc_r${ranks}_$i $ranks discover --task ioi -n 8 --method acdc \
      --acdc-mode group --tau 0.05)"
  done
done
