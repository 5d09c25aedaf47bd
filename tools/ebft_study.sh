#!/usr/bin/env bash
# The EBFT study (recipes/papers/ebft/, docs/results/ebft.md): one pretraining, then SFT, RLVR and EBFT
# (and EBFT without the diversity term) from it for each seed in $SEEDS, all in parallel on this machine.
# Extra arguments are overrides for every run (e.g. run.device=cuda).
#   bash tools/ebft_study.sh OUT_DIR [key=value ...]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/ebft_study.sh OUT_DIR [key=value ...]}
shift
ASSAY=${ASSAY:-build/bin/assay}
R=recipes/papers/ebft
mkdir -p "$OUT"
pretrain_args=()
for arg in "$@"; do [[ $arg == stages.1.* ]] || pretrain_args+=("$arg"); done
"$ASSAY" run $R/pretrain.toml "${pretrain_args[@]}" --out "$OUT/pretrain" > "$OUT/pretrain.console" 2>&1 \
  || { echo "FAILED: pretrain (see $OUT/pretrain.console)"; exit 1; }
echo "pretraining done: $(date)"
failed=0
pids=()
for seed in ${SEEDS:-0 1}; do
  for variant in "sft sft" "rlvr rlvr" "ebft ebft" "ebft-d0 ebft stages.1.algorithm.diversity_coef=0"; do
    read -r name recipe overrides <<< "$variant"
    # shellcheck disable=SC2086
    "$ASSAY" run $R/$recipe.toml $overrides run.seed=$seed "$@" --from "$OUT/pretrain" --out "$OUT/$name-s$seed" \
      > "$OUT/$name-s$seed.console" 2>&1 || { echo "FAILED: $name-s$seed"; exit 1; } &
    pids+=($!)
  done
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
echo "fine-tuning done: $(date)"
exit $failed
