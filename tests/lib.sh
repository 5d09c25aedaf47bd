# Helpers for the integration tests (sourced). ctest sets ASSAY, ASSAY_SOURCE_DIR, ASSAY_BINARY_DIR.
set -euo pipefail
: "${ASSAY:?}" "${ASSAY_SOURCE_DIR:?}" "${ASSAY_BINARY_DIR:?}"
WORK=$(mktemp -d /tmp/assay-it-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_exit CODE command...: runs the command, output to $WORK/out, and checks its exit code.
expect_exit() {
  local want=$1; shift
  local got=0
  "$@" > "$WORK/out" 2>&1 || got=$?
  [ "$got" -eq "$want" ] || { cat "$WORK/out" >&2; fail "'$*' exited $got, expected $want"; }
}

# expect_output TEXT: the last command's output contains TEXT.
expect_output() { grep -qF -- "$1" "$WORK/out" || { cat "$WORK/out" >&2; fail "output lacks: $1"; }; }

# store_attr RUN_DIR KEY: a root attribute of a run store, read with h5py.
store_attr() { python3 -c 'import h5py,sys; print(h5py.File(sys.argv[1], "r").attrs[sys.argv[2]])' "$1/run.h5" "$2"; }

# A small, fast recipe (modular addition, p = 13), written to $WORK/small.toml. On the CPU, where runs
# are bit-reproducible (CUDA's atomic adds are not, even on the GPU machine).
write_small_recipe() {
  cat > "$WORK/small.toml" <<TOML
[run]
name = "small"
device = "cpu"
steps = ${1:-400}
eval_every = 50
checkpoint_every = 100
threads = 1
[task]
use = "modular_addition"
p = 13
[model]
use = "quadratic_mlp"
[optimizer]
use = "adamw"
lr = 0.01
[algorithm]
use = "ce"
norm_penalty = 1e-4
[[analyzers]]
use = "accuracy"
[[analyzers]]
use = "margin"
[[analyzers]]
use = "fourier_features"
TOML
}
