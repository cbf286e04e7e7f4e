"""A sweep whose artifact store fills up for real (a small tmpfs): the job that cannot write fails in one line
naming the path and ends FAILED, finished runs and their files stay whole, the sweep goes on, and once space is
freed the same command trains only what did not finish. The first test keeps the SQLite store on the ordinary
disk; the second puts the whole default store (mlruns/) on the full disk."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sqlite3
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import experiment_runs, require, run_cli

# Three jobs of the baseline's model (its model.keras about 1.1 MB, a job's files about 1.3 MB in all).
SWEEP = ["-m", "lr=0.01,0.05,0.1", "data.limit=500", "data.validation_size=500", "epochs=2", "training.verbose=0",
         "training.jit_compile=false", "tracking.experiment=full"]  # fmt: skip
LEFT_FREE = 1_900_000  # room for the first job's files, not for the second's model: it is cut half-written
PNG_END = b"IEND\xaeB`\x82"


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """`folder`, made and mounted as a tmpfs of `size` (root only) for the block, unmounted after it."""
    folder.mkdir()
    mount = shutil.which("mount")
    command = [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)] if mount else []
    done = mount and subprocess.run(command, capture_output=True)
    require(bool(done) and done.returncode == 0, "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs mounted for the test (root only), unmounted after it."""
    with tmpfs(tmp_path / "small-disk", "6m") as folder:
        yield folder


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def by_lr(client: MlflowClient) -> dict[str, list]:
    found: dict[str, list] = {}
    for run in experiment_runs(client, "full"):
        if "lr" in run.data.params and run.data.tags.get("sweeplab.role") == "job":
            found.setdefault(run.data.params["lr"], []).append(run)
    return found


def models_of(client: MlflowClient, run) -> list:
    return [m for m in client.search_logged_models([run.info.experiment_id]) if m.source_run_id == run.info.run_id]


def assert_whole(client: MlflowClient, run) -> None:
    """Every file of a finished run is complete: its history, config, plots and model."""
    folder = Path(run.info.artifact_uri.removeprefix("file://"))
    history = (folder / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2  # a header and both epochs
    assert yaml.safe_load((folder / "config.yaml").read_text())["epochs"] == 2
    for png in ("learning_curves.png", "confusion_matrix.png"):
        assert (folder / png).read_bytes().endswith(PNG_END), png
    (model,) = models_of(client, run)
    assert str(model.status) == "READY"
    (keras_file,) = Path(model.artifact_location.removeprefix("file://")).rglob("model.keras")
    with zipfile.ZipFile(keras_file) as archive:
        assert archive.testzip() is None


@pytest.mark.slow
def test_a_disk_that_fills_mid_sweep_fails_the_job_keeps_the_rest_and_resumes(
    tmp_path: Path, small_disk: Path, store: str, client: MlflowClient
) -> None:
    client.create_experiment("full", artifact_location=str(small_disk / "artifacts"))
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - LEFT_FREE))

    first = run_cli(SWEEP, cwd=tmp_path, timeout=300)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    errors = [line for line in first.stderr.splitlines() if line.startswith("sweeplab: error:")]
    for job in ("job 2/3", "job 3/3"):  # one line each, naming where it could not write
        (line,) = [e for e in errors if e.startswith(f"sweeplab: error: {job}: ")]
        assert "No space left on device" in line and str(small_disk) in line, line
    (summary,) = [e for e in errors if "summary could not be logged" in e]  # the parent's files: full too
    assert str(small_disk) in summary, summary
    runs = by_lr(client)
    (kept,) = runs["0.01"]
    assert kept.info.status == "FINISHED"
    for lr in ("0.05", "0.1"):
        (failed,) = runs[lr]
        assert failed.info.status == "FAILED" and "No space left on device" in failed.data.tags["sweeplab.error"]
    # The second job's model was cut while written: MLflow marks it FAILED; nothing points at it as a model.
    (cut,) = models_of(client, runs["0.05"][0])
    assert str(cut.status) == "FAILED"
    (partial,) = Path(cut.artifact_location.removeprefix("file://")).rglob("model.keras")
    (whole,) = Path(models_of(client, kept)[0].artifact_location.removeprefix("file://")).rglob("model.keras")
    assert partial.stat().st_size < whole.stat().st_size
    assert_whole(client, kept)
    before = digest(small_disk / "artifacts" / kept.info.run_id)
    parent = kept.data.tags["mlflow.parentRunId"]
    assert client.get_run(parent).info.status == "FAILED"

    filler.unlink()  # space is freed
    again = run_cli(SWEEP, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "job 1/3 skipped" in again.stdout
    runs = by_lr(client)
    assert [r.info.run_id for r in runs["0.01"]] == [kept.info.run_id]  # not trained again
    for lr in ("0.05", "0.1"):
        assert sorted(r.info.status for r in runs[lr]) == ["FAILED", "FINISHED"]
        assert_whole(client, next(r for r in runs[lr] if r.info.status == "FINISHED"))
    assert digest(small_disk / "artifacts" / kept.info.run_id) == before  # its files untouched
    assert client.get_run(parent).info.status == "FINISHED"  # the same parent, now complete


# The laptop's case: the whole default store (mlruns/: SQLite and artifacts) on one disk that fills up.
WHOLE_STORE_SWEEP = ["-m", "lr=0.03,0.1,0.3", "data.limit=500", "data.validation_size=500", "epochs=2",
                     "training.verbose=0", "training.jit_compile=false"]  # fmt: skip
WHOLE_STORE_FREE = 3_000_000  # the store's database and the first job fit, the second job's model does not


@pytest.fixture
def whole_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The default store (./mlruns/: its SQLite file and artifacts) on a 64 MB tmpfs of its own (root only)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default store: ./mlruns/mlflow.db
    with tmpfs(tmp_path / "mlruns", "64m") as mlruns:
        yield mlruns


def running_runs(mlruns: Path) -> list[str]:
    """The store's runs still RUNNING, once its database passes SQLite's integrity check."""
    with sqlite3.connect(mlruns / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return [r for (r,) in db.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'")]


@pytest.mark.slow
def test_a_full_disk_under_the_whole_store_ends_in_one_line_and_resumes(tmp_path: Path, whole_store: Path) -> None:
    mlruns = whole_store
    filler = mlruns / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(mlruns).free - WHOLE_STORE_FREE))
    first = run_cli(WHOLE_STORE_SWEEP, cwd=tmp_path, timeout=300)
    lines = first.stderr.splitlines()
    assert first.returncode == 1, first.stderr[-3000:]
    assert lines and all(line.startswith("sweeplab: ") for line in lines), first.stderr[-3000:]
    (full,) = [line for line in lines if "the disk under the MLflow store" in line]
    assert full.startswith(f"sweeplab: error: the disk under the MLflow store {mlruns} is full: "), full
    assert "could not be written" in full and "rerun the same command, it resumes" in full, full
    running = running_runs(mlruns)
    assert all(run_id in full for run_id in running), full  # what stays RUNNING is said
    assert ("stay RUNNING" in full or "stays RUNNING" in full) == bool(running), full

    filler.unlink()  # space is freed: the same command finishes the sweep
    again = run_cli(WHOLE_STORE_SWEEP, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "FINISHED: 3 of 3 jobs finished" in again.stdout, again.stdout[-3000:]
    client = MlflowClient(f"sqlite:///{mlruns / 'mlflow.db'}")
    runs = experiment_runs(client)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    finished = {r.data.params.get("lr") for r in runs if r.info.status == "FINISHED" and "lr" in r.data.params}
    assert finished >= {"0.03", "0.1", "0.3"}


SINGLE_RUN = ["data.limit=500", "data.validation_size=500", "epochs=2", "training.verbose=0",
              "training.jit_compile=false"]  # fmt: skip
SINGLE_RUN_FREE = 1_500_000  # the run's records and metrics fit, its model (about 1.1 MB, copied twice) does not


@pytest.mark.slow
def test_a_single_run_on_a_full_disk_ends_in_one_line(tmp_path: Path, whole_store: Path) -> None:
    """`python sweep.py` on a full disk: one line (not MLflow's traceback, not Hydra's job line), exit 1, the run
    it leaves RUNNING named; once space is freed the same command trains."""
    filler = whole_store / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(whole_store).free - SINGLE_RUN_FREE))
    first = run_cli(SINGLE_RUN, cwd=tmp_path, timeout=300)
    lines = [line for line in first.stderr.splitlines() if line.strip()]
    assert first.returncode == 1, first.stderr[-3000:]
    assert len(lines) == 1, first.stderr[-3000:]
    assert lines[0].startswith(f"sweeplab: error: the disk under the MLflow store {whole_store} is full: "), lines
    assert "could not be written" in lines[0] and lines[0].endswith("run the same command again"), lines
    running = running_runs(whole_store)
    assert all(f"run {run_id} stays RUNNING" in lines[0] for run_id in running), lines

    filler.unlink()
    again = run_cli(SINGLE_RUN, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "test_accuracy=" in again.stdout
