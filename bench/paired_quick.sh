#!/usr/bin/env bash
# Short workloads of two builds, alternated many times (A B, B A, ...), one thread, timing each
# process's CPU time (user + system) and wall time with /usr/bin/time: on a shared 2-core VM the
# longer paired benchmarks of bench/paired_ab.sh vary by +-30% between rounds, which hides a 3%
# question; many short alternations and CPU time narrow it. Each A_DIR / B_DIR holds `edgewise`
# and `bench_acdc`.
#
#   bash bench/paired_quick.sh A_DIR B_DIR OUT_DIR [ROUNDS]
#
# Workloads: the patched forward's sparse path (`discover --method exact`: one patched forward
# per edge of the random GPT-2 of tests/behaviour, 16 IOI prompts), dense path with gradients
# (`--method eap` and `eap-ig-inputs` on the default model, 8 / 4 prompts) and ACDC's
# incremental engine (bench_acdc, tau 1e-4, the random GPT-2 and Llama).
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?A_DIR}; B=${2:?B_DIR}; OUT=${3:?OUT_DIR}; R=${4:-8}
M=${EW_BEHAVIOUR_MODELS:-build/behaviour-models}
export OMP_WAIT_POLICY=passive
mkdir -p "$OUT"
: > "$OUT/times.tsv"
run() {  # run SIDE NAME CMD...
  local side=$1 name=$2; shift 2
  /usr/bin/time -o "$OUT/.t" -f "%e %U %S" "$@" >/dev/null 2>&1
  echo -e "$name\t$side\t$(tail -1 "$OUT/.t")" >> "$OUT/times.tsv"
}
for r in $(seq 1 "$R"); do
  order="A B"; [ $((r % 2)) -eq 0 ] && order="B A"
  for side in $order; do
    d=$A; [ "$side" = B ] && d=$B
    run "$side" exact "$d/edgewise" discover "$M/gpt2" --task ioi -n 16 --seed 3 --threads 1 --method exact --edges 40 -o "$OUT/exact.$side.json"
    run "$side" eap "$d/edgewise" discover "" --task ioi -n 8 --seed 3 --threads 1 --method eap --edges 100 -o "$OUT/eap.$side.json"
    run "$side" eap-ig "$d/edgewise" discover "" --task ioi -n 4 --seed 3 --threads 1 --method eap-ig-inputs --edges 100 -o "$OUT/eapig.$side.json"
    run "$side" acdc-gpt2 "$d/bench_acdc" "$M/gpt2" ioi 16 0.0001 1 classic
    run "$side" acdc-llama "$d/bench_acdc" "$M/llama" ioi 16 0.0001 1 classic
  done
  echo "$(date +%T) round $r done" >&2
done
.venv/bin/python - "$OUT/times.tsv" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for name, side, t in rows:
    e, u, s = map(float, t.split())
    by.setdefault(name, {}).setdefault(side, []).append((e, u + s))
print(f"{'workload':<11} {'runs':>4} {'A cpu s':>8} {'B cpu s':>8} {'B/A cpu':>8} {'A wall':>7} {'B wall':>7} {'B/A wall':>8}")
for name, d in by.items():
    a, b = d["A"], d["B"]
    ac, bc = statistics.median(x[1] for x in a), statistics.median(x[1] for x in b)
    aw, bw = statistics.median(x[0] for x in a), statistics.median(x[0] for x in b)
    print(f"{name:<11} {len(a):>4} {ac:>8.3f} {bc:>8.3f} {bc / ac:>8.3f} {aw:>7.3f} {bw:>7.3f} {bw / aw:>8.3f}")
PY
