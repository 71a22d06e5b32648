#!/usr/bin/env bash
# Build edgewise on a machine that has its own CUDA torch but not our Debian packages (a lent GPU
# machine: docs/DEVICES.md), linking that torch instead of the project's pinned CPU wheel.
#   here (Debian, network):   mkdir -p DEBS && (cd DEBS && apt-get download nlohmann-json3-dev \
#                               libcli11-dev libgtest-dev libgmock-dev libpcre2-dev libpcre2-8-0 \
#                               libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 pkgconf pkgconf-bin libpkgconf3)
#   there (repository root):  bash tools/gpu/build_elsewhere.sh DEBS BUILD_DIR [ninja targets...]
# The packages are unpacked under /tmp/dep (never over /); pkgconf's sysroot points the .pc
# files there. Run binaries with LD_LIBRARY_PATH=/tmp/dep/usr/lib/x86_64-linux-gnu.
set -euo pipefail
DEBS=$1; B=$2; shift 2
D=/tmp/dep; mkdir -p "$D"
for f in "$DEBS"/*.deb; do dpkg -x "$f" "$D"; done
export PKG_CONFIG_PATH=$D/usr/lib/x86_64-linux-gnu/pkgconfig:$D/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$D
TP=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TP;$D/usr" \
  -DPKG_CONFIG_EXECUTABLE="$D/usr/bin/pkgconf" -DEDGEWISE_PYTHON="$(command -v python3)" > "$B.configure.log" 2>&1 ||
  { tail -30 "$B.configure.log"; exit 1; }
ninja -C "$B" "$@" > "$B.build.log" 2>&1 || { grep -A12 "error" "$B.build.log" | head -80; exit 1; }
echo "built in $B"
