"""`python -m bench [--quick]`: sweeplab against the plain Keras script it replaces, side by side.

Items (each measured in fresh processes, variants alternating order between repeats):
  1. the tutorial script vs `python sweep.py` on the baseline (and with backend=jax): wall time, seconds
     per epoch, peak memory, test accuracy;
  2. a 4-job learning-rate sweep: four tutorial scripts one after another vs `sweep.py -m` on joblib;
  3. tracking on vs off: the same run with and without MLflow;
  4. compare.py over an experiment of 1,000 runs (30-epoch histories), and `mlflow ui`'s response time;
  5. one pruning decision against 50 siblings' 20-epoch histories, on SQLite and on a tracking server;
  6. (on request: --only 6) a 6-lr grid and a 12-trial Optuna study without and with pruner=median.
Results print as a table and go to bench/results/ as Markdown and CSV.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.core import FULL, QUICK, RESULTS, Bench, Row
from bench.items import item_baseline, item_compare, item_pruned_sweeps, item_pruning, item_sweep

# -- report --------------------------------------------------------------------------------------------
HEADER = ("item", "measure", "plain Keras / off", "sweeplab", "ratio", "target", "met")


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(vars(r).values()) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def write_results(rows: list[Row], header: str, quick: bool) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "quick" if quick else "bench"
    (RESULTS / f"{stem}.md").write_text(header + "\n\n" + markdown(rows) + "\n")
    with open(RESULTS / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(vars(r).values() for r in rows)
    return RESULTS / f"{stem}.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 images, 1 epoch, 20 fake runs")
    parser.add_argument("--repeats", type=int, help="repeats of the baseline items (default 2, quick 1)")
    parser.add_argument(
        "--only",
        default="1,2,4,5",
        help="items to run, e.g. 1 (item 3 comes with item 1; item 6, pruned sweeps, only on request)",
    )
    parser.add_argument("--epochs", type=int, help="epochs of items 1-3 (default 30 and 10 for the sweep)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.repeats:
        settings.repeats = args.repeats
    if args.epochs:
        settings.epochs = settings.sweep_epochs = args.epochs
    started = time.perf_counter()
    header = (
        f"sweeplab bench ({'quick' if settings.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M')}, on {machine()}"
    )
    print(header, flush=True)
    with tempfile.TemporaryDirectory(prefix="sweeplab-bench-") as tmp:
        work = Path(tmp)
        store = f"sqlite:///{work / 'mlflow.db'}"
        # Create the store (its schema migrations) once, as a project's store already exists before a run.
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=store).search_experiments()
        only = set(args.only.split(","))
        items = [
            item
            for number, item in (
                ("1", item_baseline),
                ("2", item_sweep),
                ("4", item_compare),
                ("5", item_pruning),
                ("6", item_pruned_sweeps),
            )
            if number in only
        ]
        benches = [Bench(settings, work, store) for _ in items]
        if settings.quick:
            # A smoke run's timings mean nothing: run the items side by side to keep it short.
            with ThreadPoolExecutor(len(items)) as pool:
                list(pool.map(lambda pair: pair[0](pair[1]), zip(items, benches, strict=True)))
        else:
            for item, bench in zip(items, benches, strict=True):
                item(bench)
    rows = [row for bench in benches for row in bench.rows]
    table = markdown(rows)
    path = write_results(rows, header, settings.quick)
    print("\n" + header + "\n\n" + table + f"\n\nbench: {time.perf_counter() - started:.0f} s; written to {path}")


if __name__ == "__main__":
    main()
