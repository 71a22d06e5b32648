#!/usr/bin/env bash
# Model parallel on one machine (docs/SCALING.md "Model parallel", docs/BENCHMARKS.md): the same
# command on 1 rank x 2 threads and as a pipeline of 2 stages x 1 thread (`--nproc 2 --pipeline 2`,
# each rank holding half the layers), alternating (A B A B ...). Each line gives the figure of
# interest, the peak resident memory of the largest process (GNU time's "Maximum resident set
# size": the launcher's children included, so the largest rank under --nproc) and what rank 0 sent.
#
#   bash bench/pipeline_bench.sh OUT_DIR [REPEATS] [MODEL] [EXTRA ARGS...]
#
# Default: the default model; EAP on 64 IOI prompts in batches of 16 (the printed attribution
# seconds) and Edge Pruning (seconds per step, 40 prompts, steps of 16). With MODEL and EXTRA ARGS
# (e.g. /tmp/big8b --dtype bf16 -n 8 --batch-size 8) only EAP runs, with those arguments.
set -euo pipefail
EW=${EW:-build/edgewise}
OUT=${1:?usage: pipeline_bench.sh OUT_DIR [REPEATS] [MODEL] [EXTRA ARGS...]}
REP=${2:-3}
MODEL=${3:-}
shift $(( $# < 3 ? $# : 3 ))
EXTRA=("$@")
mkdir -p "$OUT"
export OMP_WAIT_POLICY=passive

one() {  # one NAME STAGES ARGS...: runs, prints the figure of interest, peak memory and traffic
  local name=$1 stages=$2; shift 2
  local launch=(--threads 2) pre=()
  if [ "$stages" -gt 1 ]; then launch=(--threads 1); pre=(--nproc "$stages" --pipeline "$stages"); fi
  /usr/bin/time -v "$EW" "${pre[@]}" "$@" "${launch[@]}" -o "$OUT/$name.json" > "$OUT/$name.out" 2> "$OUT/$name.err"
  python3 - "$OUT/$name.json" "$OUT/$name.err" "$OUT/$name.out" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))["edgewise"]
err = open(sys.argv[2]).read()
out = open(sys.argv[3]).read()
m = re.search(r"distributed: (\d+) ranks, (\d+) collectives, ([\d.]+ \S+)", err)
comm = f"  [{m.group(2)} collectives, {m.group(3)}]" if m else ""
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) * 1024 / 1e9
if "edge_pruning" in r:
    ep = r["edge_pruning"]
    fig = f"{ep['seconds'] / ep['steps']:.3f} s/step"
else:
    fig = re.search(r"time\s+([\d.]+ s attribution)", out).group(1)
print(f"{fig}, peak {rss:.2f} GB{comm}")
PY
}

if [ -n "$MODEL" ]; then
  for i in $(seq 1 "$REP"); do
    for stages in 1 2; do
      echo "eap   stages=$stages run=$i: $(one eap_s${stages}_$i $stages discover "$MODEL" --task ioi --method eap "${EXTRA[@]}")"
    done
  done
  exit 0
fi
for i in $(seq 1 "$REP"); do
  for stages in 1 2; do
    echo "eap   stages=$stages run=$i: $(one eap_s${stages}_$i $stages discover --task ioi -n 64 --batch-size 16 --method eap)"
  done
done
for i in $(seq 1 "$REP"); do
  for stages in 1 2; do
    echo "ep    stages=$stages run=$i: $(one ep_s${stages}_$i $stages discover --task ioi -n 40 --batch-size 16 \
      --method edge-pruning --steps 6 --target 0.5)"
  done
done
