#!/usr/bin/env python3
"""Step-loop and start-up benchmark: assay vs an eager PyTorch loop, side by side in one run.

The model is the margin-features recipe (recipes/papers/margin-features/modular_addition.toml):
full-batch modular addition (all p^2 pairs), the quadratic model f = sum_i (u_i[a] + v_i[b])^2 w_i
with u, v, w of shape [m, p], cross-entropy + norm_penalty * sum_i ||theta_i||^3, AdamW
(weight_decay 0, one param group for {u, v} and one for {w}, as the quadratic_mlp plugin declares).

Python side: the same math, step for step as assay's runner (core/src/runner.cpp, train_step) does
it: set the LR of every group, grads reset to None, forward, loss (ce.item() and penalty.item() for
the two extra metrics, as plugins/algorithms/ce does), backward, loss.item(), clip_grad_norm_ with an
infinite max (assay's grad-norm metric), AdamW step, metric rows appended to lists.

assay side: `assay run` of a child recipe that extends the repo recipe with the analyzers removed,
with run.eval_every=0 run.checkpoint_every=0 run.threads=T. Its steps/s comes from the run store's
/metrics/train.loss/wall (seconds since run start, one row per step), so process start-up, plugin
loading, the final eval and checkpoint are not in it. Both sides skip the same warm-up steps.

Start-up: median wall time of `assay --version` (process start + loading LibTorch's shared
libraries) vs `assay run <recipe> run.steps=1` (the same plus recipe loading, plugin loading, store
creation, one step, the final eval, one checkpoint and the store flush).

Rounds interleave the two sides (alternating which goes first) so that load on a shared machine hits
both alike; medians over rounds are reported. Prints a markdown table.

    python3 tools/bench/step_loop.py [--steps 2000] [--warmup 200] [--repeats 5] [--threads 2] [--width 124]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "papers" / "margin-features" / "modular_addition.toml"

# The recipe's values (kept in sync by hand; the assay side reads them from the recipe itself).
SEED = 0
LR = 3e-3
NORM_PENALTY = 1e-4
NORM_POWER = 3
INIT_STD = 0.1


# ---------------------------------------------------------------------------------------------- Python


class QuadraticMlp(torch.nn.Module):
    """plugins/models/quadratic_mlp: neuron-major u, v [m, p], w [m, classes]."""

    def __init__(self, p: int, m: int):
        super().__init__()
        # Same draw order as the plugin (u, v, w after manual_seed(seed)), so the runs match numerically.
        self.u = torch.nn.Parameter(torch.randn(m, p) * INIT_STD)
        self.v = torch.nn.Parameter(torch.randn(m, p) * INIT_STD)
        self.w = torch.nn.Parameter(torch.randn(m, p) * INIT_STD)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        a, b = inputs.select(1, 0), inputs.select(1, 1)
        hidden = (self.u.t().index_select(0, a) + self.v.t().index_select(0, b)).square()
        return hidden.matmul(self.w)


def modular_addition(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    return torch.stack([a, b], 1), (a + b) % p


def rates(walls: np.ndarray, warmup: int) -> tuple[float, float]:
    """walls[k] = time at the end of step k+1. Returns (steps/s over steps warmup+1..N, i.e. total time,
    and 1 / median step time over the same steps: robust to bursts of load from other processes)."""
    timed = np.diff(walls[warmup - 1:])
    return len(timed) / float(walls[-1] - walls[warmup - 1]), 1.0 / float(np.median(timed))


def python_run(steps: int, warmup: int, threads: int, p: int, width: int) -> tuple[tuple[float, float], np.ndarray]:
    """Trains `steps` full-batch steps; returns (rates() after warm-up, per-step losses)."""
    torch.set_num_threads(threads)
    inputs, targets = modular_addition(p)
    torch.manual_seed(SEED)
    model = QuadraticMlp(p, width)
    params = list(model.parameters())
    groups = [{"params": [model.u, model.v]}, {"params": [model.w]}]
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    rows: dict[str, list[float]] = {k: [] for k in ("loss", "ce", "norm_penalty", "grad_norm", "lr", "wall")}
    start = time.perf_counter()
    for step in range(1, steps + 1):
        for g in opt.param_groups:  # the runner's set_lr_factor (constant schedule: factor 1)
            g["lr"] = LR * 1.0
        for q in params:  # the runner's p.mutable_grad().reset()
            q.grad = None
        logits = model(inputs)
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100,
                             label_smoothing=0.0)
        squared = None
        for q in (model.u, model.v, model.w):
            s = q.reshape(q.size(0), -1).square().sum(1)
            squared = s if squared is None else squared + s
        penalty = NORM_PENALTY * squared.sqrt().pow(float(NORM_POWER)).sum()
        loss = ce + penalty
        ce_value, penalty_value = ce.item(), penalty.item()
        loss.backward()
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise RuntimeError(f"python loop diverged at step {step}")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, float("inf")))
        opt.step()
        now = time.perf_counter()
        for k, v in (("loss", loss_value), ("ce", ce_value), ("norm_penalty", penalty_value),
                     ("grad_norm", grad_norm), ("lr", opt.param_groups[0]["lr"]), ("wall", now - start)):
            rows[k].append(v)
    return rates(np.asarray(rows["wall"]), warmup), np.asarray(rows["loss"])


# ----------------------------------------------------------------------------------------------- assay


def wait_for_binary(binary: Path, timeout: float = 300) -> None:
    """Another build may be relinking the binary; wait until it is back."""
    deadline = time.monotonic() + timeout
    while not (binary.is_file() and os.access(binary, os.X_OK)):
        if time.monotonic() > deadline:
            sys.exit(f"{binary} is missing (build it with tools/build.sh)")
        time.sleep(1)


def run_assay(binary: Path, args: list[str], attempts: int = 3) -> float:
    """Runs `assay ARGS` from the repo root; returns its wall time in seconds."""
    for attempt in range(attempts):
        wait_for_binary(binary)
        t0 = time.perf_counter()
        proc = subprocess.run([str(binary), *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode == 0:
            return elapsed
        if attempt + 1 == attempts:
            sys.exit(f"assay {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        time.sleep(2)  # possibly caught the binary mid-rebuild
    raise AssertionError


class Assay:
    def __init__(self, binary: Path, workdir: Path, threads: int, p: int, width: int):
        self.binary, self.workdir, self.count = binary, workdir, 0
        self.recipe = workdir / "bench.toml"
        # Arrays of tables are replaced wholesale by a child recipe: this drops all analyzers.
        self.recipe.write_text(f'extends = "{RECIPE}"\nanalyzers = []\n')
        self.overrides = ["run.eval_every=0", "run.checkpoint_every=0", f"run.threads={threads}",
                          f"task.p={p}", f"model.width={width}"]

    def _out(self) -> Path:
        self.count += 1
        return self.workdir / f"run-{self.count}"

    def steps_per_s(self, steps: int, warmup: int) -> tuple[tuple[float, float], float, np.ndarray]:
        out = self._out()
        wall = run_assay(self.binary, ["run", str(self.recipe), "--out", str(out), f"run.steps={steps}",
                                       *self.overrides])
        with h5py.File(out / "run.h5", "r") as f:
            walls = f["/metrics/train.loss/wall"][:]
            steps_col = f["/metrics/train.loss/step"][:]
            losses = f["/metrics/train.loss/value"][:]
        assert len(walls) == steps and steps_col[0] == 1 and steps_col[-1] == steps, "one row per step expected"
        shutil.rmtree(out)
        return rates(walls, warmup), wall, losses

    def one_step(self) -> float:
        out = self._out()
        wall = run_assay(self.binary, ["run", str(self.recipe), "--out", str(out), "run.steps=1", *self.overrides])
        shutil.rmtree(out)
        return wall

    def version(self) -> float:
        return run_assay(self.binary, ["--version"])


def import_torch_time() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ main


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000, help="training steps per timed run")
    ap.add_argument("--warmup", type=int, default=200, help="leading steps left out of steps/s")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds (medians are over these)")
    ap.add_argument("--startup-samples", type=int, default=3, help="start-up timings of each kind per round")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for both (assay run.threads)")
    ap.add_argument("--width", type=int, default=124, help="hidden neurons m (recipe: 124 = 4p)")
    ap.add_argument("--p", type=int, default=31, help="modulus (recipe: 31)")
    ap.add_argument("--assay", type=Path, default=REPO / "build" / "bin" / "assay", help="assay binary")
    args = ap.parse_args()
    if not 0 < args.warmup < args.steps:
        sys.exit("need 0 < --warmup < --steps")

    binary = args.assay.resolve()
    wait_for_binary(binary)
    binary_mtime = binary.stat().st_mtime
    load_before = os.getloadavg()[0]
    py_rates, as_rates, as_total, versions, one_steps, imports, loss_diffs = [], [], [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        assay = Assay(binary, Path(tmp), args.threads, args.p, args.width)
        print(f"# {args.repeats} rounds of {args.steps} steps (warm-up {args.warmup}), threads={args.threads}, "
              f"p={args.p}, m={args.width}", file=sys.stderr)
        for r in range(args.repeats):
            python_first = r % 2 == 0
            for side in ("python", "assay") if python_first else ("assay", "python"):
                if side == "python":
                    rate, py_losses = python_run(args.steps, args.warmup, args.threads, args.p, args.width)
                    py_rates.append(rate)
                else:
                    rate, wall, as_losses = assay.steps_per_s(args.steps, args.warmup)
                    as_rates.append(rate)
                    as_total.append(wall)
            loss_diffs.append(float(np.max(np.abs(py_losses - as_losses))))
            for _ in range(args.startup_samples):
                versions.append(assay.version())
                one_steps.append(assay.one_step())
            imports.append(import_torch_time())
            (py_mean, py_med), (as_mean, as_med) = py_rates[-1], as_rates[-1]
            print(f"round {r + 1}: steps/s python {py_mean:.1f} (median step {py_med:.1f}), assay {as_mean:.1f} "
                  f"(median step {as_med:.1f}), ratio {as_mean / py_mean:.3f} ({as_med / py_med:.3f}); "
                  f"--version {statistics.median(versions[-args.startup_samples:]):.3f} s, "
                  f"1-step run {statistics.median(one_steps[-args.startup_samples:]):.3f} s", file=sys.stderr)
    if binary.stat().st_mtime != binary_mtime:
        print("WARNING: the assay binary changed during the benchmark; rerun for clean numbers", file=sys.stderr)

    med = statistics.median

    def row(label: str, values: list[float], digits: int = 1, bold: bool = False) -> None:
        m = f"{med(values):.{digits}f}"
        print(f"| {label} | {'**' + m + '**' if bold else m} | {min(values):.{digits}f} | {max(values):.{digits}f} |")

    py_mean = [r[0] for r in py_rates]
    as_mean = [r[0] for r in as_rates]
    py_med = [r[1] for r in py_rates]
    as_med = [r[1] for r in as_rates]
    ratio_mean = [a / p for a, p in zip(as_mean, py_mean)]
    ratio_med = [a / p for a, p in zip(as_med, py_med)]
    v, o = med(versions), med(one_steps)
    load_after = os.getloadavg()[0]
    print(f"\nMachine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, Python "
          f"{platform.python_version()}; {args.repeats} rounds, {args.steps} steps each "
          f"(first {args.warmup} not timed), threads={args.threads}, p={args.p}, m={args.width}; "
          f"1-min load average {load_before:.2f} before, {load_after:.2f} after.\n")
    print("| measurement (over rounds) | median | min | max |")
    print("|---|---:|---:|---:|")
    row("Python eager loop, steps/s (timed steps / their time)", py_mean)
    row("`assay run` step loop, steps/s (timed steps / their time)", as_mean)
    row("ratio assay / Python, same round", ratio_mean, 3, bold=True)
    row("Python eager loop, 1 / median step time, steps/s", py_med)
    row("`assay run` step loop, 1 / median step time, steps/s", as_med)
    row("ratio assay / Python, 1 / median step time, same round", ratio_med, 3, bold=True)
    row(f"`assay run` of {args.steps} steps, whole process, s", as_total, 3)
    row("`assay --version` (process start + LibTorch load), s", versions, 3)
    row("`assay run` of 1 step (+ recipe, plugins, store, eval, checkpoint), s", one_steps, 3)
    print(f"| 1-step run minus `--version` (difference of medians), s | **{o - v:.3f}** | | |")
    row("reference: `python -c 'import torch'`, s", imports, 3)
    print(f"\nSame math check: max |loss_python - loss_assay| over all steps = {max(loss_diffs):.2e} "
          f"(same seed, same initialization; final loss {as_losses[-1]:.4f}).")
    print(f"Goals: step loop at least as fast as Python: {'met' if med(ratio_mean) >= 1 else 'NOT met'} "
          f"(ratio {med(ratio_mean):.3f}, by median step {med(ratio_med):.3f}); "
          f"1-step run under 1 s on top of LibTorch's load: {'met' if o - v < 1 else 'NOT met'} ({o - v:.3f} s).")

if __name__ == "__main__":
    main()
