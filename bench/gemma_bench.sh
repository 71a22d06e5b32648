#!/usr/bin/env bash
# Issue 26's benchmark, one run: forward tokens/s of edgewise and transformers on Gemma-3-270M and
# on the default model (bench/forward_vs_transformers.py, batch 8 x 64, 2 threads, 3 alternating
# rounds), then EAP against its floor (2 forwards + 1 backward) with peak memory on IOI, 100
# examples in batches of 25, on both models (bench_attribution). Logs into ${OUT:-out/gemma_bench}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gemma_bench}
mkdir -p "$OUT"
GEMMA=${EDGEWISE_GEMMA_MODEL:-${EDGEWISE_HOME:-$HOME/.cache/edgewise}/models/gemma-3-270m-q4_k_m.gguf}
SMOL=${EDGEWISE_DEFAULT_MODEL:-${EDGEWISE_HOME:-$HOME/.cache/edgewise}/models/SmolLM2-135M-Instruct.Q4_1.gguf}
export OMP_WAIT_POLICY=passive
for m in "$GEMMA" "$SMOL"; do
  n=$(basename "$m" .gguf)
  .venv/bin/python bench/forward_vs_transformers.py --model "$m" --threads 2 --iters 5 --rounds 3 | tee "$OUT/forward_$n.txt"
done
for m in "$GEMMA" "$SMOL"; do
  n=$(basename "$m" .gguf)
  BENCH_SECTIONS=eap build/bench/bench_attribution "$m" ioi 100 25 2 2 | tee "$OUT/eap_$n.json"
done
