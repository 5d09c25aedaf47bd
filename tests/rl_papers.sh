#!/usr/bin/env bash
# The echo-chamber and EBFT studies end to end at toy size (their drivers, recipes and analysis):
# - tools/echo_chamber.sh: one pretraining, then grpo, ppo and expert iteration from it (assay run --from);
#   format_share's shares sum to 1 at every eval, pass@k lies in [0, 1], analysis/echo_chamber.py tabulates;
# - tools/ebft_study.sh: one pretraining, then SFT, RLVR and EBFT (with and without the diversity term);
#   EBFT records its feature-matching metrics and every run evaluates on the shifted distribution.
source "$(dirname "$0")/lib.sh"
cd "$ASSAY_SOURCE_DIR"
TOY=(run.device=cpu model.layers=2 model.width=32 model.heads=2 stages.0.steps=30 stages.0.warmup_steps=5 run.eval_every=10
     run.checkpoint_every=30 analyzers.1.max_prompts=8 analyzers.1.samples=4 'analyzers.1.k=[1,4]')

SIZES=small ONLY="grpo-kl0 ppo-kl1e-2 ei" ASSAY=$ASSAY expect_exit 0 bash tools/echo_chamber.sh "$WORK/ec" "${TOY[@]}" \
  analyzers.0.max_prompts=8 stages.1.steps=3
python3 - "$WORK/ec" <<'PY' || fail "echo chamber: runs missing, not done, or metrics out of range"
import sys, h5py, numpy as np
out = sys.argv[1]
for run in ["small-pretrain", "small-grpo-kl0", "small-ppo-kl1e-2", "small-ei"]:
    f = h5py.File(f"{out}/{run}/run.h5", "r")
    assert f.attrs["status"] == "done", (run, f.attrs["status"])
    m = lambda name: f[f"/metrics/{name}/value"][:]
    shares = sum(m(f"eval.test.format.{form}.share") for form in ["function_code", "tagged_code", "prose", "none"])
    assert np.allclose(shares, 1), (run, shares)
    for k in (1, 4):
        assert np.all((m(f"eval.test.pass@{k}") >= 0) & (m(f"eval.test.pass@{k}") <= 1)), run
    if run != "small-pretrain":
        assert "started_from" in f.attrs, run
assert "train.value_loss" in h5py.File(f"{out}/small-ppo-kl1e-2/run.h5", "r")["metrics"]
PY
expect_exit 0 python3 analysis/echo_chamber.py "$WORK/ec"
expect_output "| small | ppo-kl1e-2 |"

SEEDS=0 ASSAY=$ASSAY expect_exit 0 bash tools/ebft_study.sh "$WORK/ebft" "${TOY[@]}" model.layers=3 stages.1.steps=3
python3 - "$WORK/ebft" <<'PY' || fail "ebft study: runs missing, not done, or metrics missing"
import sys, h5py, numpy as np
out = sys.argv[1]
for run in ["sft-s0", "rlvr-s0", "ebft-s0", "ebft-d0-s0"]:
    f = h5py.File(f"{out}/{run}/run.h5", "r")
    assert f.attrs["status"] == "done", (run, f.attrs["status"])
    names = set(f["metrics"])
    assert {"eval.test.answer_nll", "eval.test.pass@1"} <= names, (run, names)
    if not run.startswith("ebft"):
        continue
    for name in ["train.alignment", "train.diversity", "train.effective_reward", "train.ce", "eval.test.loss",
                 "eval.test.greedy_correct", "eval.test.answer_nll", "eval.test.pass@1"]:
        assert name in names, (run, name)
    a = f["/metrics/train.alignment/value"][:]
    assert np.all((a >= -1) & (a <= 1)), a
PY
