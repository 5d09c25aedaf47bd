#!/usr/bin/env bash
# Determinism and resume: two identical runs are bit-identical; a run killed with SIGKILL (or stopped
# with SIGINT) and resumed ends with metrics bit-identical to an uninterrupted run.
source "$(dirname "$0")/lib.sh"
write_small_recipe 3000
COMPARE="python3 $ASSAY_SOURCE_DIR/tests/compare_stores.py"
RUN=("$ASSAY" run "$WORK/small.toml" run.checkpoint_every=300)

expect_exit 0 "${RUN[@]}" --out "$WORK/a"
expect_exit 0 "${RUN[@]}" --out "$WORK/b"
$COMPARE "$WORK/a/run.h5" "$WORK/b/run.h5" || fail "two runs with the same recipe and seed differ"
expect_exit 0 "${RUN[@]}" --out "$WORK/seed1" run.seed=1
! $COMPARE "$WORK/a/run.h5" "$WORK/seed1/run.h5" > /dev/null || fail "another seed gave identical metrics"

# wait_for RUN_DIR STEP: until RUN_DIR has a checkpoint at STEP or later (older ones get pruned), while
# the background run $pid is alive, at most 180 s.
wait_for() {
  for _ in $(seq 18000); do
    local newest
    newest=$(ls "$1/checkpoints" 2> /dev/null | grep -v tmp | sed 's/step-//' | sort -n | tail -1 || true)
    [ -n "$newest" ] && [ "$newest" -ge "$2" ] && return 0
    kill -0 "$pid" 2> /dev/null || { cat "$WORK"/*.log >&2; fail "the background run ended before step $2"; }
    sleep 0.01
  done
  fail "timed out waiting for a checkpoint at step $2 in $1"
}

# SIGKILL after the step-600 checkpoint, then resume.
"${RUN[@]}" --out "$WORK/killed" > "$WORK/killed.log" 2>&1 &
pid=$!
wait_for "$WORK/killed" 300
expect_exit 2 "${RUN[@]}" --out "$WORK/killed" --resume  # a second writer is refused while the first runs
expect_output "in use by another assay process"
wait_for "$WORK/killed" 600
kill -9 $pid
code=0; wait $pid || code=$?
[ $code -eq 137 ] || fail "the run was not killed mid-way (exit $code); make the recipe longer"
[ "$(store_attr "$WORK/killed" status)" = running ] || fail "killed run's store does not read status running"
expect_exit 0 "${RUN[@]}" --out "$WORK/killed" --resume
expect_output "resuming"
[ "$(store_attr "$WORK/killed" status)" = done ] || fail "resumed run is not done"
$COMPARE "$WORK/a/run.h5" "$WORK/killed/run.h5" || fail "killed + resumed run differs from the uninterrupted one"

# SIGINT: the run checkpoints where it is, exits 130 with status interrupted; --resume finishes it.
"${RUN[@]}" --out "$WORK/interrupted" > "$WORK/interrupted.log" 2>&1 &
pid=$!
wait_for "$WORK/interrupted" 300
kill -INT $pid
code=0; wait $pid || code=$?
[ $code -eq 130 ] || fail "SIGINT: exit $code, expected 130"
[ "$(store_attr "$WORK/interrupted" status)" = interrupted ] || fail "status is not interrupted"
expect_exit 0 "${RUN[@]}" --out "$WORK/interrupted" --resume
$COMPARE "$WORK/a/run.h5" "$WORK/interrupted/run.h5" || fail "interrupted + resumed run differs"

# Resuming a finished run does nothing and keeps it done.
expect_exit 0 "${RUN[@]}" --out "$WORK/a" --resume
expect_output "already finished"

# keep_optimizer: two stages that continue one optimizer are bit-identical to one stage of the same length (the
# in-situ setting: constant learning rate, no warm-up); a fresh optimizer at the boundary is not.
cat > "$WORK/staged.toml" <<TOML
extends = "small.toml"
[[stages]]
steps = 100
[[stages]]
steps = 100
keep_optimizer = true
TOML
expect_exit 0 "$ASSAY" run "$WORK/small.toml" run.steps=200 --out "$WORK/one-stage"
expect_exit 0 "$ASSAY" run "$WORK/staged.toml" --out "$WORK/kept"
$COMPARE "$WORK/one-stage/run.h5" "$WORK/kept/run.h5" || fail "keep_optimizer: two stages differ from one"
expect_exit 0 "$ASSAY" run "$WORK/staged.toml" stages.1.keep_optimizer=false --out "$WORK/fresh"
! $COMPARE "$WORK/one-stage/run.h5" "$WORK/fresh/run.h5" > /dev/null || fail "a fresh optimizer at the boundary changed nothing"
expect_exit 2 "$ASSAY" run "$WORK/staged.toml" stages.1.optimizer.lr=0.02 --out "$WORK/mismatch"

# A finished run resumed with more steps continues its last stage: the same as running them all at once.
expect_exit 0 "$ASSAY" run "$WORK/small.toml" run.steps=100 --out "$WORK/extended"
expect_exit 0 "$ASSAY" run "$WORK/small.toml" run.steps=200 --out "$WORK/extended" --resume
$COMPARE "$WORK/one-stage/run.h5" "$WORK/extended/run.h5" || fail "a run extended on resume differs from one run"

# Mixed precision (run.autocast): fp16 records its loss scale and resumes exactly; bf16 changes the numbers.
expect_exit 0 "$ASSAY" run "$WORK/small.toml" run.steps=200 run.autocast=fp16 --out "$WORK/fp16"
expect_exit 0 "$ASSAY" run "$WORK/small.toml" run.steps=100 run.autocast=fp16 --out "$WORK/fp16-resumed"
expect_exit 0 "$ASSAY" run "$WORK/small.toml" run.steps=200 run.autocast=fp16 --out "$WORK/fp16-resumed" --resume
$COMPARE "$WORK/fp16/run.h5" "$WORK/fp16-resumed/run.h5" || fail "an fp16 autocast run resumed differs"
python3 -c 'import h5py,sys; v=h5py.File(sys.argv[1])["metrics/train.loss_scale/value"][()]; assert len(v) == 200 and (v == 65536).all(), v' \
  "$WORK/fp16/run.h5" || fail "no loss scale recorded for fp16"
expect_exit 0 "$ASSAY" run "$WORK/small.toml" run.steps=200 run.autocast=bf16 --out "$WORK/bf16"
! $COMPARE "$WORK/one-stage/run.h5" "$WORK/bf16/run.h5" > /dev/null || fail "bf16 autocast changed nothing"
echo "resume: ok"
