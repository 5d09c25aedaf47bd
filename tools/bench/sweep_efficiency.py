"""Local sweep launcher: parallel efficiency and per-run overhead.

A 64-run sweep of a tiny recipe with `assay sweep --jobs J` on this machine. Reports
  efficiency = (sum of the runs' own process times / J) / total wall time of the sweep   (goal >= 0.85)
  per-run overhead = process time - training-loop time (from the store) - LibTorch's load time
                     (`assay --version`), i.e. start-up, plugin loading, store, eval, checkpoint (goal < 1 s)

    python3 tools/bench/sweep_efficiency.py [--runs 64] [--jobs 2] [--steps 200]
"""
import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parents[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--assay", default=str(ROOT / "build" / "bin" / "assay"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="assay-sweep-bench-"))
    (work / "sweep.toml").write_text(f"""
[run]
name = "bench"
device = "cpu"
steps = {args.steps}
eval_every = 0
[task]
use = "modular_addition"
p = 13
[model]
use = "quadratic_mlp"
[optimizer]
use = "adamw"
lr = 0.01
[[analyzers]]
use = "accuracy"
[sweep]
seeds = {args.runs}
""")
    version = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([args.assay, "--version"], check=True, capture_output=True)
        version.append(time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run([args.assay, "sweep", str(work / "sweep.toml"), "--jobs", str(args.jobs), "--out", str(work / "sw")],
                   check=True, capture_output=True)
    total = time.perf_counter() - start
    rows = [line.split("\t") for line in (work / "sw" / "launcher.tsv").read_text().splitlines()]
    process = {row[1]: float(row[3]) for row in rows}
    loop = {}
    for run_id in process:
        with h5py.File(work / "sw" / run_id / "run.h5") as f:
            wall = f["metrics/train.loss/wall"][()]
            loop[run_id] = float(wall[-1])  # seconds from run start to the last step
    efficiency = sum(process.values()) / args.jobs / total
    overhead = [process[r] - loop[r] - statistics.median(version) for r in process]
    print(f"{len(process)} runs x {args.steps} steps, --jobs {args.jobs}, {Path('/proc/cpuinfo').read_text().count('processor')} cores\n")
    print("| measurement | value |\n|---|---:|")
    print(f"| sweep wall time, s | {total:.2f} |")
    print(f"| sum of run process times / jobs, s | {sum(process.values()) / args.jobs:.2f} |")
    print(f"| parallel efficiency | **{efficiency:.3f}** |")
    print(f"| run process time, median s | {statistics.median(process.values()):.3f} |")
    print(f"| `assay --version` (LibTorch load), median s | {statistics.median(version):.3f} |")
    print(f"| per-run overhead beyond LibTorch load and the step loop, median s | **{statistics.median(overhead):.3f}** |")
    subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
