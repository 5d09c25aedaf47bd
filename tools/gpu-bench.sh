#!/usr/bin/env bash
# On a GPU machine, after tools/gpu-check.sh built build-gpu/: the GPU benchmarks of docs/BENCHMARKS.md.
# Tables go to stdout and to $OUT (when set) or build-gpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${ASSAY_BUILD_DIR:-build-gpu}
OUT=${OUT:-$BUILD}
cmake --build "$BUILD" -j "$(nproc)" --target bench_sampling bench_mx_quantize > "$OUT/bench-build.log" 2>&1
nvidia-smi --query-gpu=name --format=csv,noheader
echo "## bench_sampling (cuda)"
"$BUILD/bin/bench_sampling" --device cuda --rounds 3 --batch 32 --new 64,256,1024 --layers 4 --width 256 | tee "$OUT/bench_sampling_cuda.md"
echo "## gpt_step.py (cuda)"
python3 tools/bench/gpt_step.py --device cuda --assay "$BUILD/bin/assay" --steps 300 --warmup 50 --repeats 3 | tee "$OUT/gpt_step_cuda.md"
echo "## bench_mx_quantize (cuda)"
"$BUILD/bin/bench_mx_quantize" --device cuda --rows 8192 --cols 8192 | tee "$OUT/bench_mx_quantize_cuda.md"
echo "## mx_torch_quantize.py (cuda)"
python3 tools/bench/mx_torch_quantize.py --device cuda --rows 8192 --cols 8192 | tee "$OUT/mx_torch_quantize_cuda.md"
echo "## bench_rl_step (cuda)"
cmake --build "$BUILD" -j "$(nproc)" --target bench_rl_step >> "$OUT/bench-build.log" 2>&1 && "$BUILD/bin/bench_rl_step" --device cuda --rounds 3 --steps 3 | tee "$OUT/bench_rl_step_cuda.md"
echo "## bench_block_sampling (cuda)"
cmake --build "$BUILD" -j "$(nproc)" --target bench_block_sampling >> "$OUT/bench-build.log" 2>&1 && "$BUILD/bin/bench_block_sampling" --device cuda --rounds 3 --blocks 1,2,4,7,14,28 | tee "$OUT/bench_block_sampling_cuda.md"
