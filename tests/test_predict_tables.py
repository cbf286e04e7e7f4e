"""Table models end to end: runs trained on small CSV files (a regression, a classification with string labels),
predict.py on their test rows and on CSV rows of raw values, `mlflow models serve` answering with the same
numbers, and the champion alias going by the study's objective (lowest test_loss)."""

from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import LIGHT, run_cli, served_model
from sweeplab.cli import predict as predict_cli
from sweeplab.datasets import load_csv
from sweeplab.objective import Objective
from sweeplab.tracking import models, tags

TRAIN = ["optimizer=adam", "epochs=3", "training.verbose=0", *LIGHT[1:]]  # the tables' own validation split


def table_csvs(folder: Path) -> dict[str, Path]:
    """diabetes.csv (regression, 442 rows) and wine.csv (3 classes named class_0, class_1, class_2)."""
    datasets = pytest.importorskip("sklearn.datasets")
    diabetes = datasets.load_diabetes(as_frame=True).frame
    wine = datasets.load_wine(as_frame=True)
    labelled = wine.frame.assign(target=[wine.target_names[i] for i in wine.frame["target"]])
    paths = {"diabetes": folder / "diabetes.csv", "wine": folder / "wine.csv"}
    diabetes.to_csv(paths["diabetes"], index=False)
    labelled.to_csv(paths["wine"], index=False)
    return paths


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A store with one regression run on diabetes.csv and one classification run on wine.csv."""
    folder = tmp_path_factory.mktemp("tables")
    paths = table_csvs(folder)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri}
    runs = {}
    for name, extra in (
        ("diabetes", ["data.task=regression", "objective.metric=val_loss"]),
        ("wine", []),
    ):
        args = ["data=csv", f"data.path={paths[name]}", "data.target=target", *extra, *TRAIN]
        result = run_cli(args, cwd=folder, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        experiment = MlflowClient(uri).get_experiment_by_name(name)
        runs[name] = MlflowClient(uri).search_runs([experiment.experiment_id])[0]
    return {"folder": folder, "uri": uri, "paths": paths, "runs": runs}


def logged_predictions(tables: dict, name: str) -> pd.DataFrame:
    run_id = tables["runs"][name].info.run_id
    return pd.read_csv(MlflowClient(tables["uri"]).download_artifacts(run_id, "predictions.csv"))


def first_test_rows(tables: dict, name: str, count: int = 3) -> pd.DataFrame:
    """The first test rows of a table as its CSV file has them: raw feature values and the target."""
    task = "regression" if name == "diabetes" else "classification"
    loaded = load_csv(str(tables["paths"][name]), "target", task)
    (_, _), (x_test, y_test) = loaded
    frame = pd.DataFrame(x_test[:count].astype(np.float64), columns=loaded.features)
    frame.insert(0, "target", y_test[:count])  # anywhere: the model takes its features by name
    return frame


def table_of(stdout: str) -> pd.DataFrame:
    lines = stdout.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["index"])
    rows = [line.split() for line in lines[start:]]
    return pd.DataFrame(rows[1:], columns=rows[0])


@pytest.mark.slow
def test_predict_a_regression_on_its_test_rows_and_on_raw_csv_rows(tables: dict, tmp_path: Path, capsys) -> None:
    logged = logged_predictions(tables, "diabetes")
    model = f"runs:/{tables['runs']['diabetes'].info.run_id}/model"
    rows = first_test_rows(tables, "diabetes")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    result = run_cli(
        ["--model", model, "--csv", "rows.csv"], cwd=tmp_path, env={"MLFLOW_TRACKING_URI": tables["uri"]},
        script="predict.py",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    from_csv = table_of(result.stdout)
    assert list(from_csv.columns) == ["index", "true", "predicted", "error"], result.stdout
    assert from_csv["true"].astype(float).tolist() == pytest.approx(rows["target"].tolist())
    # Raw values in, scaled by the model itself: what training predicted for the same rows.
    assert from_csv["predicted"].astype(float).tolist() == pytest.approx(logged["predicted"].tolist(), abs=2e-3)

    capsys.readouterr()
    assert predict_cli.main(["--model", model, "--tracking-uri", tables["uri"], "--count", "3"]) == 0
    default = table_of(capsys.readouterr().out)  # the run's first test rows, rebuilt from its config
    assert default["true"].astype(float).tolist() == pytest.approx(logged["true"].tolist())
    assert default["predicted"].astype(float).tolist() == pytest.approx(logged["predicted"].tolist(), abs=2e-3)


@pytest.mark.slow
def test_predict_a_classifier_of_string_labels_gives_class_names(tables: dict, tmp_path: Path, capsys) -> None:
    logged = logged_predictions(tables, "wine")
    model = f"runs:/{tables['runs']['wine'].info.run_id}/model"
    rows = first_test_rows(tables, "wine", count=5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    capsys.readouterr()
    assert (
        predict_cli.main(["--model", model, "--tracking-uri", tables["uri"], "--csv", str(tmp_path / "rows.csv")]) == 0
    )
    from_csv = table_of(capsys.readouterr().out)
    assert list(from_csv.columns) == ["index", "true", "predicted", "probability"]
    assert from_csv["true"].tolist() == rows["target"].tolist()
    assert set(from_csv["predicted"]) <= {"class_0", "class_1", "class_2"}
    assert from_csv["predicted"][:3].tolist() == logged["predicted"].tolist()
    assert from_csv["probability"][:3].astype(float).tolist() == pytest.approx(logged["probability"], abs=2e-3)

    assert predict_cli.main(["--model", model, "--tracking-uri", tables["uri"]]) == 0
    default = table_of(capsys.readouterr().out)
    assert default[["true", "predicted"]].values.tolist() == logged[["true", "predicted"]].values.tolist()


@pytest.mark.slow
def test_a_served_table_model_takes_raw_rows_and_answers_as_predict_does(
    tables: dict, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tables["uri"])  # the registry resolves models:/ through it
    client = MlflowClient(tables["uri"])
    run = tables["runs"]["diabetes"]
    model_id = next(m.model_id for m in client.search_logged_models([run.info.experiment_id]))
    objective = Objective("val_loss", maximize=False)
    name = "diabetes-served"
    models.register(client, name, f"models:/{model_id}", run.info.run_id, run.data.metrics["test_loss"], model_id,
                    objective)  # fmt: skip
    rows = first_test_rows(tables, "diabetes", count=4)
    with served_model(f"models:/{name}@champion", tmp_path / "serve.log") as url:
        split = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))})
        by_json = invocations(url, split.encode(), "application/json")
        by_csv = invocations(url, rows.to_csv(index=False).encode(), "text/csv")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    capsys.readouterr()
    assert predict_cli.main(["--model", f"models:/{name}@champion", "--csv", str(tmp_path / "rows.csv")]) == 0
    predicted = table_of(capsys.readouterr().out)["predicted"].astype(float).tolist()
    assert np.asarray(by_json).shape == (4,), by_json  # numbers, one per row
    assert by_json == pytest.approx(predicted, abs=1e-4) and by_csv == pytest.approx(predicted, abs=1e-4)


def invocations(url: str, body: bytes, content_type: str) -> list:
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["predictions"]


@pytest.mark.slow
def test_the_champion_goes_by_the_objective_lowest_test_loss_wins(tables: dict, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tables["uri"])
    client = MlflowClient(tables["uri"])
    run = tables["runs"]["diabetes"]
    run_id, source = run.info.run_id, f"runs:/{run.info.run_id}/model"
    loss = Objective("val_loss", maximize=False)
    name = "diabetes-by-loss"
    first = models.register(client, name, source, run_id, 3100.2, objective=loss)
    lower = models.register(client, name, source, run_id, 2900.1, objective=loss)
    higher = models.register(client, name, source, run_id, 3000.0, objective=loss)
    assert (first.promoted, lower.promoted, higher.promoted) == (True, True, False)
    assert lower.sentence() == "version 2 is the champion: test_loss 2900.1 beats 3100.2 of version 1"
    assert higher.sentence().startswith("version 2 stays the champion: test_loss 3000.0 of version 3")
    version = client.get_model_version_by_alias(name, models.CHAMPION)
    assert str(version.version) == "2"
    assert (version.tags[tags.MODEL_METRIC], version.tags[tags.MODEL_DIRECTION]) == ("test_loss", "min")
    assert tags.MODEL_SCORE not in version.tags  # sweeplab.test_accuracy: only for versions ranked by it

    # A champion ranked by another metric (test_accuracy, as registries before the objective) is compared on
    # the objective's metric through its run: this run's test_loss.
    other = "ranked-before"
    models.register(client, other, source, run_id, 0.5)  # the default objective: test_accuracy, max
    worse = models.register(client, other, source, run_id, run.data.metrics["test_loss"] + 1, objective=loss)
    better = models.register(client, other, source, run_id, run.data.metrics["test_loss"] - 1, objective=loss)
    assert not worse.promoted and worse.previous_score == pytest.approx(run.data.metrics["test_loss"])
    assert better.promoted and better.previous_version == "1"
    assert not math.isnan(better.previous_score)


def test_the_registered_name_comes_from_the_data_and_the_model(compose_cfg) -> None:
    assert models.registered_name(compose_cfg()) == "fashion-mnist-mlp"  # as it always was
    assert models.registered_name(compose_cfg("tuner=random")) == "fashion-mnist-mlp"
    assert models.registered_name(compose_cfg("data=csv", "data.path=/d/my_table.csv", "model=cnn")) == "my-table-cnn"
    assert models.registered_name(compose_cfg("tuner=random", "tuner.registered_model=null")) is None
    assert models.registered_name(compose_cfg("tuner=random", "tuner.registered_model=mine")) == "mine"


def test_the_model_code_runs_without_sweeplab_and_scales_and_answers_as_sweeplab_does() -> None:
    """tracking/pyfunc_model.py is copied into every model and imports no sweeplab: its copies of the scaling
    and of a table model's answer must equal sweeplab's own."""
    import ast

    from sweeplab.data import Dataset, preprocess
    from sweeplab.tracking import artifacts, pyfunc_model

    tree = ast.parse(artifacts.PYFUNC_CODE.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {m.split(".")[0] for m in imported} <= {"__future__", "json", "pathlib", "typing", "keras", "numpy",
                                                   "pandas", "mlflow"}, imported  # fmt: skip
    x = np.random.default_rng(0).uniform(0, 255, size=(5, 4))
    for preprocessing in ({"scale": 255.0}, {"mean": [1.0, 2.0, 3.0, 4.0], "std": [2.0, 1.0, 0.5, 4.0]}, {}):
        assert np.array_equal(pyfunc_model.scaled(x, preprocessing), preprocess(x, preprocessing))
    outputs = np.random.default_rng(1).dirichlet(np.ones(3), size=5).astype(np.float32)
    empty = np.zeros((1, 4), dtype=np.float32)
    for task, names, out in (("classification", ["a", "b", "c"], outputs), ("regression", [], outputs[:, :1])):
        data = Dataset("t", "t", empty, np.zeros(1), empty, np.zeros(1), empty, np.zeros(1), names, task=task)
        mine, theirs = pyfunc_model.table_outputs(out, task, names), artifacts.model_answers(out, data)
        if task == "regression":
            assert np.array_equal(mine, theirs) and mine.shape == (5,)
        else:
            pd.testing.assert_frame_equal(mine, theirs)
            assert list(mine.columns) == ["predicted", "p(a)", "p(b)", "p(c)"]
