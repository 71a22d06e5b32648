#!/usr/bin/env bash
# HAP (EAP prefilter, then Edge Pruning within its survivors) against plain Edge Pruning on IOI
# with the default model (docs/EDGE_PRUNING.md, "HAP"). Both train on the first 100 of 125 seed-0
# prompts with the same schedule; HAP also runs with half the steps, to see whether it gets to
# Edge Pruning's faithfulness sooner (the paper's claim: ~46% faster at equal faithfulness).
# Every circuit is measured on the same held-out prompts (seed 1, HELD examples; no method saw
# them): KL(full || circuit), logit difference, normalised faithfulness.
#
#   bash bench/hap_vs_ep.sh OUT_DIR
#
# Settings: TARGET (0.99), STEPS (200), KEEP (HAP's --keep-fraction, 0.1), HELD (50).
set -euo pipefail
EW=${EW:-build/edgewise}
OUT=${1:?usage: hap_vs_ep.sh OUT_DIR}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=passive
TARGET=${TARGET:-0.99}
STEPS=${STEPS:-200}
KEEP=${KEEP:-0.1}
HELD=${HELD:-50}
half=$((STEPS / 2))

edges_in() { python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print(sum(1 for e in c['edges'].values() if e['in_graph']))" "$1"; }
train() {  # NAME STEPS EXTRA... (a run whose circuit exists is kept: rerun after deleting it)
  local name=$1 steps=$2; shift 2
  [ -f "$OUT/$name.json" ] && return 0
  local t0; t0=$(date +%s.%N)
  "$EW" discover --task ioi -n 125 --target "$TARGET" --steps "$steps" --batch-size 8 --warmup-steps $((steps / 10)) \
    --target-warmup-steps $((steps * 7 / 10)) --init-log-alpha 3 -o "$OUT/$name.json" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  sed -i "/^$name /d" "$OUT/seconds.txt"
  echo "$name $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")" >> "$OUT/seconds.txt"
}
touch "$OUT/seconds.txt"
train ep "$STEPS" --method edge-pruning
train hap "$STEPS" --method hap --prefilter eap --keep-fraction "$KEEP"
train hap_half "$half" --method hap --prefilter eap --keep-fraction "$KEEP"

printf "%-10s %6s %9s %7s %10s %10s %9s\n" run steps seconds edges kl logit_diff faithful | tee "$OUT/compare.txt"
for r in ep hap hap_half; do
  c="$OUT/$r.json"
  kl=$("$EW" evaluate --task ioi -n "$HELD" --seed 1 --circuit "$c" --metric kl | awk '$1 == "circuit" && NF == 2 {print $2}')
  ld=$("$EW" evaluate --task ioi -n "$HELD" --seed 1 --circuit "$c" --metric logit-diff)
  steps=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['edgewise']['edge_pruning']['steps'])" "$c")
  printf "%-10s %6s %9s %7s %10s %10s %9s\n" "$r" "$steps" "$(awk -v r="$r" '$1 == r {print $2}' "$OUT/seconds.txt")" \
    "$(edges_in "$c")" "$kl" "$(echo "$ld" | awk '$1 == "circuit" && NF == 2 {print $2}')" \
    "$(echo "$ld" | awk '/faithfulness/ {print $NF}')" | tee -a "$OUT/compare.txt"
done
