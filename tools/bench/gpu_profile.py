#!/usr/bin/env python3
"""Where a GPU training step's time goes: CUDA kernel time per step by kind of kernel (GEMM, attention, layer norm,
elementwise, ...), Python eager vs torch.compile, for the presets of gpu_step.py (same model, same step). Explains
the gap between an eager step (which assay's CUDA-graph step replays kernel for kernel) and torch.compile's fused
one (issue 11, docs/BENCHMARKS.md).

    python3 tools/bench/gpu_profile.py --preset gpt2s [--steps 5] [--warmup 10]
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_step import PRESETS, python_step  # noqa: E402

# First match wins; names are CUDA kernel names as the profiler reports them.
KINDS = [
    ("GEMM", r"gemm|cutlass|xmma|nvjet|cublas|sm\d+_|ampere_|hopper_|splitK"),
    ("attention", r"flash|fmha|attention|sdpa|efficient"),
    ("triton (fused by compile)", r"^triton"),
    ("optimizer", r"adam|multi_tensor|foreach"),
    ("layer norm", r"layer_norm|LayerNorm|layernorm"),
    ("softmax / cross-entropy", r"softmax|nll|cross_entropy"),
    ("reduction", r"reduce"),
    ("elementwise / cast / copy", r"elementwise|vectorized|unrolled|copy|Memcpy|Memset|fill|cat|index"),
]


def kind_of(name: str) -> str:
    for kind, pattern in KINDS:
        if re.search(pattern, name, re.IGNORECASE):
            return kind
    return "other"


def profile_steps(cfg: dict, compile_mode: str | None, steps: int, warmup: int):
    step = python_step(cfg, compile_mode, fused=True)
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    time_us, count = defaultdict(float), defaultdict(int)
    names = defaultdict(float)
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        kind = kind_of(event.name)
        time_us[kind] += event.device_time
        count[kind] += 1
        names[(kind, event.name[:90])] += event.device_time
    return ({k: v / steps / 1e3 for k, v in time_us.items()}, {k: v / steps for k, v in count.items()},
            {k: v / steps / 1e3 for k, v in names.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=PRESETS, default="gpt2s")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--top", type=int, default=12, help="heaviest kernels listed per mode")
    args = ap.parse_args()
    cfg = PRESETS[args.preset]
    modes = {"eager": None, "compile": "default"}
    results = {m: profile_steps(cfg, mode, args.steps, args.warmup) for m, mode in modes.items()}
    print(f"# CUDA kernel time per step, preset {args.preset} ({torch.cuda.get_device_name()}), "
          f"mean of {args.steps} profiled steps after {args.warmup}\n")
    print("| kind | eager ms | eager kernels | compile ms | compile kernels |\n|---|---:|---:|---:|---:|")
    kinds = sorted({k for r in results.values() for k in r[0]}, key=lambda k: -results["eager"][0].get(k, 0))
    for kind in kinds:
        row = [f"{results[m][0].get(kind, 0):.2f} | {results[m][1].get(kind, 0):.0f}" for m in modes]
        print(f"| {kind} | {' | '.join(row)} |")
    totals = [f"{sum(results[m][0].values()):.2f} | {sum(results[m][1].values()):.0f}" for m in modes]
    print(f"| **total** | {' | '.join(totals)} |")
    for m in modes:
        print(f"\n## heaviest kernels, {m} (ms per step)\n")
        for (kind, name), ms in sorted(results[m][2].items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"- {ms:.2f} [{kind}] {name}")


if __name__ == "__main__":
    main()
