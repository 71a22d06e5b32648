#!/usr/bin/env bash
# Every method of the command line on Gemma-3-270M (issue 26: "every method completes on
# Gemma-3-270M (small n) from the CLI"), IOI with few examples, each timed; then evaluate, draw,
# view, prune and tune on the results. Writes into ${OUT:-/tmp/gemma_methods} and prints one row per
# command: name, exit status, seconds, and the circuit's line from the log.
#   bash bench/gemma_methods.sh            (needs scripts/setup.sh's Gemma; ~15-25 min on 2 cores)
set -uo pipefail
cd "$(dirname "$0")/.."
EW=${EW:-build/edgewise}
OUT=${OUT:-/tmp/gemma_methods}
M=gemma-3-270m
N=${N:-8}
mkdir -p "$OUT"
row() {  # name, then the command
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local dt=$(echo "$(date +%s.%N) - $t0" | bc)
  printf '| %s | %d | %.1f | %s |\n' "$name" "$rc" "$dt" "$(grep -E 'normalised faithfulness|error|saved|heads kept|nodes' "$OUT/$name.log" | tail -1 | tr '|' '/' | cut -c1-110)"
}
echo "| command | exit | seconds | result |"
echo "|---|---:|---:|---|"
for m in eap eap-ig-inputs eap-ig-activations clean-corrupted mask-gradient mask-gradient-ig; do
  row "$m" "$EW" discover $M -t ioi -n $N --batch-size $N --method $m --edges 200 -o "$OUT/$m.json"
done
row exact "$EW" discover $M -t ioi -n 4 --batch-size 4 --method exact --exact-candidates "$OUT/eap.json" -o "$OUT/exact.json"
row acdc "$EW" discover $M -t ioi -n 4 --batch-size 4 --method acdc --tau 0.3 -o "$OUT/acdc.json"
row edge-pruning "$EW" discover $M -t ioi -n $N --batch-size 4 --method edge-pruning --steps 20 --warmup-steps 5 --target 0.95 -o "$OUT/ep.json"
row hap "$EW" discover $M -t ioi -n $N --batch-size 4 --method hap --steps 20 --warmup-steps 5 --target 0.95 -o "$OUT/hap.json"
row path-patching "$EW" discover $M -t ioi -n $N --batch-size $N --method path-patching -o "$OUT/pp.json"
row flap "$EW" discover $M -t ioi -n $N --batch-size $N --method flap -o "$OUT/flap.json"
row app "$EW" discover $M -t ioi -n 4 --batch-size 4 --method app -o "$OUT/app.json"
row evaluate "$EW" evaluate $M --circuit "$OUT/eap-ig-inputs.json" -t ioi -n $N
row draw "$EW" draw "$OUT/eap-ig-inputs.json" -o "$OUT/eap-ig-inputs.svg"
row view "$EW" view "$OUT/eap-ig-inputs.json" "$OUT/acdc.json" -o "$OUT/view.html"
row prune "$EW" prune $M -t ioi -n $N -o "$OUT/prune.json"
row tune "$EW" tune $M -t sva -n 32 --rounds 1 --steps-per-round 2 --batch-size 8 --discovery-examples 8 -o "$OUT/tuned"
row tuned-info "$EW" info "$OUT/tuned"
