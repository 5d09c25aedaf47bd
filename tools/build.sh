#!/usr/bin/env bash
# Configures (once) and builds assay into build/ (or $ASSAY_BUILD_DIR). Extra arguments go to CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${ASSAY_BUILD_DIR:-build}
JOBS=${ASSAY_JOBS:-$(nproc)}
if [ ! -f "$BUILD_DIR/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja "$@"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
