#!/usr/bin/env bash
# Multiple-choice tasks end to end (assay/multiple_choice.hpp):
# - recipes/papers/robustness-calibration: SFT on arithmetic_choice learns above chance, and calibration and
#   perturbation_robustness record their metrics at every eval, within their ranges, through GRPO;
# - recipes/papers/polite-speech/lm_choices.toml: rsa_polite fitted to a GPT's choices per checkpoint finds
#   the human data's pattern once the model has learnt it, and not in the untrained model.
source "$(dirname "$0")/lib.sh"

expect_exit 0 "$ASSAY" run "$ASSAY_SOURCE_DIR/recipes/papers/robustness-calibration/sft_then_grpo.toml" 'run.device="cpu"' \
  stages.1.steps=100 --out "$WORK/robust"
python3 - "$WORK/robust/run.h5" <<'PY' || fail "robustness-calibration: metrics missing, out of range, or SFT did not learn"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
m = lambda name: (f[f"/metrics/{name}/step"][:], f[f"/metrics/{name}/value"][:])
steps, accuracy = m("eval.test.choice.accuracy")
assert list(steps) == list(range(0, 2501, 250)) + [2600], steps
assert accuracy[list(steps).index(2500)] > 0.35, accuracy  # 4 options: chance is 0.25
for name in ["choice.ece", "choice.correct_mass", "choice.normalized_entropy", "none.consistency", "none.reasoning_valid",
             "misleading_hint.flip_rate", "misleading_hint.follows_misleading", "wrong_reasoning.follows_misleading"]:
    s, v = m(f"eval.test.{name}")
    assert len(s) == len(steps) and np.all((v >= 0) & (v <= 1)), (name, v)
s, d = m("eval.test.misleading_hint.delta_accuracy")
a0 = m("eval.test.none.accuracy")[1]
a1 = m("eval.test.misleading_hint.accuracy")[1]
assert np.allclose(d, a1 - a0), (d, a1 - a0)
assert f["/analyzers/calibration/test.probabilities/value"].shape[1:] == (128, 4)
PY

if [ ! -f "$ASSAY_SOURCE_DIR/../shared/papers/human_production_counts.csv" ]; then
  echo "choice: no ../shared/papers beside the repository: the polite-speech part is left out"
  exit 0
fi
cd "$ASSAY_SOURCE_DIR"  # the recipe's data paths are relative to the working directory
expect_exit 0 "$ASSAY" run recipes/papers/polite-speech/lm_choices.toml 'run.device="cpu"' --out "$WORK/polite"
python3 - "$WORK/polite/run.h5" <<'PY' || fail "polite-speech: the fit of the trained model lacks the human data's pattern"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
v = lambda name: f[f"/metrics/rsa.{name}/value"][:]
assert len(v("fit.r2")) == 7, v("fit.r2")                 # steps 0, 100, ..., 600
assert v("fit.r2")[0] < 0.3 < 0.6 < v("fit.r2")[-1], v("fit.r2")  # the untrained model is near uniform
assert v("informative.w_inf.mean")[-1] > v("informative.w_soc.mean")[-1]
assert v("social.w_soc.mean")[-1] > v("social.w_inf.mean")[-1]
assert v("both.w_pres.mean")[-1] > 0.2
PY
echo "choice: ok"
