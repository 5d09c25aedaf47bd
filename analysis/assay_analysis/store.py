"""Run stores (one HDF5 file per run, docs/run-store.md) as tidy pandas frames.

Robust to runs in progress or crashed: the store on disk is always a complete file (assay writes it by
atomic replacement), so a live run reads as its last flush; a file that cannot be read is reported in
`Runs.problems` and skipped.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _flatten(table: dict, prefix: str = "") -> dict:
    """{"optimizer": {"lr": 1e-3}} -> {"optimizer.lr": 1e-3}; arrays of tables get their index."""
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                out.update(_flatten(item, f"{name}.{i}."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


@dataclass
class Run:
    """One run store, read completely into memory."""

    path: Path
    attrs: dict
    env: dict
    recipe: dict  # flattened resolved recipe: "optimizer.lr" -> value
    metrics: pd.DataFrame  # name, step, value, wall
    events: pd.DataFrame  # step, kind, message
    series: dict = field(default_factory=dict)  # "component/name" -> (steps [n], values [n, ...])

    @property
    def id(self) -> str:
        return self.path.parent.name if self.path.name == "run.h5" else self.path.stem

    @property
    def status(self) -> str:
        return self.attrs.get("status", "?")

    def metric(self, name: str) -> pd.DataFrame:
        return self.metrics[self.metrics["name"] == name]

    def final(self, name: str) -> float:
        rows = self.metric(name)
        return float(rows["value"].iloc[-1]) if len(rows) else float("nan")


def load_run(path: str | Path) -> Run:
    """Reads one run store (a run directory or its run.h5)."""
    path = Path(path)
    if path.is_dir():
        path = path / "run.h5"
    with h5py.File(path, "r") as f:
        attrs = {k: _text(v) for k, v in f.attrs.items()}
        env = {k: _text(v) for k, v in f["env"].attrs.items()} if "env" in f else {}
        recipe = {}
        if "recipe" in f:
            resolved = _text(f["recipe"].attrs.get("resolved", ""))
            try:
                recipe = _flatten(tomllib.loads(resolved))
            except tomllib.TOMLDecodeError:
                recipe = {}
        frames = []
        for name, group in f.get("metrics", {}).items():
            steps = group["step"][()]
            frames.append(pd.DataFrame({"name": name, "step": steps, "value": group["value"][()],
                                        "wall": group["wall"][()] if "wall" in group else np.nan}))
        metrics = (pd.concat(frames, ignore_index=True) if frames
                   else pd.DataFrame(columns=["name", "step", "value", "wall"]))
        series = {}
        if "analyzers" in f:
            def visit(name, obj):
                if isinstance(obj, h5py.Group) and "step" in obj and "value" in obj:
                    series[name] = (obj["step"][()], obj["value"][()])
            f["analyzers"].visititems(visit)
        if "events" in f:
            rows = f["events"][()]
            events = pd.DataFrame({"step": rows["step"].astype(np.int64),
                                   "kind": [_text(k) for k in rows["kind"]],
                                   "message": [_text(m) for m in rows["message"]]})
        else:
            events = pd.DataFrame(columns=["step", "kind", "message"])
    return Run(path=path, attrs=attrs, env=env, recipe=recipe, metrics=metrics, events=events, series=series)


@dataclass
class Runs:
    """Many runs (a sweep directory or any folder of run directories)."""

    runs: list[Run]
    problems: list[str]

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self):
        return iter(self.runs)

    @property
    def varying(self) -> list[str]:
        """Recipe keys whose values differ between runs (run.name and output-only keys excluded)."""
        keys = sorted({k for r in self.runs for k in r.recipe})
        out = []
        for key in keys:
            if key in ("run.name",):
                continue
            values = {repr(r.recipe.get(key)) for r in self.runs}
            if len(values) > 1:
                out.append(key)
        return out

    @property
    def table(self) -> pd.DataFrame:
        """One row per run: id, status, path and every varying recipe key."""
        rows = []
        for r in self.runs:
            row = {"run": r.id, "status": r.status, "path": str(r.path)}
            row.update({k: r.recipe.get(k) for k in self.varying})
            rows.append(row)
        return pd.DataFrame(rows)

    @property
    def metrics(self) -> pd.DataFrame:
        """Long frame of every metric row of every run, with the varying recipe keys as columns."""
        frames = []
        for r in self.runs:
            frame = r.metrics.copy()
            frame.insert(0, "run", r.id)
            for key in self.varying:
                frame[key] = [r.recipe.get(key)] * len(frame)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @property
    def events(self) -> pd.DataFrame:
        frames = [r.events.assign(run=r.id) for r in self.runs]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def final(self, name: str) -> pd.DataFrame:
        """Per run, the last value of metric `name`, with the varying keys."""
        table = self.table
        table[name] = [r.final(name) for r in self.runs]
        return table


def load(path: str | Path) -> Runs:
    """Every run store at or below `path` (a run.h5, a run directory, or a folder of them)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("run.h5"))
    runs, problems = [], []
    for file in files:
        try:
            runs.append(load_run(file))
        except (OSError, KeyError, ValueError) as error:
            problems.append(f"{file}: {error}")
    return Runs(runs=runs, problems=problems)
