"""python3 -m assay_analysis report DIR [-o report.html] [--watch SECONDS]"""
import argparse
import sys

import matplotlib

matplotlib.use("Agg")

from . import report  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="assay report", description="HTML report of a run or a folder of runs")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="write one self-contained HTML page with figures and tables")
    rep.add_argument("path", help="a run directory, a run.h5, or a folder of runs (a sweep)")
    rep.add_argument("-o", "--output", default="report.html")
    rep.add_argument("--watch", type=int, metavar="SECONDS", help="rewrite every SECONDS until every run has ended")
    args = parser.parse_args(argv)
    if args.watch:
        report.watch(args.path, args.output, args.watch)
    else:
        report.write(args.path, args.output)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
