"""predict.py on models logged by the real small sweep: by run URI and from the model registry."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from conftest import run_cli
from sweeplab.cli import predict as predict_cli
from sweeplab.data import load_raw


def first_child(sweep: dict) -> tuple[str, pd.DataFrame]:
    """A finished child run and the predictions it logged for the first test images when it trained."""
    client = MlflowClient(sweep["uri"])
    run = client.search_runs(
        [sweep["experiment_id"]],
        f"tags.mlflow.parentRunId = '{sweep['parent_id']}' and attributes.status = 'FINISHED'",
    )[0]
    path = client.download_artifacts(run.info.run_id, "predictions.csv")
    return run.info.run_id, pd.read_csv(path)


def parse_table(stdout: str) -> list[list[str]]:
    lines = stdout.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["index"])
    return [line.split() for line in lines[start + 1 :]]


@pytest.mark.slow
def test_predict_run_model_on_first_test_images_matches_what_training_logged(small_sweep: dict) -> None:
    run_id, logged = first_child(small_sweep)
    result = run_cli(
        ["--model", f"runs:/{run_id}/model"],
        cwd=small_sweep["folder"],
        env={"MLFLOW_TRACKING_URI": small_sweep["uri"]},
        script="predict.py",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = parse_table(result.stdout)
    assert len(rows) == 3  # the tutorial's first three test images
    for row, (_, expected) in zip(rows, logged.iterrows(), strict=True):
        # index, true, predicted, probability (class names have no spaces in Fashion-MNIST but 'Ankle boot')
        text = " ".join(row)
        assert text.startswith(f"{expected['index']} {expected['true']} {expected['predicted']} ")
        assert float(row[-1]) == pytest.approx(expected["probability"], abs=2e-4)


@pytest.mark.slow
def test_predict_registered_model_on_image_files(small_sweep: dict, tmp_path, monkeypatch) -> None:
    run_id, logged = first_child(small_sweep)
    # What mlflow.register_model does. The registry resolves the models:/ source through the default
    # tracking URI, whatever store the client is bound to: point it at this store for this test only.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", small_sweep["uri"])
    client = MlflowClient(small_sweep["uri"])
    model_id = next(
        m.model_id for m in client.search_logged_models([small_sweep["experiment_id"]]) if m.source_run_id == run_id
    )
    client.create_registered_model("fashion-mlp-small")
    version = client.create_model_version("fashion-mlp-small", f"models:/{model_id}", run_id, model_id=model_id).version
    x_test = load_raw("fashion_mnist", None)[2]
    np.save(tmp_path / "first3.npy", x_test[:3])  # uint8 0..255, scaled like training by predict.py
    png = io.BytesIO()
    Image.fromarray(x_test[1]).save(png, format="PNG")
    (tmp_path / "bag.png").write_bytes(png.getvalue())

    result = run_cli(
        ["--model", f"models:/fashion-mlp-small/{version}", "--images", "first3.npy", "bag.png"],
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": small_sweep["uri"]},
        script="predict.py",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"(run {run_id})" in result.stdout
    rows = parse_table(result.stdout)
    assert [r[1] for r in rows] == ["first3.npy[0]", "first3.npy[1]", "first3.npy[2]", "bag.png"]
    predicted = [" ".join(r[2:-1]) for r in rows]  # class names come from the run's data.class_names
    assert predicted[:3] == list(logged["predicted"])
    assert predicted[3] == logged["predicted"][1]


def test_unknown_model_and_missing_image_are_one_line_errors(small_sweep: dict, capsys, tmp_path) -> None:
    run_id, _ = first_child(small_sweep)
    capsys.readouterr()  # MLflow's download progress bar, from first_child
    for argv, message in [
        (
            ["--model", "runs:/0123456789abcdef0123456789abcdef/model"],
            "predict: error: cannot find the model",
        ),
        (
            ["--model", f"runs:/{run_id}/model", "--images", str(tmp_path / "nope.png")],
            "predict: error: image",
        ),
        (["--model", f"runs:/{run_id}/model", "--count", "0"], "predict: error: --count=0"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            predict_cli.main([*argv, "--tracking-uri", small_sweep["uri"]])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1
