"""A tracked run end to end: the real sweep.py, a real SQLite store, checked through MlflowClient."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import MNIST_NPZ, QUICK, experiment_runs, require, run_cli
from sweeplab.errors import ConfigError, DivergedError

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time")
ARTIFACTS = {
    "history.csv",
    "learning_curves.png",
    "confusion_matrix.png",
    "confusion_matrix.csv",
    "predictions.csv",
    "model_summary.txt",
    "config.yaml",
    "inputs.json",
    "hydra",
}


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    """One real quick baseline run through the CLI, shared by the checks below."""
    folder = tmp_path_factory.mktemp("baseline")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    proc = run_cli(QUICK, cwd=folder, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=uri)
    runs = experiment_runs(client)
    assert len(runs) == 1
    return client, runs[0], proc


@pytest.mark.slow
def test_run_is_finished_with_name_params_and_tags(baseline_run) -> None:
    _, run, proc = baseline_run
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "mlp 300-100 relu sgd lr=0.01 seed=42"
    params = run.data.params
    expected = {
        "lr": "0.01",
        "optimizer.learning_rate": "0.01",
        "optimizer._target_": "keras.optimizers.SGD",
        "activation": "relu",
        "depth": "2",
        "width": "300",
        "model.hidden_units": "[300, 100]",
        "epochs": "2",
        "batch_size": "32",
        "seed": "42",
        "data.name": "fashion_mnist",
        "data.limit": "2000",
        "training.jit_compile": "auto",
        "optimizer.momentum": "0.0",
    }
    assert {k: params.get(k) for k in expected} == expected
    tags = run.data.tags
    for key in ("sweeplab.version", "keras.version", "tensorflow.version", "sweeplab.config_hash"):
        assert tags.get(key), key
    assert tags.get("sweeplab.git_dirty") in ("True", "False")
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["fashion_mnist"]
    assert "test_accuracy=" in proc.stdout and "#/experiments/" in proc.stdout


@pytest.mark.slow
def test_per_epoch_and_final_metrics(baseline_run) -> None:
    client, run, _ = baseline_run
    for key in EPOCH_METRICS:
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [0, 1], key
    assert [m.value for m in client.get_metric_history(run.info.run_id, "learning_rate")] == pytest.approx([0.01, 0.01])
    metrics = run.data.metrics
    assert 0.5 < metrics["test_accuracy"] <= 1 and metrics["test_loss"] > 0
    assert metrics["param_count"] == 266_610 and metrics["train_time"] > 0


@pytest.mark.slow
def test_artifacts(baseline_run, tmp_path) -> None:
    client, run, _ = baseline_run
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert ARTIFACTS <= names, ARTIFACTS - names
    assert {"hydra/config.yaml", "hydra/overrides.yaml"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "hydra")
    }
    folder = client.download_artifacts(run.info.run_id, "", str(tmp_path))
    history = pd.read_csv(f"{folder}/history.csv")
    assert history.columns[0] == "epoch"
    assert sorted(history.columns[1:]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(history) == 2
    assert history["val_accuracy"].iloc[-1] == pytest.approx(run.data.metrics["val_accuracy"])
    predictions = pd.read_csv(f"{folder}/predictions.csv")
    assert len(predictions) == 3 and {"true", "predicted", "probability", "p(Ankle boot)"} <= set(predictions)
    for png in ("learning_curves.png", "confusion_matrix.png"):
        with open(f"{folder}/{png}", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    confusion = pd.read_csv(f"{folder}/confusion_matrix.csv", index_col=0)
    assert confusion.values.sum() == 10_000
    assert confusion.values.trace() / 10_000 == pytest.approx(run.data.metrics["test_accuracy"], abs=1e-4)
    assert "266,610" in open(f"{folder}/model_summary.txt").read()


@pytest.mark.slow
def test_logged_model_loads_and_predicts(baseline_run) -> None:
    import mlflow
    import numpy as np

    client, run, proc = baseline_run
    # MLflow checks the input example by predicting through Keras: no progress bar in the run's output.
    assert "[absl]" not in proc.stdout + proc.stderr, proc.stdout[-2000:]
    mlflow.set_tracking_uri(client.tracking_uri)
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert [m.source_run_id for m in models] == [run.info.run_id]
    info = mlflow.models.get_model_info(models[0].model_uri)
    assert info.signature is not None and info.saved_input_example_info is not None
    for uri in (f"runs:/{run.info.run_id}/model", models[0].model_uri):
        model = mlflow.pyfunc.load_model(uri)
        probabilities = np.asarray(model.predict(np.zeros((2, 28, 28), dtype=np.float32)))
        assert probabilities.shape == (2, 10)
        assert probabilities.sum(axis=1) == pytest.approx([1, 1], abs=1e-4)


def quick_cfg(compose_cfg, *overrides):
    return compose_cfg("data.limit=1000", "epochs=1", "training.verbose=0", "tracking.log_model=false", *overrides)


def test_same_seed_same_metrics(compose_cfg, client) -> None:
    from sweeplab.train import run

    first = run(quick_cfg(compose_cfg, "seed=3"))
    second = run(quick_cfg(compose_cfg, "seed=3"))
    other = run(quick_cfg(compose_cfg, "seed=4"))
    assert first.run_id != second.run_id
    pd.testing.assert_frame_equal(first.history, second.history)
    assert first.metrics["test_accuracy"] == second.metrics["test_accuracy"]
    assert not first.history.equals(other.history)


def test_mnist_through_the_same_code_path(compose_cfg, client) -> None:
    require(MNIST_NPZ.exists(), f"{MNIST_NPZ} is not here")
    from sweeplab.train import run

    result = run(
        quick_cfg(
            compose_cfg,
            "data=mnist",
            f"data.path={MNIST_NPZ}",
            "data.validation_size=1000",
            "tracking.experiment=digits",
            "epochs=2",
        )
    )
    stored = client.get_run(result.run_id)
    assert stored.info.status == "FINISHED" and stored.data.params["data.name"] == "mnist"
    assert client.get_experiment(stored.info.experiment_id).name == "digits"
    assert result.metrics["test_accuracy"] > 0.5


def test_a_failing_run_ends_failed_with_its_reason(compose_cfg, client, tmp_path) -> None:
    from sweeplab.train import run

    # Labels beyond the configured class names: found while loading, before any run starts.
    with pytest.raises(Exception, match="class_names"):
        run(quick_cfg(compose_cfg, "data.class_names=[a,b]"))
    assert experiment_runs(client) == []
    # An optimizer setting Keras refuses: one line naming it, before any run (the model is compiled first).
    with pytest.raises(ConfigError, match=r"optimizer sgd: ValueError: Argument\(s\) not recognized: \{'bogus': 1\}"):
        run(quick_cfg(compose_cfg, "+optimizer.bogus=1"))
    assert experiment_runs(client) == []
    # A failure inside the run (a learning rate that makes the loss overflow) ends it FAILED, reason recorded.
    with pytest.raises(DivergedError, match="loss became"):
        run(quick_cfg(compose_cfg, "lr=1e12"))
    (failed,) = experiment_runs(client)
    assert failed.info.status == "FAILED"
    assert "loss became" in failed.data.tags["sweeplab.error"]
    assert failed.data.tags["mlflow.note.content"].startswith("FAILED: DivergedError")
    # error.txt is the traceback of that very error: it ends with the exception the tag names.
    traceback = Path(client.download_artifacts(failed.info.run_id, "error.txt", str(tmp_path))).read_text()
    kind, message = failed.data.tags["sweeplab.error"].split(": ", 1)
    assert traceback.startswith("Traceback (most recent call last):"), traceback[:300]
    last = traceback.strip().splitlines()[-1]
    assert last.split(": ", 1)[0].rsplit(".", 1)[-1] == kind == "DivergedError" and message in last, last


def test_help_and_cfg_are_fast_and_plain(tmp_path) -> None:
    proc = run_cli(["--help"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 0 and "optimizer: adagrad, adam" in proc.stdout and "sweeplab" in proc.stdout
    proc = run_cli(["--cfg", "job", "lr=0.05", "optimizer=adam"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 0 and "lr: 0.05" in proc.stdout and "keras.optimizers.Adam" in proc.stdout


RACE_CHILD = """
import sys, time
from pathlib import Path
import mlflow
import numpy as np
from sweeplab.data import Dataset
from sweeplab.tracking.artifacts import log_dataset

uri, experiment_id, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
mlflow.set_tracking_uri(uri)
images, labels = np.zeros((10, 28, 28), np.float32), np.arange(10)
data = Dataset("race", "here", images, labels, images, labels, images, labels, [str(i) for i in range(10)])
with mlflow.start_run(experiment_id=experiment_id) as run:
    (folder / run.info.run_id).touch()
    while not (folder / "go").exists():  # all processes insert the new dataset at the same moment
        time.sleep(0.001)
    started = time.time()
    log_dataset(data)
    ended = time.time()
print(run.info.run_id, started, ended)
"""


@pytest.mark.slow
def test_jobs_that_start_together_all_log_their_dataset(client, store, tmp_path) -> None:
    """Jobs of a parallel sweep start together: each finds the dataset missing from the store and inserts
    it, and all but the first hit the store's unique key. Every run must still get its dataset input."""
    experiment_id = client.create_experiment("race")
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE_CHILD, store, experiment_id, str(ready)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    deadline = time.time() + 120
    while len(list(ready.iterdir())) < len(procs) and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    waiting = len(list(ready.iterdir()))
    (ready / "go").touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), [err[-1500:] for _, err in outputs]
    # The race took place: every process waited at the line, and their inserts ran at the same time.
    assert waiting == len(procs)
    spans = [tuple(map(float, out.split()[1:])) for out, _ in outputs]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
    digests = set()
    for out, _ in outputs:
        inputs = client.get_run(out.split()[0]).inputs.dataset_inputs
        assert [i.dataset.name for i in inputs] == ["race"]
        digests.add(inputs[0].dataset.digest)
    assert len(digests) == 1


@pytest.mark.parametrize(
    "features",
    [
        np.random.default_rng(0).random((40, 28, 28), dtype=np.float32),  # more than MLflow's 10,000 values
        np.random.default_rng(1).random((5, 28, 28), dtype=np.float32),  # fewer
        np.random.default_rng(2).random((30, 28, 28), dtype=np.float32)[::2],  # not contiguous
        np.random.default_rng(3).random((30, 28, 28), dtype=np.float32)[:, ::2, 3:],  # not contiguous within rows
        np.arange(20_000, dtype=np.int64),  # one dimension
        np.array(["a", None, 3], dtype=object),  # mixed objects
        np.array([{"a": 1}, {"b": 2}, [1], (2,)], dtype=object),  # values pandas cannot hash: counted
    ],
)
def test_dataset_digest_is_mlflows(features) -> None:
    """The run's dataset digest (computed without MLflow's copy of the whole array) is MLflow's own, so that
    datasets logged by sweeplab and by MLflow directly match in the UI."""
    from mlflow.data.digest_utils import compute_numpy_digest

    from sweeplab.tracking.artifacts import numpy_digest

    targets = np.arange(len(features)) % 10
    assert numpy_digest(features, targets) == compute_numpy_digest(features, targets)
    assert numpy_digest(features) == compute_numpy_digest(features)
    if features.dtype != object:  # numbers: any change shows (unhashable objects are only counted)
        changed = features.copy()
        changed[0] = changed[1]
        assert numpy_digest(changed, targets) != numpy_digest(features, targets)


def test_a_stop_whose_exception_was_lost_still_ends_the_run_killed(compose_cfg, client, monkeypatch) -> None:
    """A SIGTERM can land in a `__del__` or inside TensorFlow's code, where Python drops its exception (a job
    cancelled by scancel would train on to its last epoch): the next step raises it again."""
    from sweeplab import signals
    from sweeplab.train import run

    monkeypatch.setattr(signals, "_received", [signal.SIGTERM])  # came in; its exception did not surface
    with pytest.raises(signals.Terminated, match="SIGTERM"):
        run(quick_cfg(compose_cfg, "epochs=5"))
    (killed,) = experiment_runs(client)
    assert killed.info.status == "KILLED", killed.data.tags.get("sweeplab.error")
    assert client.get_metric_history(killed.info.run_id, "val_accuracy") == []  # stopped at its first step
