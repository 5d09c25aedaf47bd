#!/usr/bin/env bash
# In-situ changes of precision scheme (docs/precision.md): [[precision.switch]] at_step within a stage, and
# --from (a new run from another run's checkpoint, here under another scheme).
source "$(dirname "$0")/lib.sh"
COMPARE="python3 $ASSAY_SOURCE_DIR/tests/compare_stores.py"

# A small MX proxy run (teacher_student + residual_mlp, whose GEMMs are assay::Linear), constant learning rate.
cat > "$WORK/proxy.toml" <<TOML
[run]
name = "proxy"
device = "cpu"
threads = 1
steps = 60
eval_every = 20
checkpoint_every = 10
keep_checkpoints = 10
[task]
use = "teacher_student"
dim = 32
teacher_depth = 2
batch = 64
test_size = 128
[model]
use = "residual_mlp"
width = 32
depth = 2
[optimizer]
use = "adamw"
lr = 1e-3
[algorithm]
use = "mse"
[precision]
use = "mx"
weights = "fp4_e2m1"
activations = "fp4_e2m1"
TOML
cat > "$WORK/switch.toml" <<TOML
extends = "proxy.toml"
[[precision.switch]]
at_step = 31
use = "fp32"
[[precision.switch]]
at_step = 46
weights = "fp8_e4m3"              # the same plugin as [precision]: its other keys carry over
TOML
cat > "$WORK/staged.toml" <<TOML
extends = "proxy.toml"
[[stages]]
steps = 30
[[stages]]
steps = 15
keep_optimizer = true
[stages.precision]
use = "fp32"
[[stages]]
steps = 15
keep_optimizer = true
[stages.precision]
use = "mx"
weights = "fp8_e4m3"
activations = "fp4_e2m1"
TOML

# A switch is the same as a stage boundary that keeps the optimizer (constant lr): bit for bit, and both
# differ from never switching.
expect_exit 0 "$ASSAY" run "$WORK/switch.toml" --out "$WORK/switch"
expect_exit 0 "$ASSAY" run "$WORK/staged.toml" --out "$WORK/staged"
expect_exit 0 "$ASSAY" run "$WORK/proxy.toml" --out "$WORK/plain"
python3 - "$WORK/switch/run.h5" "$WORK/staged/run.h5" "$WORK/plain/run.h5" <<'PY' || fail "a precision switch differs from the staged equivalent"
import sys, h5py, numpy as np
a, b, c = (h5py.File(p, "r") for p in sys.argv[1:])
def series(f, name):
    return dict(zip(f[f"/metrics/{name}/step"][()].tolist(), f[f"/metrics/{name}/value"][()].tolist()))
for name in ("train.loss", "eval.test.loss"):  # (stages also evaluate at their ends: compare common steps)
    x, y, z = series(a, name), series(b, name), series(c, name)
    assert set(x) <= set(y) and all(x[k] == y[k] for k in x), (name, x, y)
    assert all(x[k] == z[k] for k in x if k <= 30), name  # the same as never switching up to step 30
    assert any(x[k] != z[k] for k in x if k > 30), name
text = lambda x: x.decode() if isinstance(x, bytes) else x
events = [(int(e["step"]), text(e["kind"]), text(e["message"])) for e in a["/events"][()]]
switches = [(s, m) for s, k, m in events if k == "precision"]
assert [s for s, _ in switches] == [31, 46] and switches[0][1].startswith("fp32") and switches[1][1].startswith("mx"), events
PY
expect_exit 0 "$ASSAY" validate "$WORK/switch.toml"
expect_output "[[precision.switch]]"
expect_output "at_step = 46"
expect_output 'activations = "fp4_e2m1"'

# Killed after a switch (a checkpoint at step 40), resumed: the scheme at step 40 is back, bit for bit.
cp -r "$WORK/switch" "$WORK/cut"
python3 - "$WORK/cut" <<'PY'
import sys, shutil, pathlib
for d in pathlib.Path(sys.argv[1], "checkpoints").glob("step-*"):
    if int(d.name.split("-")[1]) > 40:
        shutil.rmtree(d)
PY
expect_exit 0 "$ASSAY" run "$WORK/switch.toml" --out "$WORK/cut" --resume
expect_output "resuming"
$COMPARE "$WORK/switch/run.h5" "$WORK/cut/run.h5" || fail "a run resumed between two switches differs"

# Bad switches name the key and what was expected.
expect_exit 2 "$ASSAY" validate "$WORK/switch.toml" precision.switch.0.at_step=0
expect_output "precision.switch[0].at_step: expected the global step (an integer >= 1)"
expect_exit 2 "$ASSAY" validate "$WORK/switch.toml" precision.switch.1.at_step=20
expect_output "precision.switch[1].at_step: at_step = 20 must lie in steps 32..60"
expect_exit 2 "$ASSAY" validate "$WORK/switch.toml" precision.switch.0.weights=fp9
expect_output "precision.switch[0].weights"
expect_exit 2 "$ASSAY" validate "$WORK/staged.toml" precision.switch.0.at_step=5
expect_output "write it as [[stages.precision.switch]]"

# --from: a new run from the plain run's step-30 checkpoint. Under the same recipe it repeats the plain run's
# steps 31..60 bit for bit; under fp32 it is the switch run's steps 31..45, in a store of its own.
expect_exit 0 "$ASSAY" run "$WORK/proxy.toml" --out "$WORK/from-same" --from "$WORK/plain/checkpoints/step-30"
expect_output "starting from"
expect_exit 0 "$ASSAY" run "$WORK/proxy.toml" 'precision={use="fp32"}' run.steps=45 --out "$WORK/from-fp32" \
  --from "$WORK/plain/checkpoints/step-30"
python3 - "$WORK" <<'PY' || fail "--from does not continue the checkpoint"
import sys, h5py, numpy as np
w = sys.argv[1]
loss = lambda run: (h5py.File(f"{w}/{run}/run.h5", "r")["/metrics/train.loss/step"][()],
                    h5py.File(f"{w}/{run}/run.h5", "r")["/metrics/train.loss/value"][()])
s, v = loss("from-same")
assert list(s) == list(range(31, 61)), s
ps, pv = loss("plain")
assert np.array_equal(v, pv[30:]), (v, pv[30:])
s, v = loss("from-fp32")
ss, sv = loss("switch")
assert list(s) == list(range(31, 46)) and np.array_equal(v, sv[30:45]), (v, sv[30:45])
f = h5py.File(f"{w}/from-fp32/run.h5", "r")
assert f.attrs["started_from"].endswith("plain/checkpoints/step-30"), f.attrs["started_from"]
PY
expect_exit 2 "$ASSAY" run "$WORK/proxy.toml" --out "$WORK/from-bad" --from "$WORK/nothing"
expect_output "not a checkpoint"
expect_exit 2 "$ASSAY" run "$WORK/proxy.toml" run.steps=30 --out "$WORK/from-late" --from "$WORK/plain/checkpoints/step-30"
expect_output "nothing to train"
expect_exit 0 "$ASSAY" run "$WORK/proxy.toml" --out "$WORK/from-dir" --from "$WORK/plain/checkpoints/step-50"
expect_exit 0 "$ASSAY" run "$WORK/proxy.toml" run.steps=70 --out "$WORK/from-run" --from "$WORK/plain"  # its newest: step 60
python3 -c 'import h5py,sys; s=h5py.File(sys.argv[1])["/metrics/train.loss/step"][()]; assert list(s) == list(range(61, 71)), s' \
  "$WORK/from-run/run.h5" || fail "--from RUN_DIR did not start at its newest checkpoint"
echo "precision_switch: ok"
