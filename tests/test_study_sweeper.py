"""`hydra/sweeper=sweeplab`: workers refilled the moment a trial ends, the seed honoured, the same command resuming
from MLflow, and a bad search space refused before any run. The real CLI in subprocesses on a fresh SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import LIGHT, experiment_runs

SMALL = ["data.limit=1000", "training.verbose=2", "tracking.log_model=false", *LIGHT]
SWEEPLAB = ["-m", "hydra/sweeper=sweeplab"]


def newest_study(client: MlflowClient) -> tuple:
    """The newest parent run and its children."""
    runs = experiment_runs(client)
    parent = max((r for r in runs if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.start_time)
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def summary_rows(client: MlflowClient, parent_id: str, folder: Path) -> list[dict]:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    table = pd.read_csv(client.download_artifacts(parent_id, "summary.csv", str(folder)))
    return table.sort_values("job").to_dict("records")


@pytest.mark.slow
def test_workers_are_refilled_as_trials_end_and_the_same_command_resumes(cli, client, tmp_path: Path) -> None:
    """Two joblib workers, trials of 1 or 20 epochs: the grid's seed asks a short and a long trial first, and each
    later trial starts while one other runs (a batch sweeper would wait for both). Run again, nothing trains."""
    args = [*SWEEPLAB, "hydra.sweeper.n_trials=4", "hydra.sweeper.workers=2", "hydra.sweeper.sampler=grid",
            "hydra.sweeper.seed=0", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            "epochs=choice(1,20)", "depth=choice(1,2)", *SMALL]  # fmt: skip
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = newest_study(client)
    assert parent.info.status == "FINISHED" and len(children) == 4
    assert {r.info.status for r in children} == {"FINISHED"}
    assert {(r.data.params["epochs"], r.data.params["depth"]) for r in children} == {
        ("1", "1"), ("1", "2"), ("20", "1"), ("20", "2")}  # fmt: skip
    runs = sorted(children, key=lambda r: r.info.start_time)
    timeline = [(r.data.params["epochs"], r.info.start_time, r.info.end_time) for r in runs]
    assert {runs[0].data.params["epochs"], runs[1].data.params["epochs"]} == {"1", "20"}, timeline
    for later in runs[2:]:
        running = [r for r in runs if r.info.start_time < later.info.start_time < r.info.end_time]
        assert len(running) == 1, timeline  # its worker was refilled while the other still trained

    again = cli(*args)  # the same command: the same study, its four trials given back, none trained again
    assert again.returncode == 0, again.stderr[-3000:]
    assert "sweeplab: 4 trials FINISHED earlier in this study are given back to the sampler" in again.stdout
    assert " starts, " not in again.stdout, again.stdout[-3000:]
    parent_again, children_again = newest_study(client)
    assert parent_again.info.run_id == parent.info.run_id and len(children_again) == 4
    rows = summary_rows(client, parent.info.run_id, tmp_path / "again")
    assert len(rows) == 4 and {row["status"] for row in rows} == {"SKIPPED"}
    assert {row["run_id"] for row in rows} == {r.info.run_id for r in children}


def test_the_seed_asks_the_same_trials_and_a_failed_trial_does_not_stop_the_study(cli, client, tmp_path) -> None:
    """Trials that fail before training (depth=0) keep it fast: each is told FAIL and the next is asked; the
    same seed asks the same values again (failed trials are not resumed), another seed other values."""

    def asked(seed: int) -> list[float]:
        done = cli(*SWEEPLAB, "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler=random", f"hydra.sweeper.seed={seed}",
                   "lr=tag(log, interval(0.001,0.3))", "depth=0", *SMALL)  # fmt: skip
        assert done.returncode == 1, done.stderr[-3000:]
        errors = [line for line in done.stderr.splitlines() if line.startswith("sweeplab: error:")]
        assert errors == [
            f"sweeplab: error: job {n}/2: depth=0 is not allowed: must be an integer >= 1" for n in (1, 2)
        ]
        parent, children = newest_study(client)
        assert parent.info.status == "FAILED" and children == []
        rows = summary_rows(client, parent.info.run_id, tmp_path / str(len(experiment_runs(client))))
        assert [row["status"] for row in rows] == ["FAILED", "FAILED"]
        return [float(row["lr"]) for row in rows]

    first = asked(7)
    assert len(set(first)) == 2 and all(0.001 <= lr <= 0.3 for lr in first)
    assert asked(7) == first
    assert asked(8) != first


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["lr=interval(0.3,0.001)"], "lr=interval(0.3,0.001): `low <= high` must hold, but got (low=0.3, high=0.001)."),
        (["lr=tag(log, interval(0,0.1))"], "lr=tag(log, interval(0,0.1)): "),
        (["hydra.sweeper.sampler=grid", "lr=interval(0.001,0.3)"], "hydra.sweeper.sampler=grid walks listed values"),
        (["hydra.sweeper.sampler=cmaes", "lr=choice(0.01,0.1)"], "hydra.sweeper.sampler=cmaes is not a sampler: use"),
        (["lr=0.01"], "hydra/sweeper=sweeplab has nothing to search: sweep a key"),
    ],
)
def test_a_bad_search_space_is_refused_in_one_line_before_any_run(cli, client, overrides, line) -> None:
    done = cli(*SWEEPLAB, *overrides, *SMALL)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [text for text in done.stderr.splitlines() if text.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"sweeplab: error: {line}"), lines
    assert experiment_runs(client) == []


@pytest.mark.slow
def test_sigterm_stops_every_worker_and_leaves_no_run_running(client, store: str, tmp_path: Path) -> None:
    """SIGTERM reaches the launching process only (the workers are threads there): it is passed on to the joblib
    workers, both trials in flight end KILLED, no new trial starts, and the parent ends KILLED."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    args = [*SWEEPLAB, "hydra.sweeper.n_trials=4", "hydra.sweeper.workers=2", "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2", "lr=interval(0.001,0.3)", "epochs=50", *SMALL]  # fmt: skip
    log = tmp_path / "out.txt"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "sweep.py"), *args], cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        deadline = time.monotonic() + 300
        while log.read_text().count("epoch 2/50") < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
    output = log.read_text()
    assert rc != 0 and "sweeplab: stopped by SIGTERM" in output, output[-3000:]
    parent, children = newest_study(client)
    assert parent.info.status == "KILLED" and len(children) == 2, output[-3000:]
    assert {r.info.status for r in children} == {"KILLED"}, output[-3000:]
    assert "job 3/4" not in output
    rows = summary_rows(client, parent.info.run_id, tmp_path / "summary")
    assert [row["status"] for row in rows] == ["KILLED", "KILLED"]
