#!/usr/bin/env python3
"""Many tiny runs on one GPU: runs/hour of a seed sweep, assay's process pool sharing the GPU (with and
without CUDA graphs) vs one Python process per seed run back to back.

The runs: the distributional-scaling recipe (recipes/papers/distributional-scaling/count_width_seeds.toml:
count task, 2-layer d=64 RoPE GPT, batch 64, AdamW) for --steps steps, one eval at the end, no
checkpoints but the last. Python: the same model shape (tools/bench/gpt_step.py's GPT, learned positions)
on random tokens of the count task's shape (batch 64 x 35 tokens, 155-token vocabulary), AdamW fused, a
fresh `python3` per seed (interpreter, torch import and CUDA start-up included, as a sweep of scripts
would pay them). Python runs are timed for --python-runs seeds and scaled to the sweep's size.

    python3 tools/bench/seed_sweep_gpu.py --assay build-gpu/bin/assay --runs 64 --steps 300 --jobs 1,8,16
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "papers" / "distributional-scaling" / "count_width_seeds.toml"

PYTHON_RUN = r'''
import sys, math, torch, torch.nn.functional as F
sys.path.insert(0, sys.argv[1])
from gpt_step import Gpt
seed, steps = int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(seed)
vocab, T, B = 155, 35, 64
model = Gpt(vocab, T, 2, 64, 2).cuda()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0, fused=True)
for step in range(steps):
    for p in model.parameters():
        p.grad = None
    x = torch.randint(vocab, (B, T + 1), device="cuda")
    loss = F.cross_entropy(model(x[:, :-1]).reshape(-1, vocab), x[:, 1:].reshape(-1))
    loss.backward()
    assert math.isfinite(loss.item())
    opt.step()
with torch.no_grad():
    model.eval()
    model(torch.randint(vocab, (256, T), device="cuda")).argmax(-1).float().mean().item()
'''


def assay_sweep(binary: Path, runs: int, steps: int, jobs: int, graph: bool, tmp: Path) -> float:
    recipe = tmp / f"sweep-{jobs}-{int(graph)}.toml"
    recipe.write_text(f'extends = "{RECIPE}"\n[sweep]\nmode = "grid"\nseeds = {runs}\n[sweep.axes]\n"model.width" = [64]\n')
    out = tmp / f"out-{jobs}-{int(graph)}"
    args = [str(binary), "sweep", str(recipe), "--jobs", str(jobs), "--out", str(out), 'run.device="cuda"',
            f"run.steps={steps}", "run.eval_every=0", "run.checkpoint_every=0", "run.warmup_steps=10",
            "optimizer.implementation=fused", f"run.cuda_graph={'true' if graph else 'false'}", "run.threads=1"]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"assay sweep failed ({done.returncode}): {done.stderr[-3000:]}")
    status = subprocess.run([str(binary), "status", str(out)], capture_output=True, text=True).stdout
    if f"done {runs}" not in status:
        raise RuntimeError(f"not every run finished:\n{status}")
    return wall


def python_runs(count: int, steps: int) -> float:
    start = time.perf_counter()
    for seed in range(count):
        subprocess.run([sys.executable, "-c", PYTHON_RUN, str(Path(__file__).resolve().parent), str(seed), str(steps)],
                       check=True)
    return (time.perf_counter() - start) / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assay", type=Path, default=REPO / "build" / "bin" / "assay")
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--jobs", default="1,8,16")
    ap.add_argument("--python-runs", type=int, default=4)
    args = ap.parse_args()
    per_python = python_runs(args.python_runs, args.steps)
    print(f"Python, one process per seed: {per_python:.2f} s per run", file=sys.stderr)
    rows = [("Python, one process per seed, back to back", per_python * args.runs)]
    with tempfile.TemporaryDirectory(prefix="assay-seed-sweep-") as tmp:
        for jobs in (int(j) for j in args.jobs.split(",")):
            for graph in (False, True):
                wall = assay_sweep(args.assay.resolve(), args.runs, args.steps, jobs, graph, Path(tmp))
                name = f"assay sweep --jobs {jobs}" + (", run.cuda_graph" if graph else "")
                rows.append((name, wall))
                print(f"{name}: {wall:.1f} s", file=sys.stderr)
    base = rows[0][1]
    print(f"\n{torch.cuda.get_device_name()}; {args.runs} seeds x {args.steps} steps of the count-task model "
          f"(Python: {args.python_runs} runs timed, scaled to {args.runs}).\n")
    print("| mode | wall for the sweep, s | runs/hour | vs Python |\n|---|---:|---:|---:|")
    for name, wall in rows:
        print(f"| {name} | {wall:.1f} | {args.runs / wall * 3600:.0f} | {base / wall:.1f}x |")


if __name__ == "__main__":
    main()
