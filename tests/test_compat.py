"""Every private name sweeplab.compat uses, checked against the installed libraries: when a release moves
one, this fails naming it, before a user meets a stranger error."""

from __future__ import annotations

import atexit
import math
import threading

import numpy as np
import pytest

from sweeplab import compat


def moved(what: str) -> str:
    return f"{what} changed in the installed release: update sweeplab.compat (and pyproject's bounds)"


def test_hydra_error_report_is_wrapped() -> None:
    """What sweep.py's run() installs: Hydra's error report routed through a wrapper, once."""
    import hydra._internal.utils as hydra_utils

    assert callable(getattr(hydra_utils, "run_and_report", None)), moved("hydra._internal.utils.run_and_report")
    original, seen = hydra_utils.run_and_report, []
    try:
        compat.wrap_hydra_error_report(lambda func, report: seen.append(report) or func())
        compat.wrap_hydra_error_report(lambda func, report: seen.append("twice") or func())  # a no-op
        assert hydra_utils.run_and_report(lambda: 7) == 7
        assert seen == [original], moved("hydra's run_and_report lookup")
    finally:
        hydra_utils.run_and_report = original


def test_hydra_basic_sweeper_expansion() -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides(["lr=0.1,0.2", "seed=0,1,2", "epochs=3"])
    jobs = compat.basic_sweep_jobs(overrides)
    assert len(jobs) == 6, moved("hydra BasicSweeper.split_arguments")
    assert jobs[0] == ["lr=0.1", "seed=0", "epochs=3"], moved("hydra BasicSweeper.split_arguments")


def test_hydra_targets_exist() -> None:
    import importlib

    for target in (compat.BASIC_SWEEPER, compat.BASIC_LAUNCHER):
        module, name = target.rsplit(".", 1)
        assert hasattr(importlib.import_module(module), name), moved(target)


def test_joblib_launcher_settings_and_worker_stop() -> None:
    from joblib import Parallel, delayed

    settings = compat.joblib_launcher_settings({"n_jobs": 2, "batch_size": "auto", "pre_dispatch": "2*n_jobs"})
    assert settings["backend"] == "loky" and settings["n_jobs"] == 2, moved("hydra_joblib_launcher._core")
    assert Parallel(**settings)(delayed(math.sqrt)(x) for x in (4, 9)) == [2.0, 3.0]
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    assert executor is not None, moved("loky's reusable_executor._executor")
    assert compat.signal_joblib_workers(0) == 2, moved("loky executor _processes")  # signal 0: alive?
    compat.stop_joblib_workers()
    assert all(not p.is_alive() for p in executor._processes.values()), moved("loky executor shutdown")


def test_submitit_local_job_id_is_its_controller_pid(tmp_path) -> None:
    """The task's parent process is the controller that forwards SIGTERM to it."""
    import os

    import submitit

    executor = submitit.LocalExecutor(folder=tmp_path)
    executor.update_parameters(timeout_min=1)
    job = executor.submit(os.getppid)
    assert job.result() == compat.submitit_local_controller_pid(job), moved("submitit's local job id")


def test_cpython_exit_hooks_exist() -> None:
    assert callable(getattr(threading, "_shutdown", None)), moved("threading._shutdown")
    assert callable(getattr(atexit, "_run_exitfuncs", None)), moved("atexit._run_exitfuncs")


def test_mlflow_active_run_is_forgotten(store: str) -> None:
    import mlflow

    mlflow.set_experiment("compat")
    run = mlflow.start_run()
    compat.forget_active_run(run.info.run_id)
    assert mlflow.active_run() is None, moved("mlflow.tracking.fluent._active_run_stack")
    assert mlflow.get_run(run.info.run_id).info.status == "RUNNING"


def test_mlflow_digest_matches_its_own() -> None:
    from mlflow.data.digest_utils import compute_numpy_digest

    x = np.random.default_rng(0).random((12_000, 4, 4), dtype=np.float32)
    y = np.arange(12_000) % 10
    assert compat.numpy_dataset_digest((x, y)) == compute_numpy_digest(x, y), moved("mlflow.data.digest_utils")


def test_mlflow_requirements_check_and_sql_store() -> None:
    """The check warns of a requirement the installed packages miss, and only then; the SQL store is loaded."""
    import logging
    import sys

    warnings: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = warnings.append  # MLflow's loggers do not propagate to pytest's capture
    logger = logging.getLogger("mlflow.utils.requirements_utils")
    logger.addHandler(handler)
    try:
        compat.check_model_requirements(["numpy"])
        assert warnings == []
        compat.check_model_requirements(["numpy==0.0.1"])
    finally:
        logger.removeHandler(handler)
    assert [w for w in warnings if "numpy==0.0.1" in w.getMessage()], moved("mlflow.utils.requirements_utils")
    compat.import_sql_store()
    assert hasattr(sys.modules.get("mlflow.store.tracking.sqlalchemy_store"), "SqlAlchemyStore"), moved(
        "mlflow.store.tracking.sqlalchemy_store"
    )


def test_mlflow_bulk_metric_read(client) -> None:
    run_ids = []
    for values in ([0.5, 0.6], [0.7, float("nan")]):
        run = client.create_run("0")
        for step, value in enumerate(values):
            client.log_metric(run.info.run_id, "val_accuracy", value, step=step)
        client.log_metric(run.info.run_id, "other", 1.0)
        run_ids.append(run.info.run_id)
    frame = compat.metric_points(client, run_ids, ("val_accuracy",))
    assert frame is not None, moved("MLflow's SQL store (client._tracking_client.store, SqlMetric)")
    assert list(frame.columns) == ["run_id", "key", "step", "value"]
    assert len(frame) == 4 and set(frame["key"]) == {"val_accuracy"}
    first = frame[frame["run_id"] == run_ids[0]].sort_values("step")["value"].tolist()
    assert first == pytest.approx([0.5, 0.6])
    assert math.isnan(frame[(frame["run_id"] == run_ids[1]) & (frame["step"] == 1)]["value"].iloc[0])


def test_mlflow_bulk_metric_read_by_tag(client) -> None:
    def run(labels: dict[str, str], values: list[float]) -> str:
        run_id = client.create_run("0", tags=labels).info.run_id
        for step, value in enumerate(values):
            client.log_metric(run_id, "val_accuracy", value, step=step)
        return run_id

    member = run({"study": "p"}, [0.5, 0.6])
    run({"study": "p", "aggregate": "2"}, [0.9])  # tagged, but also tagged to leave out
    run({"study": "q"}, [0.1])  # another value of the tag
    frame = compat.tagged_metric_points(client, "val_accuracy", ("study", "p"), "aggregate")
    assert frame is not None, moved("MLflow's SQL store (client._tracking_client.store, SqlMetric, SqlTag)")
    assert list(frame.columns) == ["run_id", "step", "value"]
    assert set(frame["run_id"]) == {member} and sorted(frame["value"]) == pytest.approx([0.5, 0.6])


def test_keras_tuner_oracle_draws_the_defaults_first() -> None:
    import keras_tuner

    oracle_class = compat.baseline_first(keras_tuner.oracles.RandomSearchOracle)
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 10, 1000, default=300)
    hp.Choice("activation", ["relu", "tanh", "elu"], default="tanh")
    oracle = oracle_class(objective="val_accuracy", max_trials=3, hyperparameters=hp, seed=1)
    assert hasattr(oracle, "_tried_so_far"), moved("keras_tuner Oracle._tried_so_far")
    assert oracle._random_values() == {"units": 300, "activation": "tanh"}, moved("keras_tuner Oracle._random_values")


def test_keras_tuner_trial_objective() -> None:
    import keras_tuner

    objective = keras_tuner.Objective("val_accuracy", "max")
    assert compat.trial_objective({"val_accuracy": 0.8}, objective) == 0.8
    assert compat.trial_objective([{"val_accuracy": 0.8}, {"val_accuracy": 0.6}], objective) == pytest.approx(0.7)
