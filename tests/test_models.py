"""Models by name: the champion alias, predict.py on every MLflow model URI form, and the registered champion
served by `mlflow models serve`, answering as predict.py does with a log free of progress bars."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import served_model
from sweeplab.cli import predict as predict_cli
from sweeplab.data import load_raw
from sweeplab.tracking import models

NAME = "fashion-mlp-champion"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def champion(small_sweep: dict) -> Iterator[dict]:
    """Four versions of NAME from the small sweep's runs, registered worst-but-one, best, worst, best again."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = small_sweep["uri"]  # the registry resolves models:/ through it
    client = MlflowClient(small_sweep["uri"])
    runs = client.search_runs(
        [small_sweep["experiment_id"]],
        f"tags.mlflow.parentRunId = '{small_sweep['parent_id']}' and attributes.status = 'FINISHED'",
        order_by=["metrics.test_accuracy ASC"],
    )
    logged = {m.source_run_id: m.model_id for m in client.search_logged_models([small_sweep["experiment_id"]])}
    worst, middle, best = runs[0], runs[1], runs[-1]
    outcomes = [
        models.register(
            client,
            NAME,
            f"models:/{logged[r.info.run_id]}",
            r.info.run_id,
            r.data.metrics["test_accuracy"],
            logged[r.info.run_id],
        )
        for r in (middle, best, worst, best)
    ]
    try:
        yield {"client": client, "outcomes": outcomes, "best": best, "worst": worst, "logged": logged, **small_sweep}
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def test_the_champion_alias_moves_only_to_a_better_version(champion: dict) -> None:
    first, better, worse, same = champion["outcomes"]
    assert (first.version, first.promoted, first.previous_version) == ("1", True, None)
    assert better.promoted and better.previous_version == "1"
    assert not worse.promoted and worse.previous_version == "2"
    assert not same.promoted and same.previous_version == "2"  # as good is not better
    assert worse.sentence().startswith("version 2 stays the champion: test_accuracy ")
    version = champion["client"].get_model_version_by_alias(NAME, models.CHAMPION)
    assert str(version.version) == "2" and version.run_id == champion["best"].info.run_id


def predict_output(uri: str, sweep: dict, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert predict_cli.main(["--model", uri, "--tracking-uri", sweep["uri"]]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_predict_reads_every_model_uri_form_with_class_names(champion: dict, capsys) -> None:
    best, worst = champion["best"].info.run_id, champion["worst"].info.run_id
    forms = {
        f"runs:/{worst}/model": worst,
        f"models:/{champion['logged'][worst]}": worst,
        f"models:/{NAME}/3": worst,
        f"models:/{NAME}/latest": best,
        f"models:/{NAME}@champion": best,
    }
    for uri, run_id in forms.items():
        out = predict_output(uri, champion, capsys)
        assert f"predict: {uri} (run {run_id})" in out, out
        rows = out.strip().splitlines()[2:]
        truth = [CLASSES[label].split()[0] for label in load_raw("fashion_mnist", None)[3][:3]]
        assert [row.split()[1] for row in rows] == truth, out  # the run's class names, not 0..9
        assert "━" not in out and "/step" not in out


@pytest.mark.slow
def test_the_served_champion_answers_as_predict_does_and_logs_no_progress(
    champion: dict, tmp_path: Path, capsys
) -> None:
    log = tmp_path / "serve.log"
    with served_model(f"models:/{NAME}@champion", log, {"MLFLOW_TRACKING_URI": champion["uri"]}) as url:
        images = (load_raw("fashion_mnist", None)[2][:3] / 255.0).astype(np.float32)
        for _ in range(2):  # each request would draw a bar
            request = urllib.request.Request(
                f"{url}/invocations",
                data=json.dumps({"inputs": images.tolist()}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                served = np.asarray(json.load(response)["predictions"])
    assert served.shape == (3, 10)
    out = predict_output(f"models:/{NAME}@champion", champion, capsys)
    rows = [" ".join(row.split()) for row in out.strip().splitlines()[2:]]  # index, true, predicted, probability
    truth = load_raw("fashion_mnist", None)[3][:3]
    assert len(rows) == 3, out
    for i, (row, predicted) in enumerate(zip(rows, served.argmax(axis=1), strict=True)):
        assert row.startswith(f"{i} {CLASSES[truth[i]]} {CLASSES[predicted]} "), (row, CLASSES[predicted])
    text = log.read_text()
    assert "━" not in text and "/step" not in text, text[-3000:]


def test_the_logged_model_predicts_without_progress_output(champion: dict, capfd) -> None:
    import keras
    import mlflow

    keras.config.enable_interactive_logging()  # as in a fresh process (predict.py turns it off in this one)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    images = (load_raw("fashion_mnist", None)[2][:5] / 255.0).astype(np.float32)
    capfd.readouterr()
    probabilities = np.asarray(model.predict(images))
    shown = capfd.readouterr()
    assert probabilities.shape == (5, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert shown.out + shown.err == ""
    raw = model.unwrap_python_model().model  # the Keras model, with plain inference settings
    assert not raw.compiled and getattr(raw, "optimizer", None) is None
