#!/usr/bin/env python3
"""The MX proxy seed study's table (recipes/papers/mx-precision/proxy_seeds.toml): per precision scheme (and any
other swept key except run.seed), over its seeds: runs, runs that reached the last step, runs with a loss spike,
the spike rate with a 95% Wilson interval, each seed's first-spike step, and medians of the final train loss
(mean over the last 100 steps), the final eval loss, the gradient cosine with float32 (each run's median over its
evaluations of grad_fidelity.all.cosine) and the final grad norm (mean over the last 100 steps).

Spikes are those of `assay analyze instability` (assay_analysis.instability, same defaults: threshold 0.008,
window 100 recorded rows; with the recipe's log_every = 10 that is 1000 steps).

    python3 analysis/mx_seeds.py runs/mx-proxy-seeds-sweep [--csv runs.csv] [--threshold 0.008] [--window 100]
    python3 analysis/mx_seeds.py sweep-seeds0-3 sweep-seeds4-7     # several sweeps (e.g. two device calls): one table
    bash tools/gpu-mx-seeds.sh     # on the GPU machine: build, sweep, this table (header of that script)
"""
from __future__ import annotations

import argparse
import math
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assay_analysis.instability import DEFAULT_THRESHOLD, DEFAULT_WINDOW, instability  # noqa: E402
from assay_analysis.store import load  # noqa: E402

COSINE = "grad_fidelity.all.cosine"
# mx keys and their defaults (docs/precision.md); a scheme's label names the ones that differ
MX_DEFAULTS = {"weights_bp": "same", "activations_bp": "same", "grads": "same", "block_size": 32,
               "rounding": "nearest", "vector_ops": "bf16", "exempt_groups": ()}


def short(fmt) -> str:
    """fp8_e4m3 -> e4m3; bf16 stays."""
    text = str(fmt)
    return text.split("_", 1)[1] if "_" in text and text[:2] == "fp" else text


def scheme(recipe: dict) -> str:
    """A label of the run's [precision], as docs/results/mx-precision.md names the schemes."""
    use = recipe.get("precision.use", "?")
    if use != "mx":
        return str(use)
    w, a = short(recipe.get("precision.weights")), short(recipe.get("precision.activations"))
    norm = recipe.get("precision.norm_affine", "bf16")
    if w == a:
        label, usual_norm = f"MX {w}", "mx"
    else:
        label, usual_norm = f"{w} weights, {a} activations", "bf16"
    parts = [label]
    if norm != usual_norm:
        parts.append(f"LayerNorm affine {norm}")
    if recipe.get("precision.quantize_backprop", True) is False:
        parts.append("forward only")
    for key, default in MX_DEFAULTS.items():
        value = recipe.get(f"precision.{key}", default)
        if value != default:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def tail_mean(run, name: str, steps: int) -> float:
    rows = run.metric(name)
    if not len(rows):
        return math.nan
    last = rows["step"].max()
    return float(rows[rows["step"] > last - steps]["value"].mean())


def sweep_order(folder: Path) -> dict[str, int]:
    """Run id -> index in the sweep (sweep.toml), so groups come in the recipe's order."""
    path = folder / "sweep.toml"
    if not path.exists():
        return {}
    try:
        return {r["id"]: int(r["index"]) for r in tomllib.loads(path.read_text()).get("runs", [])}
    except (tomllib.TOMLDecodeError, KeyError, ValueError):
        return {}


def per_run(folder: Path, threshold: float, window: int, tail: int) -> pd.DataFrame:
    runs = load(folder)
    for problem in runs.problems:
        print(f"unreadable: {problem}", file=sys.stderr)
    spikes = {r.run: r for r in instability(runs, threshold=threshold, window=window, source=str(folder)).runs}
    other = [k for k in runs.varying if not k.startswith("precision.") and k != "run.seed"]
    order = sweep_order(folder)
    rows = []
    for run in runs:
        result = spikes.get(run.id)
        label = scheme(run.recipe)
        if other:
            label += " (" + ", ".join(f"{k}={run.recipe.get(k)}" for k in other) + ")"
        cos = run.metric(COSINE)["value"]
        planned = run.recipe.get("run.steps")
        rows.append({
            "scheme": label, "seed": run.recipe.get("run.seed"), "run": run.id, "status": run.status,
            "index": order.get(run.id, 1 << 30),
            "last_step": result.last_step if result else -1,
            "complete": bool(result and planned is not None and result.last_step >= int(planned)),
            "first_spike": result.first_spike_step if result else -1,
            "spikes": len(result.spikes) if result else 0,
            "max_rise": result.max_spike if result else math.nan,
            "diverged": bool(result and result.diverged),
            "train_loss_end": tail_mean(run, "train.loss", tail),
            "eval_final": result.eval_final if result else math.nan,
            "eval_min": result.eval_min if result else math.nan,
            "grad_cos_median": float(np.median(cos)) if len(cos) else math.nan,
            "grad_norm_end": tail_mean(run, "train.grad_norm", tail),
        })
    return pd.DataFrame(rows)


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Schemes in the recipe's order (a scheme's first sweep index), each scheme's runs by seed."""
    if not len(frame):
        return frame
    frame = frame.assign(order=frame.groupby("scheme")["index"].transform("min"))
    return frame.sort_values(["order", "scheme", "seed"], kind="stable").drop(columns="order").reset_index(drop=True)


def g(x: float, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def summary_row(name: str, group: pd.DataFrame, seeds: bool) -> str:
    hit = (group["spikes"] > 0) | group["diverged"]
    spiked = int(hit.sum())
    n = int((hit | group["complete"]).sum())  # a run stopped early without a spike is censored: left out of the rate
    lo, hi = wilson(spiked, n)
    rate = f"{spiked / n:.2f} ({lo:.2f}-{hi:.2f})" if n else "-"
    firsts = []
    for _, r in group.iterrows():
        step = "div" if r["diverged"] and r["first_spike"] < 0 else (str(r["first_spike"]) if r["first_spike"] >= 0 else "-")
        mark = "" if r["complete"] else f"*{r['last_step']}"
        firsts.append(f"s{r['seed']} {step}{mark}" if seeds else f"{step}{mark}")
    return (f"| {name} | {len(group)} | {int(group['complete'].sum())} | {spiked} | {rate} | "
            f"{', '.join(firsts) if seeds else ''} | {g(group['train_loss_end'].median())} | "
            f"{g(group['eval_final'].median())} | {g(group['grad_cos_median'].median(), 2)} | "
            f"{g(group['grad_norm_end'].median(), 2)} |")


def table(frame: pd.DataFrame, threshold: float, window: int, tail: int) -> str:
    lines = [
        f"Spike: {window}-row moving average of train.loss more than {threshold:g} above its earlier minimum "
        f"(assay analyze instability); a diverged run counts as spiked; the rate is over the complete runs and the "
        f"stopped ones that spiked before they stopped (95% Wilson interval). Train loss and |g| end: mean over the "
        f"last {tail} steps; grad cos: median over evaluations; medians over seeds. First spike per seed "
        f"('-' none; '*N' run stopped at step N before its last step).",
        "",
        "| scheme | runs | complete | spiked | spike rate (95% CI) | first spike by seed | train loss end | "
        "eval final | grad cos | \\|g\\| end |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    groups = list(dict.fromkeys(frame["scheme"]))
    for name in groups:
        lines.append(summary_row(name, frame[frame["scheme"] == name], seeds=True))
    mx = frame[frame["scheme"].str.contains("e[0-9]m[0-9]", regex=True)]
    if len(mx) and mx["scheme"].nunique() > 1:
        lines.append(summary_row(f"all MX schemes pooled ({mx['scheme'].nunique()})", mx, seeds=False))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", nargs="+", help="the sweep directory (runs/mx-proxy-seeds-sweep) or any folder of "
                        "runs; several: their runs in one table (a run id found twice counts once)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="moving-average window, recorded rows")
    parser.add_argument("--tail", type=int, default=100, help="steps averaged for the final train loss / grad norm")
    parser.add_argument("--csv", help="also write one row per run here")
    args = parser.parse_args(argv)
    frames = [per_run(Path(folder), args.threshold, args.window, args.tail) for folder in args.sweep]
    frame = ordered(pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames)
                    else pd.DataFrame())
    if not len(frame):
        print(f"no runs under {' '.join(args.sweep)}", file=sys.stderr)
        return 2
    duplicate = frame["run"].duplicated()
    if duplicate.any():
        print(f"{int(duplicate.sum())} run(s) found twice, counted once: {', '.join(frame['run'][duplicate])}",
              file=sys.stderr)
        frame = frame[~duplicate].reset_index(drop=True)
    if args.csv:
        frame.drop(columns=["index"]).to_csv(args.csv, index=False)
    print(table(frame, args.threshold, args.window, args.tail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
