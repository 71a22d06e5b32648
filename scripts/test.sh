#!/usr/bin/env bash
# The README's test command: set up what is missing, then run every test (C++ unit tests and the
# reference checks against transformers / tokenizers / gguf, which regenerate their golden files).
# Pass ctest options through, e.g. `bash scripts/test.sh -L unit` for the fast ones.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd build
# Two tests share the two cores: idle OpenMP threads must sleep, not spin on a core another test
# needs (libgomp's default spinning made ACDC's tests 12x slower side by side; BENCHMARKS.md).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
exec ctest --output-on-failure -j2 "$@"
