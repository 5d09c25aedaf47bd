#!/usr/bin/env bash
# The echo-chamber study (recipes/papers/echo-chamber/, docs/results/echo-chamber.md): pretrain both model
# sizes, then every RL variant from each pretraining (assay run --from), all in parallel on this machine
# (on a GPU the runs share it). Extra arguments are overrides for every run (e.g. run.device=cuda);
# SIZES="large" runs one size only; ONLY="grpo-kl0 ei" only those RL variants.
#   bash tools/echo_chamber.sh OUT_DIR [key=value ...]
#   python3 analysis/echo_chamber.py OUT_DIR          # the table of results
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/echo_chamber.sh OUT_DIR [key=value ...]}
shift
ASSAY=${ASSAY:-build/bin/assay}
R=recipes/papers/echo-chamber
declare -A SIZE=([small]="" [large]="model.layers=8 model.width=320 model.heads=5")
VARIANTS=("grpo-kl0 grpo stages.1.algorithm.kl_coef=0" "grpo-kl1e-3 grpo stages.1.algorithm.kl_coef=0.001"
          "grpo-kl1e-2 grpo stages.1.algorithm.kl_coef=0.01" "ppo-kl0 ppo stages.1.algorithm.kl_coef=0"
          "ppo-kl1e-3 ppo stages.1.algorithm.kl_coef=0.001" "ppo-kl1e-2 ppo stages.1.algorithm.kl_coef=0.01"
          "ei expert_iteration")
mkdir -p "$OUT"
failed=0
run() {  # name, then assay run arguments; console output in OUT/name.console
  local name=$1
  shift
  "$ASSAY" run "$@" > "$OUT/$name.console" 2>&1 || { echo "FAILED: $name (see $OUT/$name.console)"; return 1; }
}
# Overrides of the RL stage (stages.1.*) do not apply to pretrain.toml, which has one stage.
pretrain_args=()
for arg in "$@"; do [[ $arg == stages.1.* ]] || pretrain_args+=("$arg"); done
pids=()
for size in ${SIZES:-small large}; do
  # shellcheck disable=SC2086
  run "$size-pretrain" $R/pretrain.toml ${SIZE[$size]} "${pretrain_args[@]}" --out "$OUT/$size-pretrain" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || exit 1
echo "pretraining done: $(date)"
pids=()
for size in ${SIZES:-small large}; do
  for variant in "${VARIANTS[@]}"; do
    read -r name recipe overrides <<< "$variant"
    [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $name "* ]] || continue
    # shellcheck disable=SC2086
    run "$size-$name" $R/$recipe.toml ${SIZE[$size]} $overrides "$@" --from "$OUT/$size-pretrain" --out "$OUT/$size-$name" &
    pids+=($!)
  done
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
echo "RL done: $(date)"
exit $failed
