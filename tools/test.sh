#!/usr/bin/env bash
# On a fresh machine: installs what is missing, builds, and runs every test (unit + integration).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
ctest --test-dir "${ASSAY_BUILD_DIR:-build}" --output-on-failure -j "${ASSAY_JOBS:-$(nproc)}" "$@"
