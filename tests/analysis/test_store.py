"""assay_analysis.store against stores written by real runs."""
import h5py
import numpy as np

from assay_analysis import load, load_run


def test_runs_load_into_tidy_frames(sweep):
    runs = load(sweep)
    assert len(runs) == 4 and not runs.problems
    assert runs.varying == ["optimizer.lr", "run.seed"]
    frame = runs.metrics
    for column in ("run", "name", "step", "value", "wall", "optimizer.lr", "run.seed"):
        assert column in frame.columns
    loss = frame[(frame["name"] == "train.loss") & (frame["run"] == "lr0.03-s1")]
    assert loss["step"].tolist() == list(range(1, 161))
    assert set(loss["optimizer.lr"]) == {0.03} and set(loss["run.seed"]) == {1}
    # Same numbers as a direct h5py read.
    with h5py.File(sweep / "lr0.03-s1" / "run.h5") as f:
        assert np.array_equal(loss["value"].to_numpy(), f["metrics/train.loss/value"][()])


def test_analyzer_series_and_events(sweep):
    run = load_run(sweep / "lr0.003-s0")
    steps, power = run.series["fourier_features/u.max_power"]
    assert steps.tolist() == [0, 40, 80, 120, 160]
    assert power.shape == (5, 40)  # quadratic_mlp default width 4 * (11 - 1)
    assert run.status == "done"
    assert run.recipe["task.p"] == 11 and run.recipe["analyzers.1.use"] == "fourier_features"
    assert {"eval", "checkpoint", "stage"} <= set(run.events["kind"])


def test_final_values_per_run(sweep):
    table = load(sweep).final("eval.train.accuracy")
    assert len(table) == 4 and set(table.columns) >= {"run", "status", "optimizer.lr", "run.seed"}
    assert table["eval.train.accuracy"].between(0, 1).all()


def test_crashed_and_unreadable_runs_do_not_stop_loading(crashed):
    runs = load(crashed)
    assert [r.id for r in runs] == ["killed"]
    assert runs.runs[0].status == "running"
    assert len(runs.runs[0].metric("train.loss")) > 0
    assert len(runs.problems) == 1 and "garbage" in runs.problems[0]
