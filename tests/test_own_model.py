"""A user's own model and data, from a folder outside the repository (docs/models.md).

examples/own_model is copied to a temporary folder: its package `mynets` comes from PYTHONPATH, its
configs from `hydra.searchpath`, and the real sweep.py and compare.py run in subprocesses on a fresh
SQLite store. Each study runs once per module (they train) and the tests read what it left.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import ROOT, require_module, run_cli

EXAMPLE = ROOT / "examples" / "own_model"
# Small and quick: no XLA compile, two epochs, no logged model; digits are 1,150 training images of 8x8.
FAST = ["epochs=2", "training.verbose=0", "tracking.log_model=false", "training.jit_compile=false"]
DIGITS = ["model=my_cnn", "data=digits", "optimizer=adam", *FAST]
CSV = ["data=csv", "data.path=diabetes.csv", "data.target=target", "data.task=regression",
       "objective.metric=val_loss", "objective.direction=min", "optimizer=adam", *FAST]  # fmt: skip


class User:
    """The copied example folder, its store, and the commands a user types there."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri)
        self.env = {
            "MLFLOW_TRACKING_URI": self.uri,
            # the user's package first; what the test process has (sweeplab's src, in a checkout) after it
            "PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p),
        }

    def sweep(self, *args: str, experiment: str) -> subprocess.CompletedProcess[str]:
        searchpath = f"hydra.searchpath=[file://{self.folder / 'conf'}]"
        done = run_cli([*args, searchpath, f"tracking.experiment={experiment}"], cwd=self.folder, env=self.env)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done

    def runs(self, experiment: str) -> list:
        exp = self.client.get_experiment_by_name(experiment)
        assert exp is not None, experiment
        return self.client.search_runs([exp.experiment_id])

    def study(self, experiment: str) -> tuple:
        """The one parent of `experiment` and its children."""
        runs = self.runs(experiment)
        (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]

    def summary(self, parent_id: str) -> pd.DataFrame:
        out = self.folder / "downloads" / parent_id
        out.mkdir(parents=True, exist_ok=True)
        return pd.read_csv(self.client.download_artifacts(parent_id, "summary.csv", str(out)))

    def history(self, run, metric: str) -> list[float]:
        return [m.value for m in sorted(self.client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)]


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> User:
    """examples/own_model copied outside the repository, with the CSV its make_csv.py writes."""
    folder = tmp_path_factory.mktemp("user") / "own_model"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "*.csv", "mlruns", "multirun"))
    (folder / "mlruns").mkdir()
    made = subprocess.run(
        [sys.executable, "make_csv.py"], cwd=folder, capture_output=True, text=True, timeout=120, check=False
    )
    assert made.returncode == 0, made.stderr[-2000:]
    return User(folder)


# --- the studies, each run once ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def single(user: User) -> subprocess.CompletedProcess[str]:
    return user.sweep(*DIGITS, "model.batch_norm=true", experiment="single")


@pytest.fixture(scope="module")
def grid(user: User) -> subprocess.CompletedProcess[str]:
    return user.sweep("-m", *DIGITS, "model.dropout=0.2,0.5", experiment="grid")


@pytest.fixture(scope="module")
def optuna(user: User) -> subprocess.CompletedProcess[str]:
    require_module("hydra_plugins.hydra_optuna_sweeper")
    args = ["-m", *DIGITS, "hydra/sweeper=optuna", "hydra.sweeper.direction=minimize", "objective.metric=val_loss",
            "model.dropout=interval(0.1,0.5)", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=3",
            "hydra.sweep.dir=multirun/optuna"]  # fmt: skip
    return user.sweep(*args, experiment="optuna")


@pytest.fixture(scope="module")
def pruned(user: User) -> subprocess.CompletedProcess[str]:
    """The third job's learning rate is far too small: after the warm-up epoch it is clearly the worst."""
    args = ["-m", *DIGITS, "epochs=3", "lr=0.003,0.002,0.00001", "pruner=median", "pruner.warmup_epochs=1",
            "pruner.min_runs=2"]  # fmt: skip
    return user.sweep(*args, experiment="pruned")


@pytest.fixture(scope="module")
def regression(user: User) -> subprocess.CompletedProcess[str]:
    return user.sweep("-m", *CSV, "lr=0.03,0.001", experiment="diabetes")


# --- what they left ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_single_run_trains_the_users_builder_on_the_users_loader(user: User, single) -> None:
    (run,) = user.runs("single")
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model._target_"] == "mynets.models.build_small_cnn"
    assert params["data._target_"] == "mynets.data.load_digits"
    assert (params["model.filters"], params["model.dropout"], params["model.batch_norm"]) == ("16", "0.3", "True")
    assert run.info.run_name.startswith("small_cnn relu adam lr=0.001")
    for metric in ("val_accuracy", "val_loss", "accuracy", "loss"):
        assert len(user.history(run, metric)) == 2, metric
    assert {"test_accuracy", "test_loss", "param_count"} <= set(run.data.metrics)
    # The builder got model.batch_norm: its layers are in the logged summary; the loader's 10 classes out.
    summary = Path(user.client.download_artifacts(run.info.run_id, "model_summary.txt", str(user.folder)))
    text = summary.read_text()
    assert "norm_1" in text and "norm_2" in text and "small_cnn" in text
    assert "test_accuracy=" in single.stdout


@pytest.mark.slow
def test_a_grid_over_the_users_key_is_one_study(user: User, grid) -> None:
    parent, children = user.study("grid")
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert sorted(r.data.params["model.dropout"] for r in children) == ["0.2", "0.5"]
    assert {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.tags["sweeplab.config_hash"] for r in children}.__len__() == 2
    table = user.summary(parent.info.run_id)
    assert sorted(table["model.dropout"]) == [0.2, 0.5]
    assert list(table["val_accuracy"]) == sorted(table["val_accuracy"], reverse=True)  # best first
    best = max(children, key=lambda r: r.data.metrics["val_accuracy"])
    assert parent.data.tags["sweeplab.best_run_id"] == best.info.run_id
    assert "sweeplab: job 2/2" in grid.stdout


@pytest.mark.slow
def test_optuna_minimizes_val_loss_over_the_users_key(user: User, optuna) -> None:
    parent, children = user.study("optuna")
    assert parent.info.status == "FINISHED" and len(children) == 3
    dropouts = [float(r.data.params["model.dropout"]) for r in children]
    assert all(0.1 <= d <= 0.5 for d in dropouts) and len(set(dropouts)) == 3  # sampled, not a grid
    losses = {r.info.run_id: r.data.metrics["val_loss"] for r in children}
    results = yaml.safe_load((user.folder / "multirun" / "optuna" / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(min(losses.values()))  # what the jobs returned: val_loss
    assert float(results["best_params"]["model.dropout"]) == pytest.approx(
        float(next(r for r in children if losses[r.info.run_id] == min(losses.values())).data.params["model.dropout"])
    )
    assert parent.data.tags["sweeplab.best_run_id"] == min(losses, key=losses.get)
    table = user.summary(parent.info.run_id)
    assert list(table["val_loss"]) == sorted(table["val_loss"])  # lowest first


@pytest.mark.slow
def test_pruning_stops_the_users_hopeless_job(user: User, pruned) -> None:
    parent, children = user.study("pruned")
    by_lr = {float(r.data.params["lr"]): r for r in children}
    hopeless = by_lr[0.00001]
    assert hopeless.data.tags["sweeplab.pruned"] == "2" and len(user.history(hopeless, "val_accuracy")) == 2
    assert "below the median" in hopeless.data.tags["sweeplab.pruned_reason"]
    assert len(user.history(hopeless, "pruning_value")) == 1  # judged once, after the warm-up
    for lr in (0.003, 0.002):
        assert "sweeplab.pruned" not in by_lr[lr].data.tags and len(user.history(by_lr[lr], "val_accuracy")) == 3
    assert parent.data.metrics["jobs_pruned"] == 1
    assert "pruned after epoch 2" in pruned.stdout


@pytest.mark.slow
def test_a_csv_regression_logs_errors_and_sorts_by_val_loss(user: User, regression) -> None:
    parent, children = user.study("diabetes")
    assert len(children) == 2 and {r.info.status for r in children} == {"FINISHED"}
    for run in children:
        assert run.data.params["data._target_"] == "sweeplab.datasets.load_csv"
        for metric in ("val_mae", "val_rmse", "mae", "rmse", "val_loss"):
            assert len(user.history(run, metric)) == 2, metric
        assert {"test_mae", "test_rmse", "test_loss"} <= set(run.data.metrics)
        assert "val_accuracy" not in run.data.metrics
    table = user.summary(parent.info.run_id)
    assert list(table["val_loss"]) == sorted(table["val_loss"])  # lowest first
    assert "test_loss" in table.columns
    best = min(children, key=lambda r: r.data.metrics["val_loss"])
    assert parent.data.tags["sweeplab.best_run_id"] == best.info.run_id == table["run_id"].iloc[0]


@pytest.mark.slow
def test_compare_groups_the_users_runs_by_their_key(user: User, grid) -> None:
    out = user.folder / "reports" / "dropout"
    done = run_cli(
        ["--experiment", "grid", "--by", "model.dropout", "--out", str(out)], cwd=user.folder, env=user.env,
        script="compare.py",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    groups = pd.read_csv(out / "groups.csv")
    assert sorted(groups.iloc[:, 0].astype(float)) == [0.2, 0.5]
    assert (out / "verdict.json").is_file() and (out / "report.html").is_file()
    assert "model.dropout" in done.stdout


@pytest.mark.slow
def test_keras_tuner_searches_the_users_key(user: User) -> None:
    args = [*DIGITS, "tuner=random", "+tuner.space.model.dropout={low:0.1,high:0.5}", "tuner.max_trials=3",
            "tuner.max_epochs=2", f"tuner.directory={user.folder / 'tuner'}"]  # fmt: skip
    user.sweep(*args, experiment="tuner")
    trials = [r for r in user.runs("tuner") if r.data.tags.get("sweeplab.role") == "trial"]
    assert len(trials) == 3 and {r.info.status for r in trials} == {"FINISHED"}
    dropouts = [float(r.data.params["model.dropout"]) for r in trials]
    assert all(0.1 <= d <= 0.5 for d in dropouts) and len(set(dropouts)) > 1
