#!/usr/bin/env bash
# Sweeps on the local process pool: a failing run does not stop the others, a second `assay sweep`
# skips finished runs and resumes interrupted ones, `assay status` reports each run.
source "$(dirname "$0")/lib.sh"
write_small_recipe 60
cat > "$WORK/sweep.toml" <<TOML
extends = "small.toml"
[run]
name = "sw"
[sweep]
seeds = 2
[sweep.axes]
"optimizer.lr" = [0.003, 0.03]
"analyzers.2.parameters" = [["u"], ["nope"]]
TOML
expect_exit 2 "$ASSAY" run "$WORK/sweep.toml" --out "$WORK/x"
expect_output "defines a [sweep]"
expect_exit 0 "$ASSAY" sweep "$WORK/sweep.toml" --dry-run --out "$WORK/sw"
expect_output "8 runs (grid)"
expect_output 'analyzers.2.parameters=["nope"] optimizer.lr=0.03 run.seed=1'
[ ! -d "$WORK/sw" ] || fail "--dry-run created the sweep directory"

# Runs with parameters = ["nope"] fail at start-up (no such model parameter); the others finish.
expect_exit 1 "$ASSAY" sweep "$WORK/sweep.toml" --jobs 2 --out "$WORK/sw"
expect_output "4 finished (0 diverged), 4 failed"
expect_exit 0 "$ASSAY" status "$WORK/sw"
expect_output "total 8: done 4 failed 4"
expect_output "fourier_features: the model has no 2-D parameter 'nope'"
cp "$WORK/out" "$WORK/status.txt"
done_id=$(grep -m1 " done " "$WORK/status.txt" | awk '{print $2}')
index=$(grep -m1 " done " "$WORK/status.txt" | awk '{print $1}')
stamp=$(store_attr "$WORK/sw/$done_id" finished)
expect_exit 0 "$ASSAY" sweep "$WORK/sweep.toml" --dry-run --out "$WORK/sw"
expect_output "[done]"

# One run of the sweep by index (what a Slurm array task executes): finished runs are left alone.
expect_exit 0 "$ASSAY" run --sweep "$WORK/sweep.toml" --index "$index" --out "$WORK/sw"
expect_output "already done"
[ "$(store_attr "$WORK/sw/$done_id" finished)" = "$stamp" ] || fail "a finished run was run again"

# A sweep killed mid-way (launcher and runs) is completed by running it again.
cat > "$WORK/long.toml" <<TOML
extends = "small.toml"
[run]
name = "long"
steps = 3000
checkpoint_every = 200
[sweep]
seeds = 4
TOML
setsid "$ASSAY" sweep "$WORK/long.toml" --jobs 2 --out "$WORK/long" > "$WORK/long.log" 2>&1 &
pid=$!
for _ in $(seq 3000); do ls -d "$WORK"/long/*/checkpoints/step-*[0-9] > /dev/null 2>&1 && break; sleep 0.01; done
kill -9 -- -$pid; wait $pid 2>/dev/null || true
expect_exit 0 "$ASSAY" status "$WORK/long"
grep -q "running" "$WORK/out" || fail "no run was interrupted mid-way: make the runs longer"
# SIGTERM to the launcher alone reaches its runs: they checkpoint, say interrupted, and it exits 130.
# (Runs long enough that none can finish first, even on a fast machine; the signal once a run has checkpointed.)
"$ASSAY" sweep "$WORK/long.toml" run.steps=1000000 --jobs 2 --out "$WORK/term" > "$WORK/term.log" 2>&1 &
pid=$!
for _ in $(seq 3000); do ls -d "$WORK"/term/*/checkpoints/step-*[0-9] > /dev/null 2>&1 && break; sleep 0.01; done
kill -TERM $pid
code=0; wait $pid || code=$?
[ $code -eq 130 ] || { cat "$WORK/term.log" >&2; fail "a sweep sent SIGTERM exited $code, expected 130"; }
expect_exit 0 "$ASSAY" status "$WORK/term"
grep -q "interrupted" "$WORK/out" || fail "SIGTERM to the sweep interrupted none of its runs"
expect_exit 0 "$ASSAY" sweep "$WORK/long.toml" --jobs 2 --out "$WORK/long"
expect_exit 0 "$ASSAY" status "$WORK/long"
expect_output "total 4: done 4"
for store in "$WORK"/long/*/run.h5; do
  python3 -c 'import h5py,sys; s=h5py.File(sys.argv[1])["metrics/train.loss/step"][()]; assert list(s) == list(range(1, 3001)), (s[:3], len(s))' "$store" \
    || fail "$store: train.loss steps are not exactly 1..3000 after the resumed sweep"
done
echo "sweep: ok"
