#!/usr/bin/env bash
# Every command of the command line on --device cpu and on --device cuda, on the same machine and
# model, then their JSON outputs compared (tools/gpu/compare_outputs.py). Run on a GPU machine
# from the repository root after a build (docs/DEVICES.md):
#   bash tools/gpu/cli_both_devices.sh BUILD_DIR MODEL_DIR OUT_DIR
# MODEL_DIR: a model with a tokenizer in which IOI's names are single tokens (the tests' random
# GPT-2, build/golden/model_golden/gpt2, is what was used).
set -u
E=$1/edgewise; M=$2; C=$3
mkdir -p "$C/cpu" "$C/cuda"
for D in cpu cuda; do
  o=$C/$D
  run() {
    local name=$1; shift; local t0; t0=$(date +%s%N)
    if TORCH_SHOW_CPP_STACKTRACES=1 "$@" > "$o/$name.log" 2>&1; then
      echo "$D $name ok $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    else
      echo "$D $name FAILED"; grep -v "^frame #\|^$" "$o/$name.log" | tail -4; grep "edgewise::" "$o/$name.log" | head -8
    fi
  }
  run info "$E" info "$M" --device $D
  run run "$E" run "$M" --device $D --prompt "When Mary and John went to the store, John gave a drink to" -k 8
  run generate "$E" generate "$M" --device $D --prompt "When Mary and John went to the store," -n 12
  for m in eap eap-ig-inputs eap-ig-activations clean-corrupted mask-gradient mask-gradient-ig exact; do
    run $m "$E" discover "$M" --device $D --task ioi -n 8 --method $m --edges 40 -o "$o/$m.json"
  done
  run nodes "$E" discover "$M" --device $D --task ioi -n 8 --method eap --nodes 5 -o "$o/nodes.json"
  run acdc "$E" discover "$M" --device $D --task ioi -n 8 --method acdc --tau 0.01 -o "$o/acdc.json"
  run edge-pruning "$E" discover "$M" --device $D --task ioi -n 16 --method edge-pruning --steps 20 --target 0.9 -o "$o/edge-pruning.json"
  run path-patching "$E" discover "$M" --device $D --task ioi -n 6 --method path-patching -o "$o/path-patching.json"
  run flap "$E" prune "$M" --device $D --task ioi -n 6 --flap hybrid -o "$o/flap.json"
  run app "$E" discover "$M" --device $D --task ioi -n 6 --method app --pruning hybrid --pp-circuit "$o/path-patching.json" -o "$o/app.json"
  run evaluate "$E" evaluate "$M" --device $D --task ioi -n 8 --circuit "$C/cpu/eap.json"
  run tune "$E" tune "$M" --device $D --task ioi -n 24 --nodes 4 --rounds 2 --steps-per-round 2 --ppl-context 32 -o "$o/tuned" --report "$o/tune.json"
done
python3 "$(dirname "$0")/compare_outputs.py" "$C/cpu" "$C/cuda"
for D in cpu cuda; do echo "== evaluate $D"; tail -6 "$C/$D/evaluate.log"; done
# run / generate print text: the tables and continuations are compared as printed.
for n in run generate; do
  if diff <(grep -v "device" "$C/cpu/$n.log") <(grep -v "device" "$C/cuda/$n.log") > /dev/null; then echo "== $n: same output"
  else echo "== $n: outputs differ"; diff <(grep -v "device" "$C/cpu/$n.log") <(grep -v "device" "$C/cuda/$n.log") | head -20; fi
done
for D in cpu cuda; do echo "== tune $D"; grep -A4 "logit diff" "$C/$D/tune.log"; done
