#!/usr/bin/env bash
# The libFuzzer harnesses of fuzz/ (docs/FUZZING.md): build them with clang (ASan + UBSan) in
# build-fuzz/, write their seed corpora, and run them one at a time, one process each.
#   bash scripts/fuzz.sh build                      configure + build only
#   bash scripts/fuzz.sh smoke [harness...]         replay fuzz/regressions/, then ~5 s of fuzzing
#                                                   per harness; non-zero exit on any crash
#   bash scripts/fuzz.sh long [seconds] [runs] [harness...]
#                                                   up to `runs` executions (default 10,000,000)
#                                                   capped at `seconds` (default 900) per harness,
#                                                   with libFuzzer's final statistics
#   bash scripts/fuzz.sh replay <harness> <file...> run a harness on given inputs (EW_FUZZ_VERBOSE=1
#                                                   prints why each is refused)
# Harnesses: fuzz_safetensors fuzz_gguf fuzz_tokenizer fuzz_vocab_merges fuzz_circuit
# fuzz_dataset fuzz_config (all when none is named).
# Layout: build-fuzz/seeds/<h>/ (fuzz/make_seeds.py, rewritten each run), build-fuzz/corpus/<h>/
# (what long runs add; kept between runs), build-fuzz/crashes/<h>/ (crash, timeout and
# out-of-memory inputs), build-fuzz/logs/<h>.<mode>.log. A crash input, once fixed, is kept
# in fuzz/regressions/<h>/ and every smoke run replays it.
# Environment: EW_FUZZ_BUILD (default build-fuzz), EW_FUZZ_SMOKE_SECONDS (default 5),
# EW_GOLDEN (default build/golden: small golden files join the seeds when it exists),
# EW_FUZZ_LOG (long runs: the log name's middle part, default "long"; a second run resumed from
# the first's corpus keeps the first's log), EW_FUZZ_REUSE=1 (long runs: neither rebuild nor
# rewrite the seeds, so two chains of harnesses can run side by side, one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD="${EW_FUZZ_BUILD:-$ROOT/build-fuzz}"
GOLDEN="${EW_GOLDEN:-$ROOT/build/golden}"
ALL=(fuzz_safetensors fuzz_gguf fuzz_tokenizer fuzz_vocab_merges fuzz_circuit fuzz_dataset fuzz_config)
log() { printf '[fuzz] %s\n' "$*" >&2; }

build() {
  command -v clang++ >/dev/null || { log "clang++ not found (scripts/setup.sh installs Debian's clang)"; exit 1; }
  if [ ! -f "$BUILD/build.ninja" ] && [ ! -f "$BUILD/Makefile" ]; then
    local gen=()
    command -v ninja >/dev/null && gen=(-G Ninja)
    log "configuring $BUILD (clang, ASan + UBSan + libFuzzer)"
    mkdir -p "$BUILD"
    CC=clang CXX=clang++ cmake -S "$ROOT/fuzz" -B "$BUILD" "${gen[@]}" >"$BUILD/configure.log" 2>&1 || {
      cat "$BUILD/configure.log" >&2; log "configuring failed"; exit 1; }
  fi
  # One compile at a time: the machine has two cores and the main build may be running.
  if ! cmake --build "$BUILD" -j1 >"$BUILD/build.log" 2>&1; then
    grep -E "error|FAILED" -A5 "$BUILD/build.log" | head -60 >&2
    log "build failed (full log: $BUILD/build.log)"
    exit 1
  fi
}

seeds() {
  local py=python3 args=(--out "$BUILD/seeds")
  [ -x "$ROOT/.venv/bin/python" ] && py="$ROOT/.venv/bin/python"
  [ -d "$GOLDEN" ] && args+=(--golden "$GOLDEN")
  rm -rf "$BUILD/seeds"
  "$py" "$ROOT/fuzz/make_seeds.py" "${args[@]}" >"$BUILD/seeds.log"
}

# Runs harness $1 with libFuzzer options $2...; its output goes to build-fuzz/logs/$1.$MODE.log.
# Returns libFuzzer's exit status (0: no crash).
fuzz_one() {
  local h=$1
  shift
  mkdir -p "$BUILD/corpus/$h" "$BUILD/crashes/$h" "$BUILD/logs"
  local opts=(-artifact_prefix="$BUILD/crashes/$h/" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
  [ -f "$ROOT/fuzz/$h.dict" ] && opts+=(-dict="$ROOT/fuzz/$h.dict")
  # The first folder receives what the fuzzer finds: a smoke run starts from the seeds alone
  # (fast and the same each time), a long run grows build-fuzz/corpus/<h>/ from one run to the next.
  local dirs=("$BUILD/seeds/$h")
  [ "$MODE" = smoke ] || dirs=("$BUILD/corpus/$h" "${dirs[@]}")
  [ -d "$ROOT/fuzz/regressions/$h" ] && dirs+=("$ROOT/fuzz/regressions/$h")
  "$BUILD/$h" "${opts[@]}" "$@" "${dirs[@]}" >"$BUILD/logs/$h.$MODE.log" 2>&1
}

# Replays fuzz/regressions/<h>/: every input there once crashed the harness.
replay_regressions() {
  local h=$1 dir="$ROOT/fuzz/regressions/$1"
  [ -d "$dir" ] || return 0
  local files=("$dir"/*)
  [ -e "${files[0]}" ] || return 0
  mkdir -p "$BUILD/logs"
  if ! "$BUILD/$h" "${files[@]}" >"$BUILD/logs/$h.regressions.log" 2>&1; then
    tail -30 "$BUILD/logs/$h.regressions.log" >&2
    log "$h: a regression input crashes again (log: $BUILD/logs/$h.regressions.log)"
    return 1
  fi
  log "$h: ${#files[@]} regression inputs replayed, no crash"
}

# "executions exec/s cov ft new_units crashes" from a finished run's log.
stats() {
  local h=$1 f="$BUILD/logs/$1.$MODE.log"
  local execs rate cov ft crashes
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$f" | tail -1 | grep -oE '[0-9]+$' || true)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$f" | tail -1 | grep -oE '[0-9]+$' || true)
  cov=$(grep -oE '^#[0-9]+.*cov: [0-9]+' "$f" | tail -1 | grep -oE '[0-9]+$' || true)
  ft=$(grep -oE '^#[0-9]+.*ft: [0-9]+' "$f" | tail -1 | grep -oE '[0-9]+$' || true)
  crashes=$(grep -c 'Test unit written to' "$f" || true)
  echo "${execs:-?} ${rate:-?} ${cov:-?} ${ft:-?} ${crashes:-0}"
}

MODE=${1:-smoke}
shift || true
case "$MODE" in
  build)
    build
    log "built: $BUILD/{$(IFS=,; echo "${ALL[*]}")}"
    ;;
  smoke)
    harnesses=("$@")
    [ ${#harnesses[@]} -gt 0 ] || harnesses=("${ALL[@]}")
    secs="${EW_FUZZ_SMOKE_SECONDS:-5}"
    build
    seeds
    failed=0
    for h in "${harnesses[@]}"; do
      replay_regressions "$h" || { failed=1; continue; }
      if fuzz_one "$h" -max_total_time="$secs"; then
        read -r execs rate cov ft _ < <(stats "$h")
        log "$h: ok, $execs executions in ${secs}s ($rate/s), cov $cov ft $ft"
      else
        tail -40 "$BUILD/logs/$h.$MODE.log" >&2
        log "$h: CRASH (input in $BUILD/crashes/$h/, log $BUILD/logs/$h.$MODE.log)"
        failed=1
      fi
    done
    exit $failed
    ;;
  long)
    secs=900
    runs=10000000
    if [[ ${1:-} =~ ^[0-9]+$ ]]; then secs=$1; shift; fi
    if [[ ${1:-} =~ ^[0-9]+$ ]]; then runs=$1; shift; fi
    harnesses=("$@")
    [ ${#harnesses[@]} -gt 0 ] || harnesses=("${ALL[@]}")
    MODE="${EW_FUZZ_LOG:-long}"
    if [ "${EW_FUZZ_REUSE:-0}" != 1 ]; then build; seeds; fi
    failed=0
    printf '%-18s %12s %8s %7s %7s %8s %8s\n' harness executions exec/s cov ft crashes seconds
    for h in "${harnesses[@]}"; do
      start=$(date +%s)
      rc=0
      fuzz_one "$h" -runs="$runs" -max_total_time="$secs" || rc=$?
      read -r execs rate cov ft crashes < <(stats "$h")
      [ $rc -eq 0 ] || { failed=1; [ "$crashes" != 0 ] || crashes=1; }
      printf '%-18s %12s %8s %7s %7s %8s %8s\n' "$h" "$execs" "$rate" "$cov" "$ft" "$crashes" "$(( $(date +%s) - start ))"
      if [ $rc -ne 0 ]; then
        grep -E "^==[0-9]+==ERROR|^SUMMARY|deadly signal|Test unit written" "$BUILD/logs/$h.$MODE.log" | head -5 >&2
      fi
    done
    exit $failed
    ;;
  replay)
    h=${1:?usage: scripts/fuzz.sh replay <harness> <file...>}
    shift
    build
    exec "$BUILD/$h" "$@"
    ;;
  *)
    sed -n '2,25p' "$0" >&2
    exit 2
    ;;
esac
