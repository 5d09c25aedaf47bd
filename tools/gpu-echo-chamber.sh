#!/usr/bin/env bash
# On a GPU machine (no network), in one call: builds what the echo-chamber study needs into
# build-gpu-ec/ (TOML++, CLI11 headers from .deps/) and runs tools/echo_chamber.sh on the GPU, every run
# stopped (checkpointed, store complete) by $DEADLINE seconds after the start; then the table.
# Run stores and consoles go to $OUT/echo-chamber (checkpoints stay in runs/, not copied).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${ASSAY_BUILD_DIR:-build-gpu-ec}
OUT=${OUT:-runs}
DEADLINE=${DEADLINE:-560}
start=$(date +%s)
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
cmake -S . -B "$BUILD" -G Ninja -DASSAY_BUILD_TESTS=OFF \
  -DASSAY_PLUGINS="gpt;math_formats;adamw;ce;fp32;grpo;ppo;expert_iteration;format_share;pass_at_k" \
  > /tmp/configure.log 2>&1 || { tail -30 /tmp/configure.log; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" > /tmp/build.log 2>&1 || { grep -E "error|FAILED" /tmp/build.log | head -30; exit 1; }
echo "configure + build: $(( $(date +%s) - start )) s"
left=$(( DEADLINE - ($(date +%s) - start) ))
ASSAY=$PWD/$BUILD/bin/assay timeout -s TERM -k 20 "$left" bash tools/echo_chamber.sh runs/echo-chamber run.device=cuda "$@"
echo "echo_chamber.sh: exit $? after $(( $(date +%s) - start )) s"
mkdir -p "$OUT/echo-chamber"
for d in runs/echo-chamber/*/; do
  name=$(basename "$d")
  [ -f "$d/run.h5" ] && mkdir -p "$OUT/echo-chamber/$name" && cp "$d/run.h5" "$OUT/echo-chamber/$name/run.h5"
done
cp runs/echo-chamber/*.console "$OUT/echo-chamber/" 2>/dev/null
python3 analysis/echo_chamber.py runs/echo-chamber || echo "(no table: h5py/pandas missing here?)"
