#!/usr/bin/env bash
# Third-party workflow: install assay, build tools/example-plugin against the *installed* SDK with
# find_package(assay) + assay_add_plugin, and run a recipe that uses it with the installed host.
source "$(dirname "$0")/lib.sh"
prefix="$WORK/prefix"
cmake --install "$ASSAY_BINARY_DIR" --prefix "$prefix" > "$WORK/install.log"
[ -f "$prefix/include/assay/assay.hpp" ] && [ -f "$prefix/lib/cmake/assay/assayConfig.cmake" ] || fail "SDK not installed"
ls "$prefix"/lib/assay/plugins/assay-adamw.so > /dev/null || fail "plugins not installed"
generator=(); command -v ninja > /dev/null && generator=(-G Ninja)
expect_exit 0 cmake -S "$ASSAY_SOURCE_DIR/tools/example-plugin" -B "$WORK/example" "${generator[@]}" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
expect_exit 0 cmake --build "$WORK/example"
plugins="$WORK/example/lib/assay/plugins"
expect_exit 0 "$prefix/bin/assay" plugins parameter_norms --plugins "$plugins"
expect_output "analyzer parameter_norms  (plugin parameter_norms 0.1.0"
expect_exit 0 "$prefix/bin/assay" run "$ASSAY_SOURCE_DIR/tools/example-plugin/recipe.toml" --plugins "$plugins" --out "$WORK/run"
python3 - "$WORK/run/run.h5" <<'PY' || fail "the example analyzer's metrics are missing"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f.attrs["status"] == "done"
for group in ("embedding", "head"):
    steps = f[f"metrics/norm.{group}/step"][()].tolist()
    assert steps == [0, 50, 100, 150, 200], steps
assert "component.analyzer.parameter_norms" in f["env"].attrs
PY
# The installed host finds its own plugins without the build tree.
expect_exit 0 env -u ASSAY_PLUGIN_PATH "$prefix/bin/assay" plugins optimizer
expect_output "$prefix/lib/assay/plugins/assay-adamw.so"
echo "out_of_tree: ok"
