"""Keras Tuner searches, checked through MlflowClient: real training on small data, a real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras_tuner
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import ROOT, experiment_runs
from sweeplab.config import config_hash
from sweeplab.data import load_dataset
from sweeplab.errors import ConfigError
from sweeplab.tracking import models
from sweeplab.tracking.ui import free_port
from sweeplab.tuning.hypermodel import ConfiguredHyperModel
from sweeplab.tuning.search import project_name, search
from sweeplab.tuning.space import Choices, Span, search_space, validate_tuner
from sweeplab.tuning.summary import early_stopping
from sweeplab.tuning.trials import build_tuner
from sweeplab.validate import validate

# Real but tiny: 500 training and 1,000 validation images, no XLA compile (it costs more than it saves here).
TINY = [
    "data.limit=500",
    "data.validation_size=1000",
    "epochs=1",
    "training.verbose=0",
    "training.jit_compile=false",
    "tracking.log_model=false",
]
BASELINE = {
    "depth": 2,
    "units_1": 300,
    "units_2": 100,
    "activation": "relu",
    "optimizer": "sgd",
    "learning_rate": 0.01,
}


def search_runs(client: MlflowClient) -> tuple[list, list]:
    """(parents, trials) of the test's experiment, trials oldest first."""
    runs = sorted(experiment_runs(client), key=lambda r: r.info.start_time)
    parents = [r for r in runs if r.data.tags.get("sweeplab.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("sweeplab.role") == "trial"]
    return parents, trials


def finished_trial_ids(trials: list) -> list[str]:
    return sorted(r.data.tags["sweeplab.trial_id"] for r in trials if r.info.status == "FINISHED")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tuner.space.depth=[4,1]", "tuner.space.depth=[4,1] is not allowed: low 4 > high 1"),
        ("tuner.space.lr=[2,10]", "tuner.space.lr=[2,10] leaves out the baseline"),
        (
            "tuner.space.activation=[relu,swoosh]",
            "tuner.space.activation has 'swoosh', not a known activation",
        ),
        ("tuner.space.optimizer=[sgd,adamax]", "tuner.space.optimizer has 'adamax', not a known optimizer"),
        ("tuner.space.activation=[elu]", "leaves out the baseline activation=relu"),
        ("tuner.objective=val_acc", "tuner.objective=val_acc is not allowed"),
        ("tuner.max_trials=0", "tuner.max_trials=0 is not allowed"),
    ],
)
def test_bad_search_config_is_refused_with_one_line(
    compose_cfg: Callable[..., DictConfig], override: str, message: str
) -> None:
    cfg = compose_cfg("tuner=random", override)
    with pytest.raises(ConfigError, match=None) as err:
        validate_tuner(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["+tuner.space.model.dropuot={low:0.1,high:0.5}"],
            "tuner.space.model.dropuot: the model (cnn) has no key dropuot; "
            "its keys: filters kernel_size dense dropout activation",
        ),
        (
            ["+tuner.space.model.dropout={low:0.4,high:0.5}"],
            "tuner.space.model.dropout={low:0.4,high:0.5} leaves out the baseline model.dropout=0.3 (trial 0): ",
        ),
        (
            ["+tuner.space.model.dropout={low:0.5,high:0.1}"],
            "tuner.space.model.dropout={low:0.5,high:0.1} is not allowed: low 0.5 > high 0.1",
        ),
        (["+tuner.space.model.filters=[16,64]"], "leaves out the baseline model.filters=32 (trial 0)"),
        (["+tuner.space.model.filters=16"], "tuner.space.model.filters=16 leaves out the baseline model.filters=32"),
        (["+tuner.space.model.filters=[16,32.5]"], "is not allowed: its values mix float and int"),
        (["+tuner.space.model.dropout={low:0,high:1}"], "is a range of integers (whole low and high)"),
        (["+tuner.space.model.dropout={low:0.0,high:0.5,log:true}"], "log sampling needs low > 0"),
        (["+tuner.space.model.activation=[relu,swoosh]"], "has 'swoosh', not a Keras activation"),
        (["model=mlp", "+tuner.space.model.taper=[2.0,3.0]"], "the MLP's sizes are searched by tuner.space.depth"),
        (
            ["objective.metric=test_accuracy"],
            "tuner.objective=test_accuracy is not allowed: Keras Tuner needs a per-epoch",
        ),
    ],
)
def test_bad_model_space_is_refused_with_one_line(
    compose_cfg: Callable[..., DictConfig], overrides: list[str], message: str
) -> None:
    cfg = compose_cfg("model=cnn", "tuner=random", *overrides)
    with pytest.raises(ConfigError) as err:
        validate_tuner(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_model_space_applies_where_it_makes_sense(compose_cfg: Callable[..., DictConfig]) -> None:
    cnn = compose_cfg(
        "model=cnn",
        "tuner=random",
        "+tuner.space.model.dropout={low:0.1,high:0.5}",
        "+tuner.space.model.filters=[16,32]",
        "+tuner.space.model.dense={low:64,high:256,log:true,step:2}",
    )
    validate(cnn)
    space = search_space(cnn)
    # No MLP sizes for a CNN; its activation key is searched by tuner.space.activation.
    assert space.depth is None and space.units == () and space.activation is not None
    assert space.model["dropout"] == Span(0.1, 0.5, 0.3)
    assert space.model["filters"] == Choices((16, 32), 32)
    assert space.model["dense"] == Span(64, 256, 128, log=True, step=2) and space.model["dense"].integer
    described = space.describe()
    assert "depth" not in described and "units" not in described
    assert described["model"]["model.filters"] == {"values": (16, 32), "default": 32}
    # A model without an activation key is not given one.
    assert search_space(compose_cfg("model=cnn", "tuner=random", "~model.activation")).activation is None
    # tuner.space.model.activation replaces the activation dimension.
    own = search_space(compose_cfg("model=cnn", "tuner=random", "+tuner.space.model.activation=[relu,elu]"))
    assert own.activation is None and own.model["activation"] == Choices(("relu", "elu"), "relu")
    assert models.registered_name(cnn) == "fashion-mnist-cnn"


def test_search_objective_follows_the_study(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg("tuner=random", *TINY)
    data = load_dataset(cfg.data)

    def direction(*overrides: str) -> str:
        one = compose_cfg("tuner=random", *TINY, *overrides)
        validate(one)
        tuner = build_tuner(one, ConfiguredHyperModel(one, search_space(one), data), project_name(one), "0")
        return f"{tuner.oracle.objective.name} {tuner.oracle.objective.direction}"

    assert direction() == "val_accuracy max"
    assert direction("objective.metric=val_loss") == "val_loss min"
    # The study's direction wins over the one the name implies; another tuner.objective goes by its name.
    assert direction("objective.direction=min") == "val_accuracy min"
    assert direction("objective.direction=min", "tuner.objective=loss") == "loss min"
    assert direction("objective.metric=val_loss", "tuner.objective=accuracy") == "accuracy max"
    stop = early_stopping(compose_cfg("tuner=random", "objective.metric=val_loss"))[0]
    assert (stop.monitor, stop.mode) == ("val_loss", "min")


@pytest.mark.slow
def test_cli_refuses_a_bad_space_before_any_work(
    cli: Callable[..., subprocess.CompletedProcess[str]], client: MlflowClient, tmp_path: Path
) -> None:
    done = cli("tuner=random", "tuner.space.units=[2,0.5]")
    assert done.returncode == 2
    assert done.stderr.strip() == "sweeplab: error: tuner.space.units=[2,0.5] is not allowed: low 2 > high 0.5"
    assert not (tmp_path / "tuner").exists() and experiment_runs(client) == []


def test_space_follows_the_model_config(compose_cfg: Callable[..., DictConfig]) -> None:
    space = search_space(compose_cfg("tuner=bayesian", "width=600", "depth=3", "optimizer=adam", "tuner.space.depth=3"))
    assert space.depth.fixed and space.depth.low == 3
    assert [(r.low, r.high, r.default) for r in space.units] == [
        (100, 1200, 600),
        (33, 400, 200),
        (11, 134, 67),
    ]
    assert (space.learning_rate.low, space.learning_rate.high) == pytest.approx((1e-4, 1e-2))
    assert space.optimizer.default == "adam"


def test_hypermodel_defaults_are_the_baseline(compose_cfg: Callable[..., DictConfig]) -> None:
    cfg = compose_cfg("tuner=random", *TINY)
    hypermodel = ConfiguredHyperModel(cfg, search_space(cfg), load_dataset(cfg.data))
    model = hypermodel.build(keras_tuner.HyperParameters())
    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    assert [layer.units for layer in hidden] == [300, 100]
    assert {layer.activation.__name__ for layer in hidden} == {"relu"}
    assert type(model.optimizer).__name__ == "SGD"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    # Trial 0 is the very job `python sweep.py` would run: same identity hash.
    assert config_hash(hypermodel.config_of(keras_tuner.HyperParameters())) == config_hash(cfg)


@pytest.mark.parametrize("kind", ["random", "hyperband", "bayesian"])
def test_every_tuner_runs_the_baseline_first(compose_cfg: Callable[..., DictConfig], store: str, kind: str) -> None:
    cfg = compose_cfg(f"tuner={kind}", *TINY)
    validate(cfg)
    tuner = build_tuner(
        cfg, ConfiguredHyperModel(cfg, search_space(cfg), load_dataset(cfg.data)), project_name(cfg), "0"
    )
    first = tuner.oracle.create_trial("tuner0").hyperparameters.values
    second = tuner.oracle.create_trial("tuner1").hyperparameters.values
    assert {k: v for k, v in first.items() if not k.startswith("tuner/")} == BASELINE
    assert {k: v for k, v in second.items() if not k.startswith("tuner/")} != BASELINE


def test_a_bayesian_search_runs_the_baseline_then_what_its_gaussian_process_proposes(
    compose_cfg: Callable[..., DictConfig], client: MlflowClient
) -> None:
    """tuner=bayesian end to end on tiny data: the baseline is its one random point, the next trial comes
    from the Gaussian process fitted to it; both are trials of one FINISHED parent."""
    overrides = ["tuner=bayesian", *TINY, "tuner.max_trials=2", "tuner.num_initial_points=1"]
    search(compose_cfg(*overrides, "tuner.registered_model=null"))
    parents, trials = search_runs(client)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert finished_trial_ids(trials) == ["0", "1"] and len(trials) == 2
    first, second = trials
    assert (first.data.params["optimizer.name"], float(first.data.params["lr"])) == ("sgd", 0.01)
    assert parents[0].data.metrics["baseline_score"] == pytest.approx(first.data.metrics["score"])
    baseline, proposed = ({k: v for k, v in r.data.params.items() if k.startswith("hp.")} for r in trials)
    assert baseline and proposed != baseline, proposed  # not the baseline again


def test_random_search_logs_every_trial_and_registers_the_best(
    compose_cfg: Callable[..., DictConfig], client: MlflowClient
) -> None:
    overrides = ["tuner=random", *TINY, "tuner.max_epochs=2", "tuner.registered_model=test-mlp"]
    result = search(compose_cfg(*overrides, "tuner.max_trials=3", "tracking.log_model=true"))

    parents, trials = search_runs(client)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert result.parent_run_id == parent.info.run_id
    assert finished_trial_ids(trials) == ["0", "1", "2"] and len(trials) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert {r.data.tags["sweeplab.trial_status"] for r in trials} == {"COMPLETED"}
    # The baseline runs first, with the baseline's params.
    first = trials[0]
    assert first.data.tags["sweeplab.trial_id"] == "0"
    assert (first.data.params["model.hidden_units"], first.data.params["activation"]) == (
        "[300, 100]",
        "relu",
    )
    assert (first.data.params["optimizer.name"], float(first.data.params["lr"])) == ("sgd", 0.01)
    for run in trials:
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [0, 1]  # max_epochs=2, patience 3: both epochs
        assert run.data.metrics["score"] == pytest.approx(max(m.value for m in history))
        assert "hp.learning_rate" in run.data.params

    # The parent: summary, gain over the baseline, the best model evaluated and registered.
    metrics = parent.data.metrics
    assert metrics["baseline_score"] == pytest.approx(first.data.metrics["score"])
    assert metrics["best_score"] == pytest.approx(max(r.data.metrics["score"] for r in trials))
    assert metrics["gain_over_baseline"] == pytest.approx(metrics["best_score"] - metrics["baseline_score"])
    assert 0 < metrics["test_accuracy"] <= 1
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    artifacts |= {a.path for a in client.list_artifacts(parent.info.run_id, "search")}
    assert {
        "search_space.json",
        "learning_curves.png",
        "confusion_matrix.png",
        "search/trials.csv",
        "search/trials.md",
        "search/best_hyperparameters.json",
        "search/trials.png",
    } <= artifacts
    table = result.trials
    assert list(table.score) == sorted(table.score, reverse=True) and len(table) == 3
    # What the artifacts say, not only their names: the space searched, every trial, the best trial's values.
    logged = Path(client.download_artifacts(parent.info.run_id, "search_space.json"))
    assert json.loads(logged.read_text()) == json.loads(json.dumps(search_space(compose_cfg(*overrides)).describe()))
    csv = pd.read_csv(client.download_artifacts(parent.info.run_id, "search/trials.csv"))
    scores = {r.info.run_id: r.data.metrics["score"] for r in trials}
    assert dict(zip(csv.run_id, csv.score, strict=True)) == pytest.approx(scores)
    assert list(csv.score) == sorted(csv.score, reverse=True)
    best = max(trials, key=lambda r: r.data.metrics["score"])
    chosen = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "search/best_hyperparameters.json")).read_text()
    )
    sampled = {k.removeprefix("hp."): v for k, v in best.data.params.items() if k.startswith("hp.")}
    assert {k: str(v) for k, v in chosen.items() if k != "hidden_units"} == sampled
    assert chosen["hidden_units"] == json.loads(best.data.params["model.hidden_units"])
    versions = client.search_model_versions("name = 'test-mlp'")
    assert len(versions) == 1
    # The first version is the champion: `models:/test-mlp@champion` names the best model so far.
    assert client.get_model_version_by_alias("test-mlp", "champion").version == versions[0].version
    assert parent.data.tags["sweeplab.champion"].startswith(f"version {versions[0].version} is the champion")
    model = mlflow.pyfunc.load_model(f"models:/test-mlp/{versions[0].version}")
    x = load_dataset(compose_cfg(*TINY).data).x_test[:3]
    assert np.asarray(model.predict(x)).shape == (3, 10)

    # The same search with a larger budget continues it: only the missing trial runs, same parent.
    again = search(compose_cfg(*overrides, "tuner.max_trials=4"))
    parents, trials = search_runs(client)
    assert again.parent_run_id == parent.info.run_id and len(parents) == 1
    assert finished_trial_ids(trials) == ["0", "1", "2", "3"] and len(trials) == 4
    # Started once more with nothing left to do: no new run, no new model version.
    search(compose_cfg(*overrides, "tuner.max_trials=4"))
    assert len(experiment_runs(client)) == 5
    assert len(client.search_model_versions("name = 'test-mlp'")) == 1


def test_search_over_a_models_own_keys(compose_cfg: Callable[..., DictConfig], client: MlflowClient) -> None:
    small = ["model=cnn", "model.filters=4", "model.dense=16", *TINY, "tuner=random", "tuner.max_trials=3"]
    space = ["+tuner.space.model.dropout={low:0.1,high:0.5}", "+tuner.space.model.filters=[4,8]"]
    cfg = compose_cfg(*small, *space)
    validate(cfg)
    hypermodel = ConfiguredHyperModel(cfg, search_space(cfg), load_dataset(cfg.data))
    # Trial 0 is the configured CNN: the very job `python sweep.py model=cnn ...` would run.
    assert config_hash(hypermodel.config_of(keras_tuner.HyperParameters())) == config_hash(cfg)
    result = search(cfg)

    parents, trials = search_runs(client)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert finished_trial_ids(trials) == ["0", "1", "2"]
    searched = client.download_artifacts(parents[0].info.run_id, "search_space.json")
    described = json.loads(Path(searched).read_text())
    assert set(described["model"]) == {"model.dropout", "model.filters"} and "depth" not in described
    seen = []
    for run in trials:
        params = run.data.params
        dropout, filters = float(params["model.dropout"]), int(params["model.filters"])
        # The sampled values reach the trial's config, as `model.dropout=...` on the command line would.
        assert (float(params["hp.model.dropout"]), int(params["hp.model.filters"])) == (dropout, filters)
        assert (params["model.kernel_size"], params["model.dense"]) == ("3", "16")  # not searched
        assert params["model._target_"] == "sweeplab.model.build_cnn" and "model.hidden_units" not in params
        assert params["model.activation"] in ("relu", "elu", "selu", "gelu", "tanh")
        seen.append((dropout, filters))
    assert seen[0] == (0.3, 4) and trials[0].data.tags["sweeplab.trial_id"] == "0"
    assert all(0.1 <= d <= 0.5 and f in (4, 8) for d, f in seen) and len(set(seen)) > 1
    assert "hidden_units" not in result.trials and {"model.dropout", "model.filters"} <= set(result.trials)
    assert "test_accuracy" in parents[0].data.metrics


def test_search_minimises_a_loss_objective(compose_cfg: Callable[..., DictConfig], client: MlflowClient) -> None:
    cfg = compose_cfg("tuner=random", *TINY, "tuner.max_epochs=2", "tuner.max_trials=2", "objective.metric=val_loss")
    validate(cfg)
    result = search(cfg)

    parents, trials = search_runs(client)
    lowest = {}
    for run in trials:
        history = [m.value for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert run.data.metrics["score"] == pytest.approx(min(history))  # the trial's best epoch: its lowest
        lowest[run.info.run_id] = min(history)
    best_run = min(lowest, key=lowest.__getitem__)
    assert len(lowest) == len(set(lowest.values())) == 2  # distinct trials, so the best one is decided
    parent = parents[0]
    assert parent.data.tags["sweeplab.best_run_id"] == best_run
    assert parent.data.metrics["best_score"] == pytest.approx(lowest[best_run])
    assert list(result.trials.score) == sorted(result.trials.score)  # best (lowest) first
    assert result.trials.iloc[0].run_id == best_run
    assert {"test_loss", "test_accuracy"} <= set(parent.data.metrics)


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_interrupted_search_resumes_without_logging_a_trial_twice(client: MlflowClient, tmp_path: Path) -> None:
    # 20 epochs a trial: a one-epoch trial on 500 images can end between two SIGTERMs, and the search then
    # stops between trials, with no trial to resume.
    longer = [arg if arg != "epochs=1" else "epochs=20" for arg in TINY]
    args = [str(ROOT / "sweep.py"), "tuner=random", "tuner.max_trials=3", *longer]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Stop it (SIGTERM, as a scheduler would) once trial 1 runs. Again each second: a signal that
        # lands in a garbage-collector callback is swallowed by Python ("Exception ignored in ...").
        _wait_for(
            lambda: any(r.data.tags.get("sweeplab.trial_id") == "1" for r in search_runs(client)[1]),
            240,
            "trial 1 to start",
        )
        while proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            time.sleep(1)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    parents, trials = search_runs(client)
    assert parents[0].info.status == "KILLED", output[-3000:]
    stopped_after = finished_trial_ids(trials)
    assert stopped_after in (["0"], ["0", "1"])

    done = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming random search" in done.stdout
    parents, trials = search_runs(client)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert finished_trial_ids(trials) == ["0", "1", "2"]  # finished trials not run again, each once
    interrupted = [r for r in trials if r.info.status == "KILLED"]
    assert len(interrupted) == 1 and len(trials) == 4
    resumed = [
        r
        for r in trials
        if r.data.tags["sweeplab.trial_id"] == interrupted[0].data.tags["sweeplab.trial_id"]
        and r.info.status == "FINISHED"
    ]
    assert resumed[0].data.tags["sweeplab.attempt"] == "2"
    assert interrupted[0].data.tags["sweeplab.superseded_by"] == resumed[0].info.run_id


@pytest.mark.slow
def test_hyperband_from_the_cli_respects_a_space_override(
    cli: Callable[..., subprocess.CompletedProcess[str]], client: MlflowClient
) -> None:
    done = cli(
        "tuner=hyperband",
        "tuner.max_epochs=2",
        "tuner.factor=2",
        "tuner.max_trials=4",
        "tuner.space.activation=[relu]",
        *TINY,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Search: Running Trial" in done.stdout  # Keras Tuner's own progress stays visible
    parents, trials = search_runs(client)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(finished_trial_ids(trials)) == 4
    assert {r.data.params["activation"] for r in trials} == {"relu"}
    assert "hp.activation" not in trials[0].data.params or trials[0].data.params["hp.activation"] == "relu"
    by_trial = {r.data.tags["sweeplab.trial_id"]: r for r in trials}
    continued = [r for r in trials if "sweeplab.continues_trial" in r.data.tags]
    assert continued, "Hyperband's second round continues a trial"
    for run in continued:
        past = by_trial[run.data.tags["sweeplab.continues_trial"]]
        assert run.data.tags["sweeplab.continues_run"] == past.info.run_id
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert steps and min(steps) >= 1  # it trains on from where the trial it continues stopped


@pytest.mark.slow
def test_distributed_search_logs_each_trial_once_under_one_parent(client: MlflowClient, tmp_path: Path) -> None:
    args = [sys.executable, str(ROOT / "sweep.py"), "tuner=random", "tuner.max_trials=4", *TINY]
    port = str(free_port())
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": port,
        }
        procs[tuner_id] = subprocess.Popen(
            args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    try:
        outputs = {name: proc.communicate(timeout=400)[0] for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for name, proc in procs.items():
        assert proc.returncode == 0, f"{name}:\n{outputs[name][-3000:]}"
    parents, trials = search_runs(client)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert finished_trial_ids(trials) == ["0", "1", "2", "3"] and len(trials) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    assert {r.data.tags["sweeplab.tuner_id"] for r in trials} == {"tuner0", "tuner1"}  # both workers trained
    baseline = next(r for r in trials if r.data.tags["sweeplab.trial_id"] == "0")
    assert baseline.data.params["model.hidden_units"] == "[300, 100]"
    assert "gain_over_baseline" in parents[0].data.metrics
