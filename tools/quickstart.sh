#!/usr/bin/env bash
# On a fresh machine: installs what is missing, builds, and runs the default recipe end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
RECIPE=${1:-recipes/quickstart.toml}
OUT=${ASSAY_OUT:-runs/quickstart-$(date +%Y%m%d-%H%M%S)}
build/bin/assay run "$RECIPE" --out "$OUT"
build/bin/assay inspect "$OUT"
echo
echo "Results: $OUT/run.h5 (run store), $OUT/run.log, $OUT/checkpoints/"
echo "Read them with: build/bin/assay inspect $OUT   or from Python with h5py (docs/run-store.md)"
