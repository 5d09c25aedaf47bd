"""Reading assay run stores across runs, plotting them, and writing HTML reports.

    from assay_analysis import load
    runs = load("runs/")                 # one run directory, one run.h5, or a folder of runs
    runs.metrics                          # long frame: run, name, step, value, wall + recipe columns
    runs.varying                          # recipe keys that differ between runs (the swept axes)
"""
from .store import Run, Runs, load, load_run

__all__ = ["Run", "Runs", "load", "load_run"]
