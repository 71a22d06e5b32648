#!/usr/bin/env bash
# The README's main command: set up what is missing, then run the main job on the default model.
# (Until circuit discovery lands, the main job is a next-token table from the default model.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec build/edgewise run --prompt "When Mary and John went to the store, John gave a drink to" --top-k 10 "$@"
