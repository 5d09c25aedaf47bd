#!/usr/bin/env bash
# On a GPU machine (no network): the GPU-performance measurements of docs/BENCHMARKS.md (issue 11), in
# one call. Builds the plugins they need into build-gpu-perf/ (TOML++, CLI11, gloo headers from .deps/),
# runs tests/cuda_graph.sh (the captured step against the eager one), then the parts named in $PARTS
# (default: tiny sweep): tiny = tools/bench/gpu_step.py --preset tiny, gpt2s = --preset gpt2s,
# profile = tools/bench/gpu_profile.py --preset gpt2s (kernel time by kind, eager vs torch.compile),
# sweep = tools/bench/seed_sweep_gpu.py. Tables go to stdout and $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${ASSAY_BUILD_DIR:-build-gpu-perf}
OUT=${OUT:-$BUILD}
PARTS=${PARTS:-tiny sweep}
mkdir -p "$OUT"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
start=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DASSAY_BUILD_TESTS=OFF \
  -DASSAY_PLUGINS="gpt;text_file;count;adamw;ce;accuracy;fp32;modular_addition;quadratic_mlp;margin;fourier_features;mx" \
  > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
echo "configure + build: $(( $(date +%s) - start )) s"
ASSAY="$PWD/$BUILD/bin/assay"
ASSAY=$ASSAY ASSAY_SOURCE_DIR=$PWD ASSAY_BINARY_DIR=$PWD/$BUILD bash tests/cuda_graph.sh > "$OUT/cuda_graph_test.log" 2>&1
echo "tests/cuda_graph.sh: exit $?"; tail -8 "$OUT/cuda_graph_test.log"
for part in $PARTS; do
  echo "## $part ($(date +%T))"
  case $part in
    tiny) python3 tools/bench/gpu_step.py --preset tiny --assay "$ASSAY" --steps 300 --warmup 60 | tee "$OUT/gpu_step_tiny.md" ;;
    gpt2s) python3 tools/bench/gpu_step.py --preset gpt2s --assay "$ASSAY" --steps 60 --warmup 20 | tee "$OUT/gpu_step_gpt2s.md" ;;
    profile) python3 tools/bench/gpu_profile.py --preset gpt2s | tee "$OUT/gpu_profile_gpt2s.md" ;;
    sweep) python3 tools/bench/seed_sweep_gpu.py --assay "$ASSAY" --runs 64 --steps 300 --jobs 4,16 | tee "$OUT/seed_sweep.md" ;;
  esac
done
