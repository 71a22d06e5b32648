#!/usr/bin/env bash
# Records the outputs of a fixed set of runs, so that a refactor can show it kept behaviour:
# every discovery method (and tune, evaluate, prune) on a random GPT-2, a random grouped-query
# Llama and a random GPT-NeoX (parallel block; recorded when the binary knows gpt_neox), and
# eap / eap-ig-inputs / acdc on the default model with small n. Run it before the change into
# one folder and after it into another, then compare:
#
#   bash tests/behaviour/record.sh /tmp/before          # at the old commit
#   bash tests/behaviour/record.sh /tmp/after           # at the new one
#   .venv/bin/python tests/behaviour/compare.py /tmp/before /tmp/after
#
# The random models are made once into $EW_BEHAVIOUR_MODELS (default build/behaviour-models) and
# reused, so both records use the same weights. Set EW_BEHAVIOUR_SKIP_DEFAULT=1 to skip the
# default-model runs (a few minutes). Not a test: the compare prints every difference.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=${1:?usage: record.sh OUT_DIR}
EW=${EW:-$ROOT/build/edgewise}
PY=$ROOT/.venv/bin/python
MODELS=${EW_BEHAVIOUR_MODELS:-$ROOT/build/behaviour-models}
export OMP_WAIT_POLICY=passive
[ -f "$MODELS/neox/config.json" ] || "$PY" tests/behaviour/make_models.py "$MODELS"
mkdir -p "$OUT"

run() {  # run NAME ARGS... : stdout to OUT/NAME.out, stderr to OUT/NAME.err
  local name=$1; shift
  mkdir -p "$(dirname "$OUT/$name")"
  if ! "$EW" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; then
    echo "FAILED: $name ($EW $*)" >&2; tail -3 "$OUT/$name.err" >&2; return 1
  fi
  echo "ok  $name" >&2
}

models=(gpt2 llama)
# GPT-NeoX joined at d6c066d; a binary from before it cannot load the model: leave it out then.
"$EW" info "$MODELS/neox" >/dev/null 2>&1 && models+=(neox)
for m in "${models[@]}"; do
  M=$MODELS/$m
  D=$OUT/$m
  mkdir -p "$D"
  common=("$M" --task ioi -n 8 --seed 3 --threads 2)
  for method in eap eap-ig-inputs eap-ig-activations clean-corrupted mask-gradient mask-gradient-ig exact; do
    run "$m/$method" discover "${common[@]}" --method "$method" --edges 40 -o "$D/$method.json" --curve "$D/$method.curve.csv"
  done
  run "$m/eap-nodes" discover "${common[@]}" --method eap --nodes 5 -o "$D/eap-nodes.json"
  run "$m/eap-greedy-signed" discover "${common[@]}" --method eap-ig-inputs --greedy --signed --edges 30 --metric prob-diff -o "$D/eap-greedy-signed.json"
  run "$m/eap-head-mean" discover "${common[@]}" --method eap --head-level --ablation mean --edges 30 -o "$D/eap-head-mean.json"
  run "$m/acdc" discover "${common[@]}" --method acdc --tau 0.003,0.03 -o "$D/acdc.json" --curve "$D/acdc.curve.csv"
  run "$m/acdc-group" discover "${common[@]}" --method acdc --acdc-mode group --tau 0.01 -o "$D/acdc-group.json"
  run "$m/acdc-rollback" discover "${common[@]}" --method acdc --acdc-mode rollback --tau 0.01 --metric logit-diff -o "$D/acdc-rollback.json"
  run "$m/edge-pruning" discover "$M" --task ioi -n 12 --seed 3 --threads 2 --method edge-pruning --steps 12 \
    --batch-size 4 --warmup-steps 2 --target-warmup-steps 6 --target 0.5,0.9 -o "$D/ep.json" --curve "$D/ep.curve.csv"
  pp=(--importance-threshold 1 --min-value-threshold 0.001 --batch-size 4)
  run "$m/path-patching" discover "${common[@]}" --method path-patching "${pp[@]}" --calc-flops -o "$D/pp.json"
  run "$m/prune" prune "${common[@]}" --flap hybrid --lowest 0.5 --highest 0.9 --step 0.1 -o "$D/flap.json"
  run "$m/app" discover "${common[@]}" --method app "${pp[@]}" --pruning contrastive --lowest 0.5 --highest 0.9 \
    --step 0.1 --pp-circuit "$D/pp.json" -o "$D/app.json"
  run "$m/evaluate" evaluate "${common[@]}" --circuit "$D/eap.json" --metric kl
  run "$m/tune" tune "$M" --task ioi -n 16 --seed 3 --threads 2 --nodes 4 --rounds 2 --steps-per-round 2 \
    --batch-size 4 --discovery-examples 4 --ppl-context 32 --baseline -o "$D/tuned"
done

if [ "${EW_BEHAVIOUR_SKIP_DEFAULT:-0}" != 1 ]; then
  D=$OUT/default
  mkdir -p "$D"
  for method in eap eap-ig-inputs; do
    run "default/$method" discover --task ioi -n 8 --seed 3 --method "$method" --edges 200 -o "$D/$method.json" --curve "$D/$method.curve.csv"
  done
  run "default/acdc" discover --task ioi -n 4 --seed 3 --method acdc --acdc-mode group --tau 0.05 -o "$D/acdc.json"
fi
echo "recorded into $OUT" >&2
