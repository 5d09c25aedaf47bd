#!/usr/bin/env bash
# On a GPU machine (no network), in one call: builds what the echo-chamber study needs into
# build-gpu-ec/ (TOML++, CLI11 headers from .deps/) and runs tools/echo_chamber.sh on the GPU, every run
# stopped (checkpointed, store complete) by $DEADLINE seconds after the start; then the table.
# Run stores and consoles go to $OUT/echo-chamber.tar.gz (checkpoints stay in runs/).
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
PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True} ASSAY=$PWD/$BUILD/bin/assay timeout -s TERM -k 20 "$left" bash tools/echo_chamber.sh runs/echo-chamber run.device=cuda "$@"
echo "echo_chamber.sh: exit $? after $(( $(date +%s) - start )) s"
# One archive (the device returns few files): every run's store and console, no checkpoints.
(cd runs && tar czf "$OUT/echo-chamber.tar.gz" --exclude=checkpoints --exclude='*.lock' echo-chamber)
python3 analysis/echo_chamber.py runs/echo-chamber || echo "(no table: h5py/pandas missing here?)"
