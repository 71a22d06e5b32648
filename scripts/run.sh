#!/usr/bin/env bash
# The README's main command: set up what is missing, then run the main job on the default model.
# The main job: discover the IOI circuit of the default model (EAP-IG, 100 seeded examples),
# write it, its drawing, its faithfulness curve and its viewer page into out/, print its metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
build/edgewise discover --task ioi -n 100 --method eap-ig-inputs --edges 500 \
  -o out/ioi_circuit.json --svg out/ioi_circuit.svg --curve out/ioi_curve.csv "$@"
# The interactive page of the circuit and its curve (docs/VIEWER.md): open it in a browser.
build/edgewise view out/ioi_circuit.json --curve out/ioi_curve.csv -o out/ioi_circuit.html
