#!/usr/bin/env bash
# Issue 5's figure: faithfulness curves of eap, eap-ig-inputs and exact on the default model,
# IOI, 100 seeded examples, resample ablation, logit difference; the EAP-IG circuit drawn.
# exact scores only the 1,000 best edges of eap-ig-inputs (all 70,651 edges at N = 100 would
# take days on 2 cores; docs/ATTRIBUTION.md). Writes into out/curves/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/curves
mkdir -p "$out"
common=(--task ioi -n 100 --batch-size 25 --threads 2)
build/edgewise discover "${common[@]}" --method eap --edges 500 -o "$out/eap.json" --curve "$out/eap.csv"
build/edgewise discover "${common[@]}" --method eap-ig-inputs --edges 500 -o "$out/eap-ig-inputs.json" \
  --svg "$out/eap-ig-inputs_circuit.svg" --curve "$out/eap-ig-inputs.csv"
build/edgewise discover "${common[@]}" --method eap-ig-inputs --edges 1000 -o "$out/candidates.json"
build/edgewise discover "${common[@]}" --method exact --exact-candidates "$out/candidates.json" --edges 500 \
  -o "$out/exact.json" --curve "$out/exact.csv"
