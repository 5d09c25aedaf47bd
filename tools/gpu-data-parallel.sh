#!/usr/bin/env bash
# On a GPU machine with 2+ GPUs (no network): data parallel over NCCL next to one GPU, and the Gloo test.
#  1. tests/data_parallel.sh (CPU ranks over Gloo) on this machine's build;
#  2. the optimizer study's LM (4-layer d=128 GPT, batch 64): one GPU vs 2 ranks over NCCL, same recipe:
#     the losses must agree (CUDA sums are not bit-reproducible) and the step times are compared;
#  3. a GPT-2-small-shaped model (12 layers, d=768, context 256, batch 32): one GPU vs 2 ranks, step time.
# TOML++, CLI11 and gloo headers come from .deps/ (see tools/gpu-check.sh). Results go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${ASSAY_BUILD_DIR:-build-gpu}
OUT=${OUT:-$BUILD}
mkdir -p "$OUT"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1  # the shared hosts forbid NVLink multicast
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
start=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DASSAY_BUILD_TESTS=OFF \
  -DASSAY_PLUGINS="gpt;text_file;adamw;ce;accuracy;fp32;modular_addition;quadratic_mlp;margin;fourier_features" \
  > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
grep "data parallel" "$OUT/configure.log"
cmake --build "$BUILD" -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
echo "configure + build: $(( $(date +%s) - start )) s"
ASSAY="$PWD/$BUILD/bin/assay"

ASSAY=$ASSAY ASSAY_SOURCE_DIR=$PWD ASSAY_BINARY_DIR=$PWD/$BUILD bash tests/data_parallel.sh > "$OUT/gloo_test.log" 2>&1 \
  && echo "tests/data_parallel.sh (gloo): passed" || { tail -20 "$OUT/gloo_test.log"; echo "tests/data_parallel.sh: FAILED"; }

LM=(recipes/papers/optimizers/lm.toml run.device=cuda run.steps=300 run.eval_every=0 run.checkpoint_every=0
    task.batch_size=64)
"$ASSAY" run "${LM[@]}" --out "$OUT/lm-1gpu" > "$OUT/lm-1gpu.log" 2>&1
"$ASSAY" run "${LM[@]}" --out "$OUT/lm-2gpu" --nproc 2 > "$OUT/lm-2gpu.log" 2>&1
BIG=(recipes/papers/optimizers/lm.toml run.device=cuda run.steps=60 run.eval_every=0 run.checkpoint_every=0
     task.batch_size=32 task.context=256 model.layers=12 model.width=768 model.heads=12)
"$ASSAY" run "${BIG[@]}" --out "$OUT/big-1gpu" > "$OUT/big-1gpu.log" 2>&1
"$ASSAY" run "${BIG[@]}" --out "$OUT/big-2gpu" --nproc 2 > "$OUT/big-2gpu.log" 2>&1
tail -3 "$OUT/big-2gpu.log"

python3 - "$OUT" <<'PY'
import sys, h5py, numpy as np
out = sys.argv[1]
def series(run, key="train.loss"):
    with h5py.File(f"{out}/{run}/run.h5") as f:
        g = f[f"metrics/{key}"]
        return g["value"][:], g["wall"][:], dict(f.attrs)
for name in ("lm", "big"):
    (l1, w1, a1), (l2, w2, a2) = series(f"{name}-1gpu"), series(f"{name}-2gpu")
    t1, t2 = np.median(np.diff(w1[10:])) * 1e3, np.median(np.diff(w2[10:])) * 1e3
    rel = np.max(np.abs(l1 - l2) / np.abs(l1))
    print(f"{name}: 1 GPU {t1:.2f} ms/step, 2 GPUs ({a2.get('data_parallel')}) {t2:.2f} ms/step, "
          f"speed-up {t1 / t2:.2f}x; final loss {l1[-1]:.4f} vs {l2[-1]:.4f}, max relative loss difference {rel:.2e}")
PY
