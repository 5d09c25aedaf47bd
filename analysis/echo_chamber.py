#!/usr/bin/env python3
"""The echo-chamber study's table (tools/echo_chamber.sh OUT): per model size and RL variant, the format
shares and pass@k at the end of pretraining and at the end of RL, and the first RL eval step at which one
format holds >= 90% of the sampled solutions.

    python3 analysis/echo_chamber.py OUT [--split test]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assay_analysis.store import load_run  # noqa: E402

FORMS = ("function_code", "tagged_code", "prose", "none")


def series(run, name):
    rows = run.metric(name).sort_values("step")
    return dict(zip(rows["step"].astype(int), rows["value"]))


def shares_at(run, split, step):
    return {f: series(run, f"eval.{split}.format.{f}.share").get(step, float("nan")) for f in FORMS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the folder tools/echo_chamber.sh wrote")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    out, split = Path(args.out), args.split
    header = ("| size | variant | step | function / tagged / prose / none share | accuracy f / t / p | pass@1 | pass@8 | "
              "pass@64 | greedy | >= 90% one format at |")
    print(header)
    print("|---|---|---:|---|---|---:|---:|---:|---:|---|")
    for size in ("small", "large"):
        pretrain_path = out / f"{size}-pretrain" / "run.h5"
        if not pretrain_path.exists():
            continue
        pre = load_run(pretrain_path)
        runs = sorted(p.parent for p in out.glob(f"{size}-*/run.h5") if p.parent.name != f"{size}-pretrain")
        rows = [("pretrain", pre, None)] + [(p.name[len(size) + 1:], load_run(p / "run.h5"), pre) for p in runs]
        for variant, run, base in rows:
            steps = sorted(series(run, f"eval.{split}.format.function_code.share"))
            if not steps:
                print(f"| {size} | {variant} | - | (no evals) |")
                continue
            last = steps[-1]
            share = shares_at(run, split, last)
            acc = [series(run, f"eval.{split}.format.{f}.accuracy").get(last, float("nan")) for f in FORMS[:3]]
            pk = [series(run, f"eval.{split}.pass@{k}").get(last, float("nan")) for k in (1, 8, 64)]
            greedy = series(run, f"eval.{split}.greedy_correct").get(last, float("nan"))
            collapse = "-"
            for step in steps:
                s = shares_at(run, split, step)
                top = max(FORMS[:3], key=lambda f: s[f])
                if s[top] >= 0.9:
                    collapse = f"{step} ({top})"
                    break
            print(f"| {size} | {variant} | {last} | " + " / ".join(f"{share[f]:.2f}" for f in FORMS) + " | "
                  + " / ".join(f"{a:.2f}" for a in acc) + " | " + " | ".join(f"{v:.3f}" for v in pk)
                  + f" | {greedy:.3f} | {collapse} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
