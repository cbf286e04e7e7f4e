"""`python compare.py`: arguments in, the comparison table and report out; bad input is one line, exit 2."""

from __future__ import annotations

import argparse
from pathlib import Path

from sweeplab.backend import quiet_start
from sweeplab.cli import fail
from sweeplab.compare.analysis import check_at
from sweeplab.compare.report import format_text, write_report
from sweeplab.compare.runs import compare_run_set, default_out_dir, load_runs, log_report, study_search
from sweeplab.errors import CompareError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="compare.py",
        description="Compare MLflow runs grouped by a param, seeds collapsed: mean, std, IQM and a 95%% "
        "bootstrap interval per group, P(A > B) of the best group against each other one, a verdict that "
        "says whether the seeds can tell them apart, figures, an HTML + Markdown report, groups.csv and "
        "verdict.json.",
    )
    p.add_argument(
        "--by",
        default="optimizer",
        help="param to group by: optimizer, lr, activation, any logged param name (default: optimizer)",
    )
    p.add_argument(
        "--metric",
        help="the metric to compare, any logged metric: val_loss, val_mae, test_accuracy, ... (default: the "
        "runs' objective.metric, else val_accuracy)",
    )
    p.add_argument(
        "--direction",
        default="auto",
        choices=["auto", "max", "min"],
        help="whether higher (max) or lower (min) values are better; auto: the runs' objective.direction for "
        "their objective, else inferred from the name (losses and errors go down)",
    )
    p.add_argument(
        "--at",
        default="last",
        help="which epoch's value a run counts with: last (default) or best",
    )
    p.add_argument(
        "--experiment",
        help="MLflow experiment name (default: fashion_mnist, else the store's only experiment with runs; "
        "with --sweep, the sweep's)",
    )
    p.add_argument(
        "--sweep",
        help="only the runs of this study: its parent run id or run name; the "
        "report is also logged to the parent run under comparison/",
    )
    p.add_argument("--out", type=Path, help="report folder (default: reports/<experiment>[-<sweep>]-<by>)")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else mlruns/mlflow.db)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_at(args.at)
    except CompareError as err:
        fail(err, prog="compare")
    quiet_start()
    from sweeplab.tracking.store import tracking_uri

    uri = tracking_uri(given=args.tracking_uri)
    try:
        run_set = load_runs(args.experiment, args.sweep, tracking_uri=uri)
        comparison = compare_run_set(run_set, args.by, args.at, args.metric, args.direction)
    except CompareError as err:
        fail(err, prog="compare")
    out = args.out or default_out_dir(run_set, comparison.by)
    paths = write_report(comparison, out, study_search(run_set, uri))
    if run_set.sweep:
        log_report(run_set.sweep, paths, tracking_uri=uri)
    print(format_text(comparison))
    print(
        f"\nReport: {paths['html']} (also report.md, groups.csv, verdict.json and the figures in {out})"
        + (" - logged to the sweep's parent run" if run_set.sweep else "")
    )
    return 0
