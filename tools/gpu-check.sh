#!/usr/bin/env bash
# On a GPU machine (no network): configure + build against python3's CUDA LibTorch, run every test, and
# train the quickstart recipe on the GPU. TOML++ and CLI11 headers come from .deps/ when the system has
# none (fill it here with: apt-get download libtomlplusplus-dev libcli11-dev libgloo-dev; dpkg -x <deb> .deps;
# gloo: data parallel on CPU).
# Results go to $OUT (when set) or build-gpu/.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${ASSAY_BUILD_DIR:-build-gpu}
OUT=${OUT:-$BUILD}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import torch, h5py; print("torch", torch.__version__, "cuda", torch.version.cuda, "h5py", h5py.__version__)' \
  | tee -a "$OUT/gpu.txt"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
start=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -30; exit 1; }
echo "configure + build: $(( $(date +%s) - start )) s"
# Tests that need what the GPU image lacks (not code of this repo): say which, and leave them out.
exclude=()
command -v slurmctld > /dev/null || { echo "no slurmctld here: integration.slurm left out"; exclude+=(integration.slurm); }
command -v chromium > /dev/null || { echo "no chromium here: the report rendering test left out"; export ASSAY_SKIP_CHROMIUM=1; }
[ -d ../shared/papers ] || { echo "no ../shared/papers (the paper data) here: RsaPolite left out"; exclude+=(RsaPolite); }
pattern=$(IFS='|'; echo "${exclude[*]:-^$}")
ctest --test-dir "$BUILD" -j 8 --output-on-failure -E "$pattern" > "$OUT/ctest.log" 2>&1
status=$?
tail -15 "$OUT/ctest.log"
"$BUILD/bin/assay" run recipes/quickstart.toml --out "$OUT/quickstart-cuda" run.device=cuda > "$OUT/run.log" 2>&1
echo "quickstart on cuda: exit $?"; tail -3 "$OUT/run.log"
"$BUILD/bin/assay" inspect "$OUT/quickstart-cuda" | head -12
exit $status
