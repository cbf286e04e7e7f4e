"""Reliability against real processes: bad input refused up front, signals, divergence, an unwritable artifact
store, concurrent writers on one SQLite store, and a real `mlflow server`."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import LIGHT, QUICK, ROOT, experiment_runs, imported_heavy
from sweeplab.datasets import IDX_FILES, keras_cache_dir

# One command per way a command line is refused (validate's rule, Hydra's unknown group, key, type, an empty
# sweep, a tuner space); every rule of validate has its own case in test_config.py, in-process.
BAD_INPUTS = [
    (["lr=-1"], "lr=-1"),
    (["optimizer=adamm"], "optimizer/adamm"),
    (["activation=relux"], "activation=relux"),
    (["data=cifar"], "data/cifar"),
    (["no_such_key=1"], "no_such_key"),
    (["lr=fast"], "lr=fast"),
    (["data.limit=60000"], "data.limit=60000"),
    (["-m", "lr="], "lr="),
    (["tuner=random", "tuner.space.depth=[4,1]"], "tuner.space.depth"),
    # Typed choices (sweeplab.schema): Hydra's own message, on one line.
    (["backend=tensorflw"], "Invalid value 'tensorflw'"),
    (["training.verbose=loud"], "Invalid value 'loud'"),
    (["tuner=random", "tuner.kind=randon"], "Invalid value 'randon'"),
    (["tuner=randon"], "tuner/randon"),
    (["pruner=medain"], "pruner/medain"),
]


@pytest.mark.parametrize(("args", "named"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_refused_in_one_line_before_any_work(args, named, cli, tmp_path) -> None:
    proc = cli(*args, timeout=120, imports=tmp_path / "imports.txt")
    assert proc.returncode == 2, proc.stderr  # README: 2 for input refused before any work
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sweeplab: error: ") and named in lines[0]
    assert imported_heavy(tmp_path / "imports.txt") == []  # refused before TensorFlow (or Keras) was imported
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()  # the store was not even opened


def test_missing_and_corrupt_dataset_files_are_named(tmp_path, cli, client) -> None:
    empty_cache = tmp_path / "keras-empty"
    proc = cli("epochs=1", env={"KERAS_HOME": str(empty_cache)}, timeout=180)
    assert proc.returncode == 2
    assert str(empty_cache / "datasets" / "fashion-mnist") in proc.stderr and "make data" in proc.stderr

    corrupt = tmp_path / "corrupt"
    shutil.copytree(keras_cache_dir("fashion_mnist"), corrupt)
    (corrupt / IDX_FILES[0]).write_bytes(gzip.compress(b"x" * 100)[:40])  # truncated gzip
    proc = cli("epochs=1", f"data.path={corrupt}", timeout=180)
    assert proc.returncode == 2 and f"cannot read {corrupt / IDX_FILES[0]}" in proc.stderr
    assert experiment_runs(client) == []


def test_unreachable_tracking_server_fails_fast_naming_it(cli) -> None:
    from sweeplab.tracking.ui import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    # Fast means no retries: a hang past the timeout fails the test (how fast it is belongs in bench/).
    proc = cli("epochs=1", env={"MLFLOW_TRACKING_URI": uri}, timeout=120)
    assert proc.returncode == 2 and uri in proc.stderr and "does not answer" in proc.stderr


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def logged_epochs(client: MlflowClient, run_id: str) -> int:
    return len(client.get_metric_history(run_id, "val_accuracy"))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_ends_it_killed_keeping_its_epochs(signum, tmp_path, store, client) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "sweep.py"), "data.limit=2000", "epochs=200", "training.verbose=0",
         "training.steps_per_execution=1", "tracking.log_model=false", *LIGHT],
        cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # Ctrl-C reaches a program that a shell started in the foreground, where SIGINT is not ignored. A
        # suite started in the background by a non-interactive shell (`make test &`) ignores SIGINT, and
        # its subprocesses inherit that: Python then installs no KeyboardInterrupt handler at all.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        run = wait_for(lambda: (experiment_runs(client) or [None])[0], 120, "the run to start")
        wait_for(lambda: logged_epochs(client, run.info.run_id) >= 2, 120, "two logged epochs")
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, output[-2000:]  # as a shell reports a process its signal ended
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    assert output.strip().splitlines()[-1].startswith(f"sweeplab: stopped by {name}: "), output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    stored = client.get_run(run.info.run_id)
    assert stored.info.status == "KILLED", output[-2000:]
    assert (
        signal.Signals(signum).name in stored.data.tags["sweeplab.error"]
        or "KeyboardInterrupt" in (stored.data.tags["sweeplab.error"])
    )
    epochs = logged_epochs(client, run.info.run_id)
    assert 2 <= epochs < 200
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(epochs))
    assert all(r.info.status != "RUNNING" for r in experiment_runs(client))


@pytest.mark.slow
def test_a_diverging_run_stops_at_once_and_fails(cli, client) -> None:
    args = ["data.limit=2000", "epochs=20", "activation=linear", "lr=10", "training.verbose=0"]
    proc = cli(*args, "tracking.log_model=false", *LIGHT)
    assert proc.returncode == 1, proc.stderr[-3000:]  # README: 1 for work that failed
    (run,) = experiment_runs(client)
    assert run.info.status == "FAILED"
    reason = run.data.tags["sweeplab.error"]
    assert "DivergedError" in reason and ("nan" in reason or "inf" in reason)
    assert logged_epochs(client, run.info.run_id) <= 1  # stopped in the epoch it diverged, not 20 later


@pytest.mark.slow
def test_unwritable_artifact_location_fails_the_run_and_keeps_the_store(tmp_path, cli, client) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the artifact folder should be\n")
    client.create_experiment("blocked", artifact_location=str(blocker / "artifacts"))
    proc = cli(*QUICK, *LIGHT, "epochs=1", "tracking.experiment=blocked", "tracking.log_model=false")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sweeplab: error:")]
    assert len(errors) == 1 and "not-a-folder" in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    (run,) = experiment_runs(client, "blocked")
    assert run.info.status == "FAILED" and "not-a-folder" in run.data.tags["sweeplab.error"]
    assert logged_epochs(client, run.info.run_id) == 1  # what was logged before the failure stays
    # The store still takes runs.
    proc = cli(*QUICK, *LIGHT, "epochs=1", "tracking.log_model=false")
    assert proc.returncode == 0
    assert [r.info.status for r in experiment_runs(client)] == ["FINISHED"]


@pytest.mark.slow
def test_four_concurrent_runs_on_one_sqlite_store(tmp_path, store) -> None:
    # No mlflow.db yet: all four processes race to create the store (MLflow's migrations) and the experiment.
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()
    secret = "sk-test-secret-123"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "AWS_SECRET_ACCESS_KEY": secret}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "sweep.py"),
                "data.limit=500",
                "epochs=2",
                f"seed={seed}",
                "training.threads=1",
                "training.verbose=0",
                "tracking.log_model=false",
                *LIGHT,
                f"hydra.run.dir={tmp_path / 'outputs' / str(seed)}",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for seed in range(4)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(o[-1500:] for o in outputs)
    client = MlflowClient(tracking_uri=store)  # only now: a client would create the store
    runs = experiment_runs(client)
    assert sorted(r.data.params["seed"] for r in runs) == [str(s) for s in range(4)]
    for run in runs:
        assert run.info.status == "FINISHED"
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1], key
        assert "test_accuracy" in run.data.metrics
        # Nothing from the environment is logged.
        assert not [v for v in {**run.data.params, **run.data.tags}.values() if secret in v]
