"""The benchmark's smoke run: `python -m bench --quick` runs every item and prints every row of its table.

Timings are not asserted (they depend on the machine); the table's shape and the measured values are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Rows every quick run prints, each with its figures measured (numbers, not "not available").
EXPECTED_ROWS = [
    "wall time (s), sweep.py backend=tensorflow",
    "s/epoch (median), sweep.py backend=tensorflow",
    "peak memory (MB), sweep.py backend=tensorflow",
    "test accuracy (mean of 1), sweep.py backend=tensorflow",
    "wall time (s), sweep.py backend=jax",
    "end to end (s): MLflow off vs on",
    "fit only (per-epoch logging) (s): MLflow off vs on",
    "outside fit (s): MLflow off vs on",
    "scripts vs sweep.py -m joblib backend=tensorflow",
    "scripts vs sweep.py -m joblib backend=jax",
    "compare.py --by optimizer (s)",
    "mlflow ui: runs/search, 100 runs (s)",
    "one decision on SQLite (ms)",
    "one decision on a tracking server (ms)",
]


# The one row a quick run leaves out on purpose (the JAX sweep; item 1 already runs JAX).
NOT_RUN_IN_QUICK = "not run (--quick)"


def figure(cell: str) -> float:
    """The number in a table cell: `52.0`, `0.54x`, `+22.5%`, `-0.00 pt`; anything else (`not available`) fails."""
    text = cell.strip().removesuffix(" pt").removesuffix("x").removesuffix("%")
    try:
        return float(text)
    except ValueError:
        raise AssertionError(f"{cell!r} is not a measured figure") from None


def check_figures(line: str) -> None:
    """A table row (| item | measure | baseline | sweeplab | ratio | target | met |) whose figures were measured."""
    _item, measure, baseline, ours, ratio, _target, met = (c.strip() for c in line.strip().strip("|").split("|"))
    if ours == NOT_RUN_IN_QUICK:
        assert "backend=jax" in measure and figure(baseline) > 0, line
        return
    assert figure(ours) >= 0, line
    for cell in (baseline, ratio):
        if cell:
            figure(cell)
    assert met in ("", "yes", "NO"), line


def test_a_row_not_measured_fails_the_check() -> None:
    """What the bench prints when an item could not measure must not pass as a row."""
    check_figures(
        "| 1 baseline (1 ep) | wall time (s), sweep.py backend=tensorflow | 28.0 | 52.0 | 0.54x | >= 2.5x | NO |"
    )
    check_figures("| 4 compare (20 runs) | compare.py --by optimizer (s) |  | 13.2 |  | < 10 s | NO |")
    for unmeasured in ("not available (failed)", "not available", ""):
        with pytest.raises(AssertionError):
            check_figures(f"| 4 compare (20 runs) | compare.py --by optimizer (s) |  | {unmeasured} |  | < 10 s |  |")
    with pytest.raises(AssertionError):
        check_figures(
            "| 2 sweep | wall time (s): 2 scripts vs sweep.py -m joblib backend=jax | not available | x |  |  |  |"
        )


@pytest.mark.slow
def test_quick_bench_prints_every_row() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop("MLFLOW_TRACKING_URI", None)  # the bench makes its own store
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout[done.stdout.index("| item |") :]
    rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| ") and " | " in line}
    for expected in EXPECTED_ROWS:
        matching = [line for measure, line in rows.items() if expected in measure]
        assert matching, f"no row for {expected!r} in:\n{table}"
    # Every row measured: its sweeplab figure a number, its baseline and ratio numbers where the row has them.
    for measure, line in rows.items():
        if measure != "measure":  # the header
            check_figures(line)
    accuracy = next(line for measure, line in rows.items() if measure.startswith("test accuracy (mean of 1)"))
    assert 0.1 < float(accuracy.strip("|").split("|")[3]) <= 1.0, accuracy
    assert (ROOT / "bench" / "results" / "quick.md").read_text().count("\n| ") >= len(EXPECTED_ROWS)
    assert (ROOT / "bench" / "results" / "quick.csv").is_file()
