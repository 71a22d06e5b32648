#!/usr/bin/env bash
# Issue 26's figure: the IOI circuit of Gemma-3-270M found with EAP-IG, next to the default
# model's (bench/ioi_curves.sh): 100 seeded examples, resample ablation, logit difference, 5
# integrated-gradient steps; the circuit of 200 edges (3.5% of Gemma's 5,644) drawn, its
# faithfulness curve, and the interactive page. Writes into docs/figures/gemma/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/figures/gemma
mkdir -p "$out"
build/edgewise discover gemma-3-270m --task ioi -n 100 --batch-size 25 --threads 2 --method eap-ig-inputs \
  --edges 200 -o "$out/ioi_eap-ig-inputs.json" --svg "$out/ioi_eap-ig-inputs_circuit.svg" \
  --curve "$out/ioi_eap-ig-inputs.csv"
build/edgewise view "$out/ioi_eap-ig-inputs.json" --curve "$out/ioi_eap-ig-inputs.csv" -o "$out/ioi_eap-ig-inputs.html"
