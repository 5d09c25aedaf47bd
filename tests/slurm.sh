#!/usr/bin/env bash
# `assay sweep --launcher slurm` against a real single-node Slurm cluster started here (slurmctld + slurmd
# + munge from Debian): an array job with a failing task, a task cancelled while it runs, and a task
# told by SIGUSR1 that its time is up, which checkpoints, requeues itself and resumes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/slurm_cluster.sh"
for tool in slurmctld slurmd munged sbatch; do
  command -v $tool > /dev/null || fail "$tool is missing (bash tools/setup.sh installs slurm and munge)"
done
trap 'slurm_down; rm -rf "$WORK"' EXIT
slurm_up "$WORK/slurm" || { cat "$WORK"/slurm/log/* >&2; fail "the local Slurm cluster did not start"; }

wait_queue() {  # until job $1 has left the queue, at most 120 s
  for _ in $(seq 240); do [ -z "$(squeue -h -r -j "$1" -o %i 2>/dev/null)" ] && return 0; sleep 0.5; done
  fail "job $1 still queued after 120 s"
}

write_small_recipe 60
cat > "$WORK/sweep.toml" <<TOML
extends = "small.toml"
[run]
name = "slurm"
[sweep]
[sweep.axes]
"optimizer.lr" = [0.003, 0.03]
"analyzers.2.parameters" = [["u"], ["nope"]]
TOML
expect_exit 1 "$ASSAY" sweep "$WORK/sweep.toml" --launcher slurm --jobs 2 --wait --out "$WORK/sw"
expect_output "submitted Slurm array job"
expect_output "total 4: done 2 failed 2"
grep -q -- "--array=0-3%2" "$WORK/sw/slurm/array.sh" || fail "array.sh lacks --array=0-3%2"
ls "$WORK"/sw/slurm/*_3.out > /dev/null || fail "no per-task output file"

# Cancel a running task: it checkpoints (SIGTERM) and ends interrupted; `assay sweep` later resumes it.
write_small_recipe 400000
cat > "$WORK/long.toml" <<TOML
extends = "small.toml"
[run]
name = "long"
checkpoint_every = 200
[sweep]
seeds = 1
TOML
expect_exit 0 "$ASSAY" sweep "$WORK/long.toml" --launcher slurm --out "$WORK/long"
job=$(tail -1 "$WORK/long/slurm/jobs")
for _ in $(seq 600); do ls -d "$WORK"/long/*/checkpoints/step-*[0-9] > /dev/null 2>&1 && break; sleep 0.1; done
scancel "${job}_0"
wait_queue "$job"
expect_exit 0 "$ASSAY" status "$WORK/long"
expect_output "interrupted"

# SIGUSR1 (what --signal sends before the time limit): checkpoint, requeue, resume from the checkpoint.
write_small_recipe 3000
cat > "$WORK/usr1.toml" <<TOML
extends = "small.toml"
[run]
name = "usr1"
checkpoint_every = 200
[sweep]
seeds = 1
TOML
expect_exit 0 "$ASSAY" sweep "$WORK/usr1.toml" --launcher slurm --out "$WORK/usr1"
job=$(tail -1 "$WORK/usr1/slurm/jobs")
for _ in $(seq 600); do ls -d "$WORK"/usr1/*/checkpoints/step-*[0-9] > /dev/null 2>&1 && break; sleep 0.1; done
scancel --batch --signal=USR1 "${job}_0"
# Slurm holds a requeued job back (Reason=BeginTime, about two minutes); release it after slurmd has
# cleaned up the previous instance (at once gives "Job already killed, do not launch batch job").
for _ in $(seq 200); do
  squeue -h -r -j "$job" -o %r 2> /dev/null | grep -q BeginTime && { sleep 3; scontrol update JobId="${job}_0" StartTime=now; break; }
  sleep 0.1
done
wait_queue "$job"
expect_exit 0 "$ASSAY" status "$WORK/usr1"
expect_output "total 1: done 1"
run_dir=$(dirname "$(ls "$WORK"/usr1/*/run.h5)")
grep -q "requeueing Slurm job" "$run_dir/run.log" || fail "the task did not requeue itself"
grep -q "resuming" "$run_dir/run.log" || fail "the requeued task did not resume"
python3 -c 'import h5py,sys; s=h5py.File(sys.argv[1])["metrics/train.loss/step"][()]; assert list(s) == list(range(1, 3001))' \
  "$run_dir/run.h5" || fail "the requeued run's steps are not exactly 1..3000"
echo "slurm: ok"
