#!/usr/bin/env python3
"""GPU training step: `assay run` (eager, fused AdamW, CUDA graph) vs Python (eager, torch.compile,
torch.compile reduce-overhead), same shapes, side by side in one call; MFU against a measured bf16 matmul.

Presets (issue 11):
  tiny   4 layers, d=128, 4 heads, context 128, batch 32, fp32                (0.8M parameters)
  gpt2s  12 layers, d=768, 12 heads, context 1024, batch 16, bf16 autocast    (85M parameters; the
         vocabulary is the text_file task's 27 characters on both sides, so the head is small)
Python: the model of tools/bench/gpt_step.py (nn.Linear, F.scaled_dot_product_attention, untied head),
AdamW (fused=True when --fused), per step: LR set, grads to None, forward, cross-entropy, backward,
loss.item(), clip_grad_norm_(inf), step. torch.compile wraps the model (its forward and backward).
assay: `assay run` of recipes/papers/optimizers/lm.toml with the preset's shapes; median step time from
the run store's train.loss wall column.

    python3 tools/bench/gpu_step.py --preset tiny --assay build-gpu/bin/assay [--steps 300]
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpt_step import Gpt  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "papers" / "optimizers" / "lm.toml"
PRESETS = {
    "tiny": dict(layers=4, width=128, heads=4, context=128, batch=32, autocast="off"),
    "gpt2s": dict(layers=12, width=768, heads=12, context=1024, batch=16, autocast="bf16"),
}
VOCAB = 27


def python_step(cfg: dict, compile_mode: str | None, fused: bool):
    """One training step of the Python side as a function (returns the loss as a float): LR set, grads to None,
    forward, cross-entropy, backward, loss.item(), clip_grad_norm_(inf), AdamW step. Also tools/bench/gpu_profile.py."""
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = Gpt(VOCAB, cfg["context"], cfg["layers"], cfg["width"], cfg["heads"]).to(device)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0, fused=fused)
    forward = torch.compile(model, mode=compile_mode) if compile_mode else model
    stream = torch.randint(VOCAB, (1_000_000,), device=device)
    dtype = torch.bfloat16 if cfg["autocast"] == "bf16" else None

    def step() -> float:
        for g in opt.param_groups:
            g["lr"] = 1e-3
        for p in params:
            p.grad = None
        offsets = torch.randint(len(stream) - cfg["context"] - 1, (cfg["batch"], 1), device=device)
        window = stream[offsets + torch.arange(cfg["context"] + 1, device=device)]
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            logits = forward(window[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, VOCAB).float(), window[:, 1:].reshape(-1))
        loss.backward()
        value = loss.item()
        torch.nn.utils.clip_grad_norm_(params, float("inf"))
        opt.step()
        return value

    return step


def python_ms(cfg: dict, compile_mode: str | None, fused: bool, steps: int, warmup: int) -> float:
    step = python_step(cfg, compile_mode, fused)
    walls = []
    start = time.perf_counter()
    for _ in range(steps):
        if not math.isfinite(step()):
            raise RuntimeError("python loop diverged")
        walls.append(time.perf_counter() - start)
    return float(np.median(np.diff(walls[warmup:]))) * 1e3


def assay_ms(binary: Path, cfg: dict, overrides: list[str], steps: int, warmup: int, out: Path) -> float:
    recipe = out.parent / "bench.toml"
    recipe.write_text(f'extends = "{RECIPE}"\nanalyzers = []\n')
    args = [str(binary), "run", str(recipe), "--out", str(out), f"run.steps={steps}", "run.eval_every=0",
            "run.checkpoint_every=0", 'run.device="cuda"', "run.lr_schedule=constant", "run.warmup_steps=0",
            f"model.layers={cfg['layers']}", f"model.width={cfg['width']}", f"model.heads={cfg['heads']}",
            f"task.context={cfg['context']}", f"task.batch_size={cfg['batch']}", f"run.autocast={cfg['autocast']}",
            *overrides]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"assay failed ({done.returncode}): {done.stderr[-2000:]}")
    for line in done.stderr.splitlines():
        if "cuda_graph" in line:
            print("  assay:", line.strip(), file=sys.stderr)
    with h5py.File(out / "run.h5", "r") as f:
        walls = f["/metrics/train.loss/wall"][:]
    return float(np.median(np.diff(walls[warmup:]))) * 1e3


def matmul_peak_tflops() -> float:
    """Measured dense bf16 matmul throughput (8192^3), the MFU denominator."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * reps / (time.perf_counter() - start) / 1e12


def step_flops(cfg: dict) -> float:
    """6 N tokens for the matmul parameters plus the attention scores and mixing (causal: half), x3 for
    forward + backward: the usual model-FLOPs count (PaLM appendix B)."""
    d, L, T, B = cfg["width"], cfg["layers"], cfg["context"], cfg["batch"]
    n_matmul = L * 12 * d * d + VOCAB * d
    attention = L * 2 * 2 * T * T * d / 2
    return B * (6 * n_matmul * T + 3 * attention)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=PRESETS, default="tiny")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--assay", type=Path, default=REPO / "build" / "bin" / "assay")
    ap.add_argument("--python-modes", default="eager,compile,reduce-overhead")
    args = ap.parse_args()
    cfg = PRESETS[args.preset]
    rows = []
    with tempfile.TemporaryDirectory(prefix="assay-gpu-step-") as tmp:
        for name, overrides in (("assay eager (adamw loop)", ["optimizer.implementation=loop"]),
                                ("assay eager (adamw fused)", ["optimizer.implementation=fused"]),
                                ("assay CUDA graph (adamw fused)", ["optimizer.implementation=fused", "run.cuda_graph=true"])):
            rows.append((name, assay_ms(args.assay.resolve(), cfg, overrides, args.steps, args.warmup, Path(tmp) / name.replace(" ", "_"))))
            print(f"{name}: {rows[-1][1]:.3f} ms/step", file=sys.stderr)
        for mode in args.python_modes.split(","):
            compile_mode = None if mode == "eager" else ("default" if mode == "compile" else mode)
            name = f"Python {mode} (AdamW fused)"
            rows.append((name, python_ms(cfg, compile_mode, True, args.steps, args.warmup)))
            print(f"{name}: {rows[-1][1]:.3f} ms/step", file=sys.stderr)
    peak = matmul_peak_tflops()
    flops = step_flops(cfg)
    eager = next((ms for name, ms in rows if name.startswith("Python eager")), None)
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}; preset {args.preset}: {cfg}; "
          f"{args.steps} steps, median step time after {args.warmup}; measured bf16 matmul peak {peak:.0f} TFLOP/s; "
          f"model FLOPs per step {flops / 1e12:.3f} T.\n")
    print("| mode | ms/step | vs Python eager | MFU |\n|---|---:|---:|---:|")
    for name, ms in rows:
        ratio = f"{eager / ms:.2f}x" if eager else "-"
        print(f"| {name} | {ms:.3f} | {ratio} | {flops / (ms / 1e3) / (peak * 1e12) * 100:.1f}% |")


if __name__ == "__main__":
    main()
