"""Sweeps on a real one-node SLURM cluster (tests/slurm_cluster.py), through the shipped launcher config.

A sweep fits the node and finishes; sbatch's refusal and a job stuck pending fail the sweep in one line with
the cluster's reason; SIGTERM to the sweep cancels its jobs, waits for them, and the same command then trains
only what did not finish; the same stop on sweeplab's local launcher (hydra/launcher=local). Real sweep.py,
Slurm and SQLite store; tiny data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from slurm_cluster import Cluster, missing_part, start_cluster, stop_cluster

from conftest import LIGHT, ROOT, experiment_runs, require, run_cli

pytestmark = pytest.mark.slow

TINY = ["data.limit=1000", "training.verbose=2", "tracking.log_model=false", *LIGHT]
# One short job, one long enough to be stopped mid-training; the rerun trains the long one again.
LONG_EPOCHS = 40
INTERRUPTED = ["-m", f"epochs=1,{LONG_EPOCHS}", *TINY]


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A one-node Slurm cluster for this module; skipped where it cannot start (a failure under CI=true)."""
    reason = missing_part()
    require(reason is None, reason or "")
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        require(False, f"the test SLURM cluster did not start: {err}")
    yield cluster
    stop_cluster(cluster)


def fresh_store(folder: Path) -> tuple[dict[str, str], MlflowClient]:
    (folder / "mlruns").mkdir(parents=True)
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    return {"MLFLOW_TRACKING_URI": uri}, MlflowClient(tracking_uri=uri)


def parent_and_children(client: MlflowClient) -> tuple:
    runs = experiment_runs(client)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("sweeplab: error:")]


def test_two_jobs_on_the_shipped_config(slurm_cluster: Cluster, tmp_path: Path) -> None:
    """hydra/launcher=slurm unchanged: a two-task array, each job on the one core Slurm gives it by default."""
    env, client = fresh_store(tmp_path)
    done = run_cli(
        ["-m", "hydra/launcher=slurm", "lr=0.01,0.1", "epochs=2", *TINY], tmp_path, {**env, **slurm_cluster.env}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parent, kids = parent_and_children(client)
    assert parent.info.status == "FINISHED"
    assert sorted(r.data.params["lr"] for r in kids) == ["0.01", "0.1"]
    for run in kids:
        assert run.info.status == "FINISHED"
        assert run.data.params["training.threads"] == "1"  # the core Slurm gave, not all of the node's
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [0, 1]
    scripts = list(tmp_path.glob("multirun/*/*/.submitit/*/*_submission.sh"))
    assert scripts and "#SBATCH --array=0-1" in scripts[0].read_text()
    assert slurm_cluster.queued() == []


def test_refused_submission_fails_in_one_line(slurm_cluster: Cluster, tmp_path: Path) -> None:
    """More memory than the node has: sbatch refuses, the sweep says why in one line, the parent ends FAILED."""
    env, client = fresh_store(tmp_path)
    too_much = slurm_cluster.memory_mb // 1024 + 100
    args = ["-m", "hydra/launcher=slurm", f"hydra.launcher.mem_gb={too_much}", "lr=0.01,0.1", "epochs=2", *TINY]
    done = run_cli(args, tmp_path, {**env, **slurm_cluster.env})
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = error_lines(done.stderr)
    assert line.startswith("sweeplab: error: sbatch refused the sweep's 2 jobs: "), line
    assert "Requested node configuration is not available" in line and f"mem_gb={too_much}" in line
    parent, kids = parent_and_children(client)
    assert parent.info.status == "FAILED" and kids == []
    assert parent.data.tags["sweeplab.error"] == line.removeprefix("sweeplab: error: ")


def test_job_pending_for_good_is_reported(slurm_cluster: Cluster, tmp_path: Path) -> None:
    """More cores than the node has: Slurm takes the array but it can never start (PartitionConfig); the sweep
    fails with squeue's reason, its jobs cancelled, instead of waiting forever."""
    env, client = fresh_store(tmp_path)
    cores = slurm_cluster.cpus + 62
    args = ["-m", "hydra/launcher=slurm", f"training.threads={cores}", "lr=0.01,0.1", "epochs=2", *TINY]
    done = run_cli(args, tmp_path, {**env, **slurm_cluster.env}, timeout=180)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = error_lines(done.stderr)
    assert "pends with reason PartitionConfig, which will not clear by itself" in line, line
    assert f"cpus_per_task={cores}" in line
    parent, kids = parent_and_children(client)
    assert parent.info.status == "FAILED" and kids == []
    assert "PartitionConfig" in parent.data.tags["sweeplab.error"]
    assert slurm_cluster.queued() == []


# --- stop means stop -------------------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the sweep ended before {what}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s: {log.read_text()[-3000:]}"
        time.sleep(0.5)


def long_run_epochs(client: MlflowClient) -> int:
    """Epochs logged so far by the long job's run, once the short job has FINISHED (0 before)."""
    runs = experiment_runs(client)
    short = [r for r in runs if r.data.params.get("epochs") == "1" and r.info.status == "FINISHED"]
    long = [r for r in runs if r.data.params.get("epochs") == str(LONG_EPOCHS)]
    if not short or not long:
        return 0
    return len(client.get_metric_history(long[0].info.run_id, "val_accuracy"))


def interrupt_then_rerun(
    folder: Path, launcher: list[str], env: dict[str, str], queued: Callable[[], list[str]] = list
) -> dict:
    """The sweep, SIGTERM once the short job FINISHED and the long one logged an epoch; then the same command.
    `queued`: the cluster's jobs, read as soon as the stopped sweep has exited."""
    store_env, client = fresh_store(folder)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **store_env, **env}
    log = folder / "interrupted.txt"
    args = [*INTERRUPTED, *launcher]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "sweep.py"), *args], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            wait_for("a FINISHED short job and a long one training", lambda: long_run_epochs(client) >= 1, proc, log)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=240)
            left = queued()
        finally:
            proc.kill()
    parent, kids = parent_and_children(client)
    again = run_cli(args, folder, env)
    return {"rc": rc, "output": log.read_text(), "left": left, "parent": parent, "kids": kids, "rerun": again,
            "client": client}  # fmt: skip


def check_stopped_then_resumed(result: dict) -> None:
    """Children KILLED with their epochs kept and ended before their parent; a rerun trains only those."""
    assert result["rc"] != 0, result["output"][-3000:]
    parent, kids = result["parent"], result["kids"]
    assert parent.info.status == "KILLED", result["output"][-3000:]
    by_epochs = {r.data.params["epochs"]: r for r in kids}
    assert set(by_epochs) == {"1", str(LONG_EPOCHS)} and len(kids) == 2
    assert by_epochs["1"].info.status == "FINISHED"
    killed = by_epochs[str(LONG_EPOCHS)]
    assert killed.info.status == "KILLED", result["output"][-3000:]
    assert "SIGTERM" in killed.data.tags["sweeplab.error"]
    steps = [m.step for m in result["client"].get_metric_history(killed.info.run_id, "val_accuracy")]
    assert 1 <= len(steps) < LONG_EPOCHS and steps == list(range(len(steps)))
    for run in kids:  # no child went on (or finished) after its parent was closed
        assert run.info.end_time <= parent.info.end_time
    # The same command: the short job is skipped, the long one trains to the end under the same parent.
    rerun, client = result["rerun"], result["client"]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    parent_after, kids_after = parent_and_children(client)
    assert parent_after.info.run_id == parent.info.run_id and parent_after.info.status == "FINISHED"
    assert parent_after.data.metrics["jobs_skipped"] == 1 and parent_after.data.metrics["jobs_finished"] == 2
    new = [r for r in kids_after if r.info.run_id not in {k.info.run_id for k in kids}]
    assert [(r.data.params["epochs"], r.info.status) for r in new] == [(str(LONG_EPOCHS), "FINISHED")]
    assert client.get_run(killed.info.run_id).info.status == "KILLED"


def test_sigterm_cancels_the_slurm_jobs_and_the_rerun_finishes_them(slurm_cluster: Cluster, tmp_path: Path) -> None:
    result = interrupt_then_rerun(tmp_path, ["hydra/launcher=slurm"], slurm_cluster.env, slurm_cluster.queued)
    assert result["left"] == []  # nothing left queued or running once the stopped sweep has exited
    check_stopped_then_resumed(result)


def test_sigterm_stops_local_launcher_jobs_too(tmp_path: Path) -> None:
    """The same stop through sweeplab's local launcher (submitit's local processes), and the same command trains
    the rest (README)."""
    check_stopped_then_resumed(interrupt_then_rerun(tmp_path, ["hydra/launcher=local"], {}))
