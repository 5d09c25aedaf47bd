"""lr_basins: a closed-form case built from real run objects, and the report section on a real sweep."""
import math

import pandas as pd

from assay_analysis import load
from assay_analysis.basins import lr_basins
from assay_analysis.store import Run, Runs
from conftest import run_assay


def fake_run(optimizer, lr, seed, loss):
    metrics = pd.DataFrame({"name": ["train.loss"], "step": [10], "value": [loss], "wall": [1.0]})
    return Run(path=None, attrs={}, env={}, metrics=metrics, events=pd.DataFrame(),
               recipe={"optimizer.use": optimizer, "optimizer.lr": lr, "run.seed": seed})


def test_best_loss_and_basin_width_from_seed_means():
    runs = Runs(runs=[
        # sgd: means 1.0, 0.50, 0.53, NaN (diverged)  -> best 0.50 at 0.1, width 2 (0.53 <= 0.55)
        fake_run("sgd", 0.01, 0, 1.0), fake_run("sgd", 0.01, 1, 1.0),
        fake_run("sgd", 0.1, 0, 0.45), fake_run("sgd", 0.1, 1, 0.55),
        fake_run("sgd", 1.0, 0, 0.53), fake_run("sgd", 1.0, 1, 0.53),
        fake_run("sgd", 10.0, 0, math.nan), fake_run("sgd", 10.0, 1, 0.2),
        # adamw: means 0.30, 0.31, 0.34 -> best 0.30, width 3 (0.34 <= 0.35)
        fake_run("adamw", 1e-3, 0, 0.30), fake_run("adamw", 3e-3, 0, 0.31), fake_run("adamw", 1e-2, 0, 0.34),
    ], problems=[])
    table = lr_basins(runs, delta=0.05).set_index("optimizer.use")
    assert table.loc["sgd", "best train.loss"] == 0.5
    assert table.loc["sgd", "best optimizer.lr"] == 0.1
    assert table.loc["sgd", "basin width"] == 2
    assert table.loc["sgd", "grid points"] == 4
    assert table.loc["adamw", "basin width"] == 3
    assert math.isclose(table.loc["adamw", "best train.loss"], 0.30)


def test_report_shows_basins_for_a_real_lr_sweep(sweep, tmp_path):
    output = tmp_path / "basins.html"
    run_assay("report", sweep, "-o", output)
    html = output.read_text()
    assert "LR basins" in html and "basin width" in html
    table = lr_basins(load(sweep))
    assert list(table["grid points"]) == [2] and 1 <= table["basin width"].iloc[0] <= 2
