"""A sweep against a real `mlflow server` that is lost in the middle: the jobs fail fast and clearly, and once the
server is back the same sweep command resumes it (finished jobs skipped, the interrupted one rerun, nothing counted
twice), with every run's params, history and artifacts on the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, experiment_runs, run_cli
from sweeplab.tracking.ui import UiServer, free_port, start_ui

HASH = "sweeplab.config_hash"
PARENT = "mlflow.parentRunId"
# Three jobs; the middle one runs long enough (150 short epochs, about ten seconds) to be caught after two:
# its epochs reach the server a little after they are trained, so a short job could end before the stop.
SWEEP = ["-m", "epochs=2,150,3", "data.limit=500", "data.validation_size=500", "training.verbose=0",
         "training.jit_compile=false", "tracking.log_model=false", "tracking.experiment=resumable"]  # fmt: skip


def server_on(folder: Path, port: int) -> UiServer:
    """`mlflow server` with its SQLite store and artifacts in `folder`, always on the same port."""
    return start_ui(f"sqlite:///{folder / 'server.db'}", folder / f"server-{time.monotonic_ns()}.log", port,
                    kind="server", extra_args=("--artifacts-destination", str(folder / "artifacts")))  # fmt: skip


def jobs(client: MlflowClient) -> list:
    return [r for r in experiment_runs(client, "resumable") if PARENT in r.data.tags]


def wait_for_second_job(client: MlflowClient, process: subprocess.Popen) -> None:
    """Until one job FINISHED and another has logged two epochs."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sweep ended before it could be interrupted"
        runs = jobs(client)
        running = [r for r in runs if r.info.status == "RUNNING"]
        if any(r.info.status == "FINISHED" for r in runs) and running:
            if len(client.get_metric_history(running[0].info.run_id, "val_loss")) >= 2:
                return
        time.sleep(0.3)
    raise AssertionError("the sweep did not reach its second job")


def started(args: list[str], folder: Path, env: dict[str, str], log) -> subprocess.Popen:
    """sweep.py with `args` in the background, its errors to `log`."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "sweep.py"), *args],
        cwd=folder, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.DEVNULL, stderr=log, text=True,
    )  # fmt: skip


@pytest.mark.slow
def test_server_stopped_mid_sweep_then_resumed(tmp_path: Path) -> None:
    folder, port = tmp_path / "server", free_port()
    folder.mkdir()
    server = server_on(folder, port)
    assert server.url.startswith("http://127.0.0.1:")  # servers sweeplab starts bind to localhost
    env = {"MLFLOW_TRACKING_URI": server.url}
    try:
        client = MlflowClient(tracking_uri=server.url)
        with (tmp_path / "lost.log").open("w+") as log:
            process = started(SWEEP, tmp_path, env, log)
            try:
                wait_for_second_job(client, process)
                first_finished = {r.info.run_id for r in jobs(client) if r.info.status == "FINISHED"}
                (interrupted,) = [r.info.run_id for r in jobs(client) if r.info.status == "RUNNING"]
                stopped = time.monotonic()
                server.stop()
                process.wait(timeout=120)
                failed_within = time.monotonic() - stopped
            finally:
                process.kill()
                process.wait()
            log.seek(0)
            stderr = log.read()
        assert process.returncode == 1, stderr[-3000:]
        errors = [line for line in stderr.splitlines() if line.startswith("sweeplab: error:")]
        assert errors and all(server.url in line for line in errors), stderr[-3000:]
        assert any("RUNNING" in line and interrupted in line for line in errors), stderr[-3000:]
        # Every line is sweeplab's: no traceback, no Hydra "Error executing job with overrides: [...]".
        assert all(line.startswith("sweeplab: ") for line in stderr.splitlines() if line.strip()), stderr[-3000:]

        server = server_on(folder, port)
        done = run_cli(SWEEP, cwd=tmp_path, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        runs = jobs(client)
        finished = [r for r in runs if r.info.status == "FINISHED"]
        assert sorted(r.data.tags[HASH] for r in finished) == sorted({r.data.tags[HASH] for r in runs})
        assert len(finished) == 3  # every job once, none twice
        assert first_finished <= {r.info.run_id for r in finished}  # the finished job was skipped, not rerun
        (parent,) = {r.data.tags[PARENT] for r in runs}  # one parent run for the whole sweep
        assert client.get_run(parent).info.status == "FINISHED"
        # The run the lost server left RUNNING is closed with its reason; nothing stays RUNNING.
        stale = client.get_run(interrupted)
        assert stale.info.status == "KILLED" and "rerun" in stale.data.tags["sweeplab.error"]
        assert all(r.info.status != "RUNNING" for r in experiment_runs(client, "resumable"))
        # Everything went to the server: params, whole histories, artifacts (in its own artifact folder).
        for run in finished:
            epochs = int(run.data.params["epochs"])
            assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == list(range(epochs))
            names = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"history.csv", "learning_curves.png", "config.yaml"} <= names
        assert len(list((folder / "artifacts").rglob("learning_curves.png"))) >= 3
        kept = len(client.get_metric_history(interrupted, "val_loss"))
        assert 2 <= kept < 150  # its epochs are kept
        print(f"sweep failed {failed_within:.1f} s after the server stopped; the lost run kept {kept} epochs")
    finally:
        server.stop()


# A two-trial random search (the baseline, then one drawn); no early stopping and 40 short epochs a trial (a few
# seconds), so that the second trial is still training when the server is stopped.
SEARCH = ["tuner=random", "tuner.max_trials=2", "tuner.patience=null", "epochs=40", "data.limit=500",
          "data.validation_size=500", "training.verbose=0", "training.jit_compile=false", "tracking.log_model=false",
          "tracking.experiment=searched"]  # fmt: skip
TRIAL = "sweeplab.trial_id"


def runs_of(client: MlflowClient, role: str) -> list:
    return [r for r in experiment_runs(client, "searched") if r.data.tags.get("sweeplab.role") == role]


def wait_for_second_trial(client: MlflowClient, process: subprocess.Popen) -> tuple[set[str], str]:
    """Until trial 0 FINISHED and the next has logged two epochs: (the finished run ids, the running one)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "the search ended before it could be interrupted"
        trials = runs_of(client, "trial")
        finished = {r.info.run_id for r in trials if r.info.status == "FINISHED"}
        running = [r.info.run_id for r in trials if r.info.status == "RUNNING"]
        if finished and running and len(client.get_metric_history(running[0], "val_loss")) >= 2:
            return finished, running[0]
        time.sleep(0.3)
    raise AssertionError("the search did not reach its second trial")


@pytest.mark.slow
def test_server_stopped_mid_search_then_resumed(tmp_path: Path) -> None:
    folder, port = tmp_path / "server", free_port()
    folder.mkdir()
    server = server_on(folder, port)
    env = {"MLFLOW_TRACKING_URI": server.url}
    try:
        client = MlflowClient(tracking_uri=server.url)
        with (tmp_path / "lost.log").open("w+") as log:
            process = started(SEARCH, tmp_path, env, log)
            try:
                first_finished, interrupted = wait_for_second_trial(client, process)
                os.killpg(server.process.pid, signal.SIGKILL)  # at once, while the trial still trains
                server.process.wait()
                process.wait(timeout=120)
            finally:
                process.kill()
                process.wait()
            log.seek(0)
            stderr = log.read()
        # One line naming the server and the trial's run left RUNNING there; no traceback, no retry noise.
        assert process.returncode == 1, stderr[-3000:]
        errors = [line for line in stderr.splitlines() if line.startswith("sweeplab: error:")]
        assert len(errors) == 1 and server.url in errors[0] and interrupted in errors[0], stderr[-3000:]
        assert "Traceback" not in stderr and "Retrying" not in stderr, stderr[-3000:]

        server = server_on(folder, port)
        done = run_cli(SEARCH, cwd=tmp_path, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "resuming random search" in done.stdout
        (parent,) = runs_of(client, "study")  # the same parent, reopened, and closed
        assert parent.info.status == "FINISHED"
        trials = runs_of(client, "trial")
        finished = [r for r in trials if r.info.status == "FINISHED"]
        assert sorted(r.data.tags[TRIAL] for r in finished) == ["0", "1"]  # each trial once
        assert first_finished <= {r.info.run_id for r in finished}  # the finished trial was not trained again
        assert len(trials) == 3  # and the interrupted one once more
        stale = client.get_run(interrupted)
        assert stale.info.status == "KILLED" and "rerun" in stale.data.tags["sweeplab.error"]
        (rerun,) = [r for r in finished if r.data.tags[TRIAL] == stale.data.tags[TRIAL]]
        assert (
            rerun.data.tags["sweeplab.attempt"] == "2"
            and stale.data.tags["sweeplab.superseded_by"] == rerun.info.run_id
        )
        assert 2 <= len(client.get_metric_history(interrupted, "val_loss")) < 40  # its epochs are kept
        assert all(r.info.status != "RUNNING" for r in experiment_runs(client, "searched"))
    finally:
        server.stop()
