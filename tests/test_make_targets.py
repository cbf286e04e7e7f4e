"""`make ui` and `make serve` as a user runs them, in a project folder whose mlruns/ holds a small trained store.

make runs the checkout's Makefile with BIN set to this Python's venv and its `setup` stamp taken as up to date
(`-o`), so it never rebuilds a venv; everything else (the store path, ports, the default model) is the
Makefile's own. Each server runs in make's process group, which is ended afterwards (MLflow spawns workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, SWEEP_NAME
from sweeplab.data import load_raw
from sweeplab.tracking import models
from sweeplab.tracking.ui import UiServer, free_port, serves_on

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent  # the venv the tests run in: under CI the clone's .venv, made by `make setup`
CHAMPION = "fashion-mnist-mlp"  # the Makefile's default MODEL is models:/fashion-mnist-mlp@champion
WAIT_S = 180  # a busy 2-core machine: MLflow's UI workers or the model's TensorFlow take a while to start


@contextlib.contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI (and MLFLOW_TRACKING_URI) set to `uri` for a `with` block."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(scope="module")
def project(small_sweep: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A project folder whose mlruns/mlflow.db is a copy of the small sweep's store as built (the artifacts
    stay where they are), with the sweep's best run registered (the champion), then its least accurate one
    (the latest version, not the champion: serving `latest` instead of `@champion` shows)."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "mlruns").mkdir()
    shutil.copyfile(small_sweep["snapshot"].removeprefix("sqlite:///"), folder / "mlruns" / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = client.search_runs(
        [small_sweep["experiment_id"]],
        f"tags.mlflow.parentRunId = '{small_sweep['parent_id']}' and attributes.status = 'FINISHED'",
        order_by=["metrics.test_accuracy ASC"],
    )
    logged = {m.source_run_id: m.model_id for m in client.search_logged_models([small_sweep["experiment_id"]])}
    worst, best = runs[0], runs[-1]
    with tracking_uri(uri):  # MLflow's registry resolves models:/<id> through the global tracking URI
        for run in (best, worst):
            source = f"models:/{logged[run.info.run_id]}"
            models.register(client, CHAMPION, source, run.info.run_id, run.data.metrics["test_accuracy"])
    assert client.get_model_version_by_alias(CHAMPION, models.CHAMPION).run_id == best.info.run_id
    assert client.get_model_version(CHAMPION, "2").run_id == worst.info.run_id  # models:/...-mlp/latest
    return {"folder": folder, "uri": uri, "best": logged[best.info.run_id], "worst": logged[worst.info.run_id]}


@contextlib.contextmanager
def make(target: str, folder: Path, ready: str, *variables: str) -> Iterator[str]:
    """`make <target> VARIABLES` started in `folder` (the project's Makefile) in its own process group; yields
    the server's URL once `ready` (a path) answers 200 from a socket of that group, then ends the group."""
    port = free_port()
    name = "UI_PORT" if target == "ui" else "SERVE_PORT"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MAKEFLAGS", "MFLAGS")}
    env["MLFLOW_WORKERS"] = "1"  # `mlflow ui` starts 4 workers, each importing MLflow: seconds of CPU on 2 cores
    log = folder / f"make-{target}-{port}.log"
    command = ["make", "-f", str(ROOT / "Makefile"), f"BIN={BIN}", "-o", f"{BIN}/sweeplab-installed",
               target, f"{name}={port}", *variables]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    server = UiServer(process, f"http://127.0.0.1:{port}", log)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(server.url + ready, timeout=5) as response:
                return response.status == 200 and serves_on(process, port)  # make's server, not another's
        except OSError:
            return False

    try:
        deadline = time.monotonic() + WAIT_S
        while not answers():
            assert process.poll() is None, f"make {target} ended ({process.returncode}): {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"make {target} did not answer in {WAIT_S} s: {log.read_text()[-3000:]}"
            time.sleep(1)
        yield server.url
    finally:
        server.stop()
    assert "sweeplab-installed" not in log.read_text()  # make took the venv as it is


def call(url: str, payload: dict | None = None) -> dict:
    """GET url, or POST `payload` as JSON; the answer parsed."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_make_ui_serves_the_projects_store_on_ui_port(project: dict) -> None:
    with make("ui", project["folder"], "/health") as url:
        api = f"{url}/api/2.0/mlflow"
        experiments = call(f"{api}/experiments/search?max_results=100")["experiments"]
        experiment = next((e for e in experiments if e["name"] == "fashion_mnist"), None)
        assert experiment is not None, experiments  # the project's mlruns/mlflow.db, not an empty store
        runs = call(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})
        assert SWEEP_NAME in {run["info"]["run_name"] for run in runs["runs"]}
        # An experiment made in the UI keeps its artifacts in the project's mlruns/ (--default-artifact-root).
        made = call(f"{api}/experiments/create", {"name": "made in the UI"})["experiment_id"]
        location = call(f"{api}/experiments/get?experiment_id={made}")["experiment"]["artifact_location"]
    assert Path(location.removeprefix("file://")).resolve().parent == (project["folder"] / "mlruns").resolve()


def served_predictions(url: str, images: np.ndarray) -> np.ndarray:
    return np.asarray(call(f"{url}/invocations", {"inputs": images.tolist()})["predictions"])


def logged_predictions(model_id: str, uri: str, images: np.ndarray) -> np.ndarray:
    import mlflow

    with tracking_uri(uri):
        return np.asarray(mlflow.pyfunc.load_model(f"models:/{model_id}").predict(images))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Five test images as the models take them: scaled to [0, 1], float32."""
    return (load_raw("fashion_mnist", None)[2][:5] / 255.0).astype(np.float32)


def test_make_serve_serves_the_champion_by_default(project: dict, images: np.ndarray) -> None:
    with make("serve", project["folder"], "/ping") as url:
        served = served_predictions(url, images)
    assert served.shape == (5, 10)
    best = logged_predictions(project["best"], project["uri"], images)
    worst = logged_predictions(project["worst"], project["uri"], images)
    assert np.allclose(served, best, atol=1e-5), (served, best)
    assert not np.allclose(served, worst, atol=1e-3)  # the two models tell apart: the champion was served


def test_make_serve_serves_the_model_given(project: dict, images: np.ndarray) -> None:
    with make("serve", project["folder"], "/ping", f"MODEL=models:/{project['worst']}") as url:
        served = served_predictions(url, images)
    assert served.shape == (5, 10)
    assert np.allclose(served, logged_predictions(project["worst"], project["uri"], images), atol=1e-5)
