"""LR basins (optimizers paper): per optimizer, the best final loss over a learning-rate grid and the
basin width = the number of grid points whose loss is within `delta` of that best.

Losses are averaged over seeds first; a diverged or unfinished run (NaN/Inf final loss) counts as
infinitely bad, so it is never inside a basin.
"""
from __future__ import annotations

import math

import pandas as pd

from .store import Runs


def lr_basins(runs: Runs, metric: str = "train.loss", lr_key: str = "optimizer.lr", by: str = "optimizer.use",
              delta: float = 0.05) -> pd.DataFrame:
    rows = []
    for run in runs:
        value = run.final(metric)
        rows.append({by: run.recipe.get(by), lr_key: run.recipe.get(lr_key),
                     metric: value if math.isfinite(value) else math.inf})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[by, "best " + metric, "best " + lr_key, "basin width", "grid points"])
    means = frame.groupby([by, lr_key], dropna=False)[metric].mean().reset_index()
    out = []
    for name, grid in means.groupby(by, dropna=False, sort=True):
        best = grid[metric].min()
        best_lr = grid.loc[grid[metric].idxmin(), lr_key]
        width = int((grid[metric] <= best + delta).sum()) if math.isfinite(best) else 0
        out.append({by: name, "best " + metric: best, "best " + lr_key: best_lr, "basin width": width,
                    "grid points": len(grid)})
    return pd.DataFrame(out)
