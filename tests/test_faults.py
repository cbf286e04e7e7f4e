"""Faults in sweeplab's own words. Data that cannot be read fails a study once, before its first job is launched
or submitted: a grid, a sweeper's study and a SLURM array with an empty Keras cache each end in one line naming
the missing file and the fix (exit 2), with no job started and no run made. A failing job leaves only sweeplab's
lines on stderr. Real sweep.py, real SQLite store, no network."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from conftest import experiment_runs, require_module
from sweeplab.tracking import full_disk as store

GRID = ["-m", "lr=0.001,0.003,0.01,0.03,0.1", "data.limit=500", "epochs=1"]  # 5 jobs
OPTUNA = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "hydra.sweeper.n_trials=5",
          "lr=interval(0.001,0.3)", "data.limit=500", "epochs=1"]  # fmt: skip
SLURM = ["-m", "hydra/launcher=slurm", "lr=0.01,0.1", "data.limit=500", "epochs=1"]


@pytest.mark.slow
@pytest.mark.parametrize("args", [GRID, OPTUNA, SLURM], ids=["grid", "optuna", "slurm"])
def test_an_empty_keras_cache_fails_the_study_once_before_any_job(args, cli, client, tmp_path: Path) -> None:
    if "hydra/sweeper=optuna" in args:
        require_module("hydra_plugins.hydra_optuna_sweeper")
    if "hydra/launcher=slurm" in args:
        require_module("hydra_plugins.hydra_submitit_launcher")
    empty = tmp_path / "keras-empty"
    done = cli(*args, env={"KERAS_HOME": str(empty)}, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = done.stderr.splitlines()  # one line: not one per job
    missing = empty / "datasets" / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    assert line.startswith(f"sweeplab: error: {missing} is missing from the Keras cache"), line
    assert "make data" in line and "data.path=" in line, line
    assert "sweeplab: job" not in done.stdout  # no job started (nor submitted)
    assert experiment_runs(client) == []  # not even the study's parent run


@pytest.mark.slow
def test_a_missing_data_path_fails_the_study_before_any_job(cli, client, tmp_path: Path) -> None:
    done = cli(*GRID, f"data.path={tmp_path / 'nowhere'}", timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"sweeplab: error: data.path={tmp_path / 'nowhere'} does not exist"), line
    assert "tensorflow" not in done.stderr.lower() and experiment_runs(client) == []


@pytest.mark.slow
def test_a_corrupt_data_file_fails_the_study_before_any_job(cli, client, tmp_path: Path) -> None:
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not an npz")
    done = cli(*GRID, f"data.path={broken}", timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"sweeplab: error: cannot read {broken}: "), line
    assert "tensorflow" not in done.stderr.lower() and experiment_runs(client) == []


# --- a failing job: only sweeplab's lines, not Hydra's "Error executing job with overrides" ---------------


@pytest.mark.slow
def test_a_failing_job_leaves_only_sweeplab_lines_on_stderr(cli, client) -> None:
    """lr=1000 diverges in its first epoch: the job fails, the other finishes, the study ends FAILED (exit 1)."""
    args = ["-m", "lr=0.01,1000", "data.limit=200", "data.validation_size=200", "epochs=1", "training.verbose=0",
            "training.jit_compile=false", "tracking.log_model=false"]  # fmt: skip
    done = cli(*args, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("sweeplab: ") for line in lines), done.stderr[-3000:]
    assert any(line.startswith("sweeplab: error: job 2/2: ") and "diverged" in line for line in lines), lines
    assert sorted(r.info.status for r in experiment_runs(client)) == ["FAILED", "FAILED", "FINISHED"]


# --- a full disk named from the errors MLflow raises (the staged disk: tests/test_full_disk.py) -----------


def raised_from(cause: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except BaseException as caught:
        return caught


def test_a_full_disk_is_told_from_mlflows_errors(tmp_path: Path) -> None:
    from mlflow.exceptions import MlflowException

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    model = str(tmp_path / "mlruns" / "1" / "models" / "m-1" / "model.keras")
    copy = raised_from(OSError(errno.ENOSPC, "No space left on device", "/tmp/x/model.keras", None, model),
                       MlflowException("could not update the logged model"))  # fmt: skip
    status = raised_from(sqlite3.OperationalError("database or disk is full"),
                         MlflowException("(sqlite3.OperationalError) database or disk is full [SQL: UPDATE runs "
                                         "SET status=?, end_time=? WHERE runs.run_uuid = ?]"))  # fmt: skip
    assert store.full_disk(copy) and store.full_disk(status)
    assert not store.full_disk(raised_from(OSError(errno.EACCES, "Permission denied"), RuntimeError("x")))
    assert store.unwritten(copy) == f"the file {model}" and store.unwritten(status) == "a run's status"
    line = store.full_disk_line(uri, status, ["run abc"])
    assert line.startswith(f"the disk under the MLflow store {tmp_path / 'mlruns'} is full: a run's status could")
    assert "run abc stays RUNNING" in line and line.endswith("rerun the same command, it resumes where it stopped")
    elsewhere = raised_from(OSError(errno.ENOSPC, "No space left on device", "/a", None, "/small/disk/f"), OSError())
    assert store.full_disk_line(uri, elsewhere, []).startswith("the disk under the MLflow store's artifacts is full")
