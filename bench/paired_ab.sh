#!/usr/bin/env bash
# Two builds of the benchmarks side by side, interleaved (A B, then B A, ...), so that the drift
# of a shared machine falls on both alike: what a refactor that must not cost speed is measured
# with (issue 22: the shared block primitives, "no slower than 3%").
#
#   bash bench/paired_ab.sh A_DIR B_DIR OUT_DIR [ROUNDS_PATCH] [ROUNDS_ATTR] [ROUNDS_ACDC]
#
# A_DIR / B_DIR hold bench_patch, bench_attribution and bench_acdc (e.g. copies of build/bench/
# at two commits). Runs: bench_patch on the default model (2 x 32 tokens, 2 pairs per section),
# bench_attribution eap / eap-ig-inputs on IOI (8 prompts), bench_acdc classic at tau 1e-4 on
# the random GPT-2 and Llama of tests/behaviour (16 IOI prompts). Each run's JSON goes to
# OUT_DIR; bench/paired_ab_summary.py prints B / A per timing, the median over rounds of the
# per-round ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?A_DIR}; B=${2:?B_DIR}; OUT=${3:?OUT_DIR}
RP=${4:-2}; RA=${5:-2}; RC=${6:-5}
MODELS=${EW_BEHAVIOUR_MODELS:-build/behaviour-models}
export OMP_WAIT_POLICY=passive
mkdir -p "$OUT"
[ -f "$MODELS/llama/config.json" ] || .venv/bin/python tests/behaviour/make_models.py "$MODELS"
pair() {  # pair ROUND NAME ARGS... : runs A and B, in an order that alternates with the round
  local r=$1 name=$2; shift 2
  local order="A B"; [ $((r % 2)) -eq 1 ] && order="B A"
  for side in $order; do
    local dir=$A; [ "$side" = B ] && dir=$B
    local bin=$1
    "$dir/$bin" "${@:2}" 2>/dev/null | tail -1 > "$OUT/$name.$side.$r.json"
    echo "$(date +%T) $name round $r $side done" >&2
  done
}
for r in $(seq 1 "$RC"); do
  for m in gpt2 llama; do pair "$r" "acdc_$m" bench_acdc "$MODELS/$m" ioi 16 0.0001 2 classic; done
done
for r in $(seq 1 "$RP"); do pair "$r" patch bench_patch "" 2 32 2 2; done
for r in $(seq 1 "$RA"); do BENCH_SECTIONS=eap,eap-ig-inputs pair "$r" attribution bench_attribution "" ioi 8 8 2 2; done
.venv/bin/python bench/paired_ab_summary.py "$OUT"
