#!/usr/bin/env bash
# A writer killed at any moment leaves a run store that opens and holds everything up to its last flush.
source "$(dirname "$0")/lib.sh"
write_small_recipe 100000
for i in $(seq 1 12); do
  out="$WORK/run$i"
  "$ASSAY" run "$WORK/small.toml" --out "$out" run.eval_every=7 run.checkpoint_every=0 > /dev/null 2>&1 &
  pid=$!
  sleep "$(python3 -c "import random; print(random.Random($i).uniform(0.5, 2.0))")"
  kill -9 $pid; wait $pid 2>/dev/null || true
  [ -e "$out/run.h5" ] || continue  # killed before the store was created
  python3 - "$out/run.h5" <<'PY' || fail "store of run $i is unreadable after SIGKILL"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["status"] == "running", f.attrs["status"]
    steps = f["metrics/train.loss/step"][()] if "train.loss" in f["metrics"] else []
    assert all(b == a + 1 for a, b in zip(steps, steps[1:])), "train.loss steps are not consecutive"
    if "eval.train.accuracy" in f["metrics"]:  # absent when killed before the first eval's flush
        assert f["metrics/eval.train.accuracy/step"][0] == 0
        for name in ("u.max_power", "u.frequency"):
            series = f["analyzers/fourier_features/" + name]
            assert series["value"].shape[0] == len(series["step"])
PY
done
echo "crash: ok"
