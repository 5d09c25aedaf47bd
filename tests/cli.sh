#!/usr/bin/env bash
# The `assay` command end to end: help, validate, run, inspect, plugins, and the exit codes.
source "$(dirname "$0")/lib.sh"
write_small_recipe 60

for cmd in "" run validate plugins inspect; do expect_exit 0 "$ASSAY" $cmd --help; done
expect_exit 0 "$ASSAY" --version
expect_output "LibTorch"

expect_exit 0 "$ASSAY" validate "$WORK/small.toml" --plugins "$WORK" optimizer.lr=0.5
expect_output 'lr = 0.5'
expect_output 'beta2 = 0.999'

printf '[run]\nsteps = "x"\n[task]\nuse = "modular_adition"\n[model]\nuse = "quadratic_mlp"\nwidht = 3\n' > "$WORK/bad.toml"
expect_exit 2 "$ASSAY" validate "$WORK/bad.toml"
expect_output "$WORK/bad.toml:2:9: run.steps: expected integer >= 0, got string \"x\""
expect_output "task.use: unknown task 'modular_adition'; did you mean 'modular_addition'?"
expect_output "$WORK/bad.toml:7:1: model.widht: unknown key for model 'quadratic_mlp'; did you mean 'width'?"
expect_output "missing [optimizer]"
expect_exit 2 "$ASSAY" run "$WORK/bad.toml" --out "$WORK/never"
[ ! -e "$WORK/never/run.h5" ] || fail "an invalid recipe created a run"
expect_exit 2 "$ASSAY" run "$WORK/missing.toml"

expect_exit 0 "$ASSAY" run "$WORK/small.toml" --out "$WORK/run"
expect_output "run done"
[ "$(store_attr "$WORK/run" status)" = done ] || fail "status is not done"
expect_exit 2 "$ASSAY" run "$WORK/small.toml" --out "$WORK/run"
expect_output "already holds a run"
expect_exit 2 "$ASSAY" run "$WORK/small.toml" --resume
expect_output "--resume needs --out"

expect_exit 0 "$ASSAY" inspect "$WORK/run"
expect_output "status   done"
expect_output "/metrics/eval.train.accuracy  rows 3, last step 60"
expect_output "/analyzers/fourier_features/u.max_power"
expect_exit 2 "$ASSAY" inspect "$WORK/nothing-here"

expect_exit 0 "$ASSAY" plugins optimizer
expect_output "optimizer adamw"
expect_output "weight_decay = 0.01"
expect_exit 2 "$ASSAY" plugins no_such_component

expect_exit 4 "$ASSAY" plugins --plugins "$ASSAY_BINARY_DIR/tests/mismatched/abi"
expect_output "assay-mismatched.so: plugin 'mismatched' was built against assay SDK ABI"
expect_output "rebuild the plugin"
ASSAY_PLUGIN_PATH="$ASSAY_BINARY_DIR/tests/mismatched/torch" expect_exit 4 "$ASSAY" run "$WORK/small.toml" --out "$WORK/x"
expect_output "was built against LibTorch 1.13.1"

# A non-terminal gets plain progress lines, and the run's log file gets every line.
expect_exit 0 "$ASSAY" run "$WORK/small.toml" --out "$WORK/run2" run.steps=30
expect_output "main step 30/30 (100%)"
grep -q "run done" "$WORK/run2/run.log" || fail "run.log lacks the final line"

# Divergence: a huge learning rate on the cubic model; the run stops and says so.
expect_exit 3 "$ASSAY" run "$WORK/small.toml" --out "$WORK/diverged" optimizer.use=sgd optimizer.lr=1e6 \
  model.init_std=1.0 run.steps=200
[ "$(store_attr "$WORK/diverged" status)" = diverged ] || fail "status is not diverged"
expect_exit 0 "$ASSAY" inspect "$WORK/diverged"
expect_output "diverged  training loss is"
# Schedules, gradient accumulation and clipping, read back from the stores.
expect_exit 0 "$ASSAY" run "$WORK/small.toml" --out "$WORK/cosine" run.steps=50 run.lr_schedule=cosine \
  run.warmup_steps=10 run.min_lr_ratio=0.1
expect_exit 0 "$ASSAY" run "$WORK/small.toml" --out "$WORK/accum" run.steps=50 run.grad_accum=3
# More micro-batches than the batch has rows: said plainly (it was a reshape error from inside the model).
expect_exit 1 "$ASSAY" run "$WORK/small.toml" --out "$WORK/accum-too-fine" run.steps=5 task.batch_size=4 run.grad_accum=8
expect_output "the task's batch of 4 rows cannot be cut into 8 micro-batches (run.grad_accum"
expect_exit 0 "$ASSAY" run "$WORK/small.toml" --out "$WORK/noclip" run.steps=50 optimizer.use=sgd optimizer.lr=0.5 model.init_std=0.5
expect_exit 0 "$ASSAY" run "$WORK/small.toml" --out "$WORK/clip" run.steps=50 optimizer.use=sgd optimizer.lr=0.5 model.init_std=0.5 \
  run.grad_clip=1e-6
python3 - "$WORK" <<'PY' || fail "schedule, accumulation or clipping misbehaves"
import math, sys, h5py, numpy as np
w = sys.argv[1]
read = lambda run, name: h5py.File(f"{w}/{run}/run.h5")[f"metrics/{name}/value"][()]
lr = read("cosine", "train.lr")
s = np.arange(50)
expected = np.where(s < 10, 0.01 * (s + 1) / 10,
                    0.01 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * np.clip((s - 10) / 40, 0, 1)))))
assert np.allclose(lr, expected, rtol=1e-12), (lr[:12], expected[:12])
# Three micro-batches give the same updates up to float32 rounding.
full, accum = read("run2", "train.loss")[:30], read("accum", "train.loss")[:30]
assert np.allclose(full, accum, rtol=1e-4, atol=1e-6), np.abs(full - accum).max()
noclip, clip = read("noclip", "train.loss"), read("clip", "train.loss")
assert noclip[-1] < noclip[0] - 0.1, (noclip[0], noclip[-1])   # SGD learns without clipping
assert abs(clip[-1] - clip[0]) < 1e-3, (clip[0], clip[-1])      # a 1e-6 norm budget barely moves it
PY
echo "cli: ok"
