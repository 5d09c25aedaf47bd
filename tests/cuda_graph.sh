#!/usr/bin/env bash
# run.cuda_graph: where the step cannot be captured (no CUDA device here, or a component that is not
# capturable) the run trains eagerly, says why, and gives the eager run's numbers bit for bit. On a CUDA
# machine: the captured step trains like the eager one (a cosine LR schedule and clipping included, so
# values the graph must read afresh each step are exercised).
source "$(dirname "$0")/lib.sh"
write_small_recipe 200
COMPARE="python3 $ASSAY_SOURCE_DIR/tests/compare_stores.py"

expect_exit 0 "$ASSAY" run "$WORK/small.toml" --out "$WORK/eager"
expect_exit 0 "$ASSAY" run "$WORK/small.toml" --out "$WORK/graph-cpu" run.cuda_graph=true
expect_output "run.cuda_graph: stage main trains eagerly: the run is not on a CUDA device"
$COMPARE "$WORK/eager/run.h5" "$WORK/graph-cpu/run.h5" || fail "the eager fallback differs from an eager run"

if ! python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "cuda_graph: ok (CPU fallback; no CUDA device for the captured step)"
  exit 0
fi
LM=("$ASSAY" run "$ASSAY_SOURCE_DIR/recipes/papers/optimizers/lm.toml" run.device=cuda run.steps=120 run.eval_every=60
    run.checkpoint_every=0 run.warmup_steps=10 run.grad_clip=0.5 model.layers=2 optimizer.implementation=fused)
# compare_runs EAGER GRAPHED TOLERANCE WHAT: the captured step trains like the eager one.
compare_runs() {
  python3 - "$1/run.h5" "$2/run.h5" "$3" <<'PY' || fail "the captured step trains differently from the eager one ($4)"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
for key in ("train.loss", "train.lr", "train.grad_norm", "eval.val.loss"):
    x, y = a[f"metrics/{key}/value"][:], b[f"metrics/{key}/value"][:]
    err = np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-6))
    print(f"{key}: {len(x)} values, max relative difference {err:.2e}")
    assert x.shape == y.shape and err < float(sys.argv[3]), key
first, last = a["metrics/train.loss/value"][:10].mean(), a["metrics/train.loss/value"][-10:].mean()
print(f"train.loss {first:.3f} -> {last:.3f}")
assert last < first - 0.1, "the LM did not train"
PY
}
expect_exit 0 "${LM[@]}" --out "$WORK/lm-eager"
expect_exit 0 "${LM[@]}" --out "$WORK/lm-graph" run.cuda_graph=true
expect_output "run.cuda_graph: step 3 captured"
compare_runs "$WORK/lm-eager" "$WORK/lm-graph" 1e-3 float32
# bf16 autocast: gpt's pre-LN norms run through assay::fused_norm, eagerly and inside the graph.
expect_exit 0 "${LM[@]}" --out "$WORK/bf16-eager" run.autocast=bf16
expect_exit 0 "${LM[@]}" --out "$WORK/bf16-graph" run.autocast=bf16 run.cuda_graph=true
compare_runs "$WORK/bf16-eager" "$WORK/bf16-graph" 2e-2 bf16
# A graphed step's results are read during the next step: every step's row arrives, in order, and the newest ones
# before a checkpoint (a run resumed from step 100 trains as the uninterrupted one) and before a divergence.
GRAPHED=("${LM[@]}" run.cuda_graph=true run.lr_schedule=constant run.checkpoint_every=50 run.eval_every=50)
expect_exit 0 "${GRAPHED[@]}" --out "$WORK/graphed-whole"
expect_exit 0 "${GRAPHED[@]}" --out "$WORK/graphed-resumed" run.steps=100
expect_exit 0 "${GRAPHED[@]}" --out "$WORK/graphed-resumed" --resume
python3 - "$WORK/graphed-whole/run.h5" "$WORK/graphed-resumed/run.h5" <<'PY' || fail "a resumed graphed run lost rows or trains differently"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
for f in (a, b):
    steps = f["metrics/train.loss/step"][:]
    assert list(steps) == list(range(1, 121)), steps
x, y = a["metrics/train.loss/value"][:], b["metrics/train.loss/value"][:]
print(f"resumed graphed run: max relative loss difference {np.max(np.abs(x - y) / np.abs(x)):.2e}")
assert np.allclose(x, y, rtol=1e-3)
PY
expect_exit 3 "${LM[@]}" --out "$WORK/lm-graph-diverged" run.cuda_graph=true optimizer.lr=1e38 run.grad_clip=0
expect_output "marking the run diverged"
[ "$(store_attr "$WORK/lm-graph-diverged" status)" = diverged ] || fail "a graphed run's divergence is not recorded"
expect_exit 0 "${LM[@]}" --out "$WORK/lm-loop" run.cuda_graph=true optimizer.implementation=loop
expect_output "optimizer 'adamw' is not capturable"
echo "cuda_graph: ok (CPU fallback and the captured step on CUDA)"
