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

# Rows every quick run prints; items 2 and 4 may say "not available" where sweeps or compare.py are missing.
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
    # Item 1 and 3 need only sweeplab itself: they must have measured, not skipped.
    for measure, line in rows.items():
        if measure.startswith("one decision on"):  # item 5 needs only sweeplab and MLflow too
            assert float(line.strip("|").split("|")[3]) > 0, line
        if measure.startswith(("wall time (s), sweep.py", "end to end (s): MLflow", "outside fit (s): MLflow")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[3] != "not available" and float(cells[3]) > 0, line
            assert cells[4].endswith(("x", "%")), line
    accuracy = next(line for measure, line in rows.items() if measure.startswith("test accuracy (mean of 1)"))
    assert 0.1 < float(accuracy.strip("|").split("|")[3]) <= 1.0, accuracy
    assert (ROOT / "bench" / "results" / "quick.md").read_text().count("\n| ") >= len(EXPECTED_ROWS)
    assert (ROOT / "bench" / "results" / "quick.csv").is_file()
