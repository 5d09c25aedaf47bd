"""Exit 0 iff two run stores hold bit-identical series (every /metrics and /analyzers step and value).

The wall-clock column is ignored. Usage: compare_stores.py A/run.h5 B/run.h5
"""
import sys

import h5py
import numpy as np


def series(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name.split("/")[-1] in ("step", "value"):
                out[name] = obj[()]
        f["metrics"].visititems(lambda n, o: visit("metrics/" + n, o))
        f["analyzers"].visititems(lambda n, o: visit("analyzers/" + n, o))
    return out


a, b = series(sys.argv[1]), series(sys.argv[2])
problems = [f"only in one store: {name}" for name in sorted(set(a) ^ set(b))]
for name in sorted(set(a) & set(b)):
    x, y = a[name], b[name]
    if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
        where = "" if x.shape != y.shape else f", first difference at row {int(np.argmax((x != y).reshape(len(x), -1).any(1)))}"
        problems.append(f"{name}: {x.shape} vs {y.shape}{where}")
if not a:
    problems.append("no series found")
print("\n".join(problems) if problems else f"{len(a)} datasets bit-identical")
sys.exit(1 if problems else 0)
