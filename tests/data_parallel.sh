#!/usr/bin/env bash
# Data parallel over Gloo (CPU): ranks split each step's batch, so 2 ranks train exactly what one process
# with grad_accum 2 does (bit-identical: each gradient element is the same sum of the same two micro-batch
# gradients) and, up to float rounding (the sums are associated differently), what one process with the
# whole batch, or 2 ranks x grad_accum 2 what one process with grad_accum 4, does.
# Launched by `assay run --nproc`, by torchrun, interrupted and resumed, and with a rank that dies.
source "$(dirname "$0")/lib.sh"
write_small_recipe 400
COMPARE="python3 $ASSAY_SOURCE_DIR/tests/compare_stores.py"
RUN=("$ASSAY" run "$WORK/small.toml")

expect_exit 0 "${RUN[@]}" --out "$WORK/accum2" run.grad_accum=2
expect_exit 0 "${RUN[@]}" --out "$WORK/dp2" --nproc 2
expect_output "2 ranks over gloo"
$COMPARE "$WORK/accum2/run.h5" "$WORK/dp2/run.h5" || fail "2 ranks differ from 1 process with grad_accum 2"
[ "$(store_attr "$WORK/dp2" data_parallel)" = "gloo x2" ] || fail "the store does not say it was data parallel"
[ ! -e "$WORK/dp2/rank1" ] && [ "$(ls "$WORK/dp2")" = "$(printf 'checkpoints\nrun.h5\nrun.log')" ] ||
  fail "ranks other than 0 wrote files: $(ls "$WORK/dp2")"

# Tiny buckets (about 100 bytes: every tensor split from the others) and micro-batches on every rank.
expect_exit 0 "${RUN[@]}" --out "$WORK/accum4" run.grad_accum=4
expect_exit 0 "${RUN[@]}" --out "$WORK/dp2x2" --nproc 2 run.grad_accum=2 run.dp_bucket_mb=0.0001
# close A B: the two runs' losses and margins agree to 1e-3 (relative), and are not bit-identical (the
# comparison would otherwise not test what it says).
close() {
  python3 - "$1/run.h5" "$2/run.h5" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
for key in ("train.loss", "eval.train.loss", "margin.normalized"):
    x, y = a[f"metrics/{key}/value"][:], b[f"metrics/{key}/value"][:]
    assert x.shape == y.shape, key
    err = np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-3))
    print(f"{key}: max relative difference {err:.2e}")
    assert err < 1e-3, key
assert not np.array_equal(a["metrics/train.loss/value"][:], b["metrics/train.loss/value"][:])
PY
}
close "$WORK/accum4" "$WORK/dp2x2" || fail "2 ranks x grad_accum 2 drift from grad_accum 4"

# The whole batch in one process.
expect_exit 0 "${RUN[@]}" --out "$WORK/whole"
close "$WORK/whole" "$WORK/dp2" || fail "2 ranks drift from the one-process whole-batch run"

# torchrun's environment (what Slurm's srun fallback and other launchers provide too).
if python3 -c "import torch.distributed.run" 2> /dev/null; then
  expect_exit 0 python3 -m torch.distributed.run --nproc-per-node 2 --master-port "$((20000 + $$ % 20000))" \
    --no-python "$ASSAY" run "$WORK/small.toml" --out "$WORK/torchrun"
  $COMPARE "$WORK/dp2/run.h5" "$WORK/torchrun/run.h5" || fail "torchrun-launched ranks differ from --nproc"
fi

# Bad environments say what is wrong and run nothing.
WORLD_SIZE=2 RANK=2 expect_exit 2 "${RUN[@]}" --out "$WORK/bad"
expect_output "outside a world of 2"
WORLD_SIZE=2 RANK=0 expect_exit 2 "${RUN[@]}"
expect_output "needs --out"
WORLD_SIZE=2 RANK=0 expect_exit 2 "${RUN[@]}" --out "$WORK/bad" --nproc 2
expect_output "inside a launched job"

# SIGTERM to the launcher: every rank stops at the same step, rank 0 checkpoints, and the resumed run
# ends bit-identical to an uninterrupted one.
write_small_recipe 3000
expect_exit 0 "${RUN[@]}" --out "$WORK/long" --nproc 2 run.checkpoint_every=300
"${RUN[@]}" --out "$WORK/stopped" --nproc 2 run.checkpoint_every=300 > "$WORK/stopped.log" 2>&1 &
pid=$!
for _ in $(seq 3000); do [ -e "$WORK/stopped/checkpoints/step-300" ] && break; sleep 0.01; done
kill -TERM $pid
code=0; wait $pid || code=$?
[ $code -eq 130 ] || { cat "$WORK/stopped.log" >&2; fail "interrupted data-parallel run exited $code, expected 130"; }
[ "$(store_attr "$WORK/stopped" status)" = interrupted ] || fail "status is not interrupted"
expect_exit 0 "${RUN[@]}" --out "$WORK/stopped" --nproc 2 --resume run.checkpoint_every=300
$COMPARE "$WORK/long/run.h5" "$WORK/stopped/run.h5" || fail "interrupted + resumed differs from uninterrupted"

# A 2-rank run continued by one process (more steps on resume): the batch is global, so this is the
# one-process run up to float rounding.
write_small_recipe 400
expect_exit 0 "${RUN[@]}" --out "$WORK/switch" --nproc 2 run.steps=200
expect_exit 0 "${RUN[@]}" --out "$WORK/switch" --resume
close "$WORK/whole" "$WORK/switch" || fail "a 2-rank run continued in one process drifts from a one-process run"

# A rank that dies: the launcher stops the others and rank 0's store says failed, and why.
write_small_recipe 3000
"${RUN[@]}" --out "$WORK/crash" --nproc 2 run.checkpoint_every=300 > "$WORK/crash.log" 2>&1 &
pid=$!
for _ in $(seq 3000); do [ -e "$WORK/crash/checkpoints/step-300" ] && break; sleep 0.01; done
for child in $(pgrep -P $pid); do
  tr '\0' '\n' < "/proc/$child/environ" | grep -qx RANK=1 && kill -KILL "$child"
done
code=0; wait $pid || code=$?
[ $code -eq 137 ] || { cat "$WORK/crash.log" >&2; fail "a run whose rank 1 was killed exited $code, expected 137"; }
grep -q "rank 1 exited with 137; stopping the others" "$WORK/crash.log" || fail "the launcher did not say which rank died"
[ "$(store_attr "$WORK/crash" status)" = failed ] || fail "status is not failed after a rank died"
"$ASSAY" inspect "$WORK/crash" | grep -q "data parallel: rank 1 exited with 137" || fail "no error event names the rank"
echo "data parallel: ok"
