#!/usr/bin/env bash
# On a GPU machine (no network), in one call: the MX proxy seed study (recipes/papers/mx-precision/proxy_seeds.toml:
# depth 8, 6 precision schemes x 4 seeds, 3000 steps). Builds only what it needs into build-gpu-mx/ (TOML++ and
# CLI11 headers from .deps/: carry it), runs the sweep on the GPU with CUDA graphs, seeds in chunks (seeds 0-1 of
# every scheme first, then 2-3, ...), every run stopped (checkpointed, store complete) $DEADLINE seconds after the
# start, then `assay analyze instability` and analysis/mx_seeds.py (per scheme: spike rate over seeds).
#   bash tools/gpu-mx-seeds.sh [OVERRIDE ...]        # overrides go to every `assay sweep` (e.g. run.steps=2000)
# As a device call: command 'bash tools/gpu-mx-seeds.sh', carry [".deps"], timeout_s 600 (OUT is set there).
# CUDA_GRAPH=false trains eagerly as the grid did (slower; seed 0 should then repeat the grid's runs, as the in-situ
# control did); a captured step agrees with the eager one to ~1e-7 relative only, so seed 0 may spike elsewhere.
# Returns in $OUT (default runs/): mx-seeds-summary.md (the table) and mx-seeds.tar.gz (the sweep folder without
# checkpoints: run stores, logs, sweep.toml, launcher.tsv, instability.h5; plus runs.csv, instability.txt,
# summary.md, sweep.log).
# Knobs (environment): SEEDS=4 (seeds 0..SEEDS-1), CHUNK=2 (seeds per sweep call), JOBS=12 (runs at a time on the
# GPU), DEADLINE=450 (s from the start; the sweep is stopped then), CUDA_GRAPH=true, DEVICE=cuda,
# SWEEP=runs/mx-proxy-seeds-sweep, ANALYSIS_ARGS (to analysis/mx_seeds.py, e.g. "--window 20"), ASSAY=path of a
# built assay (skips the build). Toy check on a CPU (~1 min on 2 cores):
#   ASSAY=build/bin/assay DEVICE=cpu CUDA_GRAPH=false JOBS=2 SEEDS=2 CHUNK=1 SWEEP=/tmp/mxs OUT=/tmp/mxs-out \
#   ANALYSIS_ARGS="--window 20" bash tools/gpu-mx-seeds.sh run.steps=150 run.log_every=1 run.eval_every=50 \
#     task.dim=32 model.width=32 task.batch=64 task.test_size=128
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
BUILD=${ASSAY_BUILD_DIR:-build-gpu-mx}
OUT=${OUT:-runs}
SEEDS=${SEEDS:-4}
CHUNK=${CHUNK:-2}
JOBS=${JOBS:-12}
DEADLINE=${DEADLINE:-450}
CUDA_GRAPH=${CUDA_GRAPH:-true}
DEVICE=${DEVICE:-cuda}
SWEEP=${SWEEP:-runs/mx-proxy-seeds-sweep}
ANALYSIS_ARGS=${ANALYSIS_ARGS:-}
RECIPE=recipes/papers/mx-precision/proxy_seeds.toml
mkdir -p "$OUT" "$SWEEP"
WORK=$(mktemp -d)  # what goes into the archive beside the sweep folder
LOG=$WORK/sweep.log

if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$WORK/gpu.txt"
fi
if [ -z "${ASSAY:-}" ]; then
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0a}
  cmake -S . -B "$BUILD" -G Ninja -DASSAY_BUILD_TESTS=OFF \
    -DASSAY_PLUGINS="residual_mlp;teacher_student;adamw;mse;fp32;mx;grad_fidelity" \
    > "$WORK/configure.log" 2>&1 || { tail -30 "$WORK/configure.log"; echo "(no .deps/ carried? it holds TOML++ and CLI11)"; exit 1; }
  cmake --build "$BUILD" -j "$(nproc)" > "$WORK/build.log" 2>&1 || { grep -E "error|FAILED" "$WORK/build.log" | head -30; exit 1; }
  ASSAY=$PWD/$BUILD/bin/assay
  echo "configure + build: $(elapsed) s"
fi

# Seeds in chunks: sweep.seeds=n means seeds 0..n-1, and a run's id does not depend on n, so each call runs only
# the new seeds (done runs are skipped) and sweep.toml lists every run at the end.
n=0
while [ "$n" -lt "$SEEDS" ]; do
  n=$(( n + CHUNK > SEEDS ? SEEDS : n + CHUNK ))
  left=$(( DEADLINE - $(elapsed) ))
  if [ "$left" -le 10 ]; then echo "deadline: seeds $n.. not started"; break; fi
  echo "## $(date +%T) [$(elapsed) s] sweep.seeds=$n (--jobs $JOBS, at most $left s)" | tee -a "$LOG"
  chunk_start=$(date +%s)
  timeout -s TERM -k 30 "$left" "$ASSAY" sweep "$RECIPE" --jobs "$JOBS" --out "$SWEEP" sweep.seeds="$n" \
    run.device="$DEVICE" run.cuda_graph="$CUDA_GRAPH" "$@" 2>&1 | tee -a "$LOG" | grep --line-buffered -E "done in|failed|diverged|sweep |error|eagerly"
  echo "sweep.seeds=$n: exit ${PIPESTATUS[0]} after $(( $(date +%s) - chunk_start )) s" | tee -a "$LOG"
done
if [ "$CUDA_GRAPH" = true ]; then
  echo "run.cuda_graph: step captured in $(grep -l 'cuda_graph: step .* captured' "$SWEEP"/*/run.log 2>/dev/null | wc -l) run(s);" \
       "eager in $(grep -lE 'cuda_graph: (stage .* trains eagerly|the step could not be captured)' "$SWEEP"/*/run.log 2>/dev/null | wc -l)"
  grep -hE 'cuda_graph: (stage .* trains eagerly|the step could not be captured)' "$SWEEP"/*/run.log 2>/dev/null | head -2
fi
"$ASSAY" status "$SWEEP" > "$WORK/status.txt" 2>&1; tail -3 "$WORK/status.txt"
echo "sweep: $(elapsed) s"

"$ASSAY" analyze instability "$SWEEP" > "$WORK/instability.txt" 2>&1 || echo "assay analyze instability: exit $?"
head -2 "$WORK/instability.txt"
# shellcheck disable=SC2086  # ANALYSIS_ARGS is a list of options
python3 analysis/mx_seeds.py "$SWEEP" --csv "$WORK/runs.csv" $ANALYSIS_ARGS > "$WORK/summary.md" 2> "$WORK/mx_seeds.err" \
  || { echo "analysis/mx_seeds.py failed:"; cat "$WORK/mx_seeds.err"; }
cat "$WORK/summary.md"
cp "$WORK/summary.md" "$OUT/mx-seeds-summary.md"
# One archive (the device returns few files): the sweep folder without checkpoints, and the files above.
name=$(basename "$SWEEP")
cp -r "$WORK" "$SWEEP/_device" 2>/dev/null
tar czf "$OUT/mx-seeds.tar.gz" -C "$(dirname "$SWEEP")" --exclude=checkpoints --exclude='*.lock' "$name"
rm -rf "$SWEEP/_device" "$WORK"
echo "wrote $OUT/mx-seeds.tar.gz ($(du -h "$OUT/mx-seeds.tar.gz" | cut -f1)) and $OUT/mx-seeds-summary.md; total $(elapsed) s"
