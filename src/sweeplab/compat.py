"""Every use of another library's private names, each with why; tests/test_compat.py fails loudly when one moves.

Where Hydra, MLflow, Keras Tuner, joblib or CPython offer a public way, sweeplab uses it instead; what is
here has none. pyproject.toml caps the versions these were checked against at their next major release.
Imports are local: this module is imported by the CLI before any heavy library.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# --------------------------------------------------------------------------------------------------- Hydra

# Hydra's own sweeper and launcher: targets of hydra.sweeper / hydra.launcher, compared as text.
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def wrap_hydra_error_report(wrapper: Callable[[Callable[[], Any], Callable[..., Any]], Any]) -> None:
    """Route Hydra's error reporting through `wrapper(func, original)`.

    Hydra prints a bad override over several lines (search path, keys) with no hook to change that;
    hydra.main looks `run_and_report` up in this module at call time, so replacing it is enough.
    """
    import hydra._internal.utils as hydra_utils

    original = hydra_utils.run_and_report
    if getattr(original, "sweeplab_wrapped", False):
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        return wrapper(func, original)

    run_and_report.sweeplab_wrapped = True  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report


def basic_sweep_jobs(overrides: list[Any]) -> list[list[str]]:
    """Each job's overrides, in the order Hydra's basic sweeper numbers them (it has no public expansion)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper.split_arguments(overrides, None)[0]


# -------------------------------------------------------------------------------------------------- joblib


def joblib_launcher_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` (hydra.launcher without _target_) as Hydra's joblib launcher hands them to joblib.Parallel.

    The launcher's conversion has no public name; the workers are reused only when both calls match.
    """
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    settings = {**settings, "backend": "loky"}  # as the launcher does
    process_joblib_cfg(settings)
    return settings


def stop_joblib_workers() -> None:
    """Stop the worker processes of loky's reusable executor, if this process made one.

    joblib offers no public way to end them before the interpreter exits (each then tears TensorFlow down).
    """
    loky = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(loky, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


def signal_joblib_workers(signum: int) -> int:
    """Send `signum` to each worker process of loky's reusable executor; how many were sent it.

    hydra/sweeper=sweeplab runs trials in worker threads, so a SIGTERM reaches only the launching process; sent
    on to the workers, each job ends its run KILLED and writes its report, as under SIGINT from a terminal.
    joblib has no public list of its workers.
    """
    import os

    loky = sys.modules.get("joblib.externals.loky.reusable_executor")
    processes = getattr(getattr(loky, "_executor", None), "_processes", None) or {}
    sent = 0
    for pid in list(processes):
        try:
            os.kill(int(pid), signum)
            sent += 1
        except (ProcessLookupError, PermissionError):
            continue
    return sent


# ------------------------------------------------------------------------------------------------ submitit


def submitit_local_controller_pid(job: Any) -> int:
    """The pid of the controller process of a submitit local job, which forwards SIGTERM to the job's task.

    submitit's LocalJob.cancel sends the controller SIGINT, after which it kills the task within a second,
    too soon for the task to end its run; a local job's id is its controller's pid (not documented).
    """
    return int(job.job_id)


# ------------------------------------------------------------------------------------------------- CPython


def run_exit_hooks() -> bool:
    """Do what the interpreter does first on exit (wind down threads, run atexit); False where it cannot.

    CPython exposes neither step publicly; os._exit after them skips only the slow teardown of modules.
    """
    import atexit
    import threading

    shutdown_threads = getattr(threading, "_shutdown", None)
    run_atexit = getattr(atexit, "_run_exitfuncs", None)
    if shutdown_threads is None or run_atexit is None:
        return False
    shutdown_threads()
    run_atexit()
    return True


# -------------------------------------------------------------------------------------------------- MLflow


def forget_active_run(run_id: str) -> None:
    """Take a run off MLflow's stack of active runs without ending it (its server is gone: ending would hang).

    mlflow.end_run() talks to the store first; there is no public way to only forget the run.
    """
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    stack[:] = [run for run in stack if run.info.run_id != run_id]


def numpy_dataset_digest(arrays: tuple[Any, ...]) -> str:
    """MLflow's digest of a NumPy dataset (`compute_numpy_digest`), without the copy it makes of each array.

    MLflow hashes the first MAX_ROWS values of each flattened array and its shape, but flattens the whole
    array to read them (172 MB for the training images). Its digest helpers are not public.
    """
    import numpy as np
    import pandas as pd
    from mlflow.data.digest_utils import MAX_ROWS, get_normalized_md5_digest

    elements: list[Any] = []
    for array in arrays:
        head = np.ravel(array[:MAX_ROWS])[:MAX_ROWS] if np.ndim(array) else np.ravel(array)
        try:
            elements.append(pd.util.hash_array(head))
        except TypeError:  # as MLflow: values pandas cannot hash count by their number
            elements.append(np.int64(head.size))
        elements.extend(np.int64(n) for n in np.shape(array))
    return get_normalized_md5_digest(elements)


def check_model_requirements(requirements: list[str]) -> None:
    """MLflow's check of a model's requirements against the installed packages (log_model runs it first).

    Run ahead, it builds MLflow's map of installed packages once per process; MLflow has no public call.
    """
    from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

    warn_dependency_requirement_mismatches(requirements)


def import_sql_store() -> None:
    """Import MLflow's SQL tracking store (SQLAlchemy, alembic) ahead of the first run in a warm worker."""
    from mlflow.store.tracking import sqlalchemy_store  # noqa: F401


def _sql_sessions(client: Any) -> Any | None:
    """The session maker of MLflow's SQL tracking store behind `client`, or None for another store."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return getattr(store, "ManagedSessionMaker", None)


def _points(rows: list[tuple], columns: list[str]) -> Any:
    """SQL metric rows (`columns`, then is_nan) as a frame; MLflow stores NaN as 0 with is_nan set."""
    import math

    import pandas as pd

    frame = pd.DataFrame(rows, columns=[*columns, "is_nan"])
    frame.loc[frame["is_nan"].astype(bool), "value"] = math.nan
    return frame.drop(columns="is_nan")


def is_sql_store(client: Any) -> bool:
    """Whether `client` reads MLflow's SQL store directly (SQLite, PostgreSQL, MySQL), not a server."""
    return _sql_sessions(client) is not None


def metric_points(client: Any, run_ids: list[str], keys: tuple[str, ...]) -> Any | None:
    """(run_id, key, step, value) of `keys` for these runs, in one column query per 500 runs, or None.

    MlflowClient has no bulk history read (one call per run and metric takes about 40 s over 1,000 runs on
    SQLite), and the SQL store's own bulk call builds an ORM object per point. Only on MLflow's SQL store
    (SQLite, PostgreSQL, MySQL); None elsewhere, where the caller goes through the public API.
    """

    sessions = _sql_sessions(client)
    if sessions is None:
        return None
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    rows: list[tuple] = []
    with sessions() as session:
        for start in range(0, len(run_ids), 500):  # SQLite limits the size of an IN (...) list
            rows += (
                session.query(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.value, SqlMetric.is_nan)
                .filter(SqlMetric.run_uuid.in_(run_ids[start : start + 500]), SqlMetric.key.in_(keys))
                .order_by(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.timestamp)
                .all()
            )
    return _points(rows, ["run_id", "key", "step", "value"])


# -------------------------------------------------------------------------------------------- Keras Tuner


def baseline_first(oracle_class: type) -> type:
    """`oracle_class` whose first trial is every hyperparameter's default, i.e. the baseline.

    Keras Tuner cannot queue given values as a trial. All three oracles draw their first trials through
    the private `_random_values` (Hyperband for each bracket's first round, Bayesian for its initial
    points), so overriding it covers them all; `_tried_so_far` says whether anything was drawn yet.
    """
    import keras_tuner

    def _random_values(self: Any) -> dict[str, Any] | None:
        if self._tried_so_far:
            return oracle_class._random_values(self)
        values = keras_tuner.HyperParameters()
        for hp in self.hyperparameters.space:
            values.merge([hp])
            if values.is_active(hp):
                values.values[hp.name] = hp.default
        return values.values

    return type(oracle_class.__name__, (oracle_class,), {"_random_values": _random_values, "__module__": __name__})


def trial_objective(results: Any, objective: Any) -> float:
    """The objective's value in what a trial's run_trial returned (a History, a dict, a list of them).

    Keras Tuner's own conversion (best epoch, mean over executions) is not public.
    """
    from keras_tuner.src.engine import tuner_utils

    return float(tuner_utils.convert_to_metrics_dict(results, objective)[objective.name])


def tagged_metric_points(client: Any, key: str, tag: tuple[str, str], unless_tag: str) -> Any | None:
    """(run_id, step, value) of metric `key` for every run tagged `tag` (key, value) and not tagged `unless_tag`,
    in one SQL query, or None.

    A pruning decision reads its siblings' histories after every epoch (sweeplab.pruning.siblings says which runs
    they are); MlflowClient would take a search and one history call per run. Only on MLflow's SQL store; None
    elsewhere.
    """
    sessions = _sql_sessions(client)
    if sessions is None:
        return None
    from mlflow.store.tracking.dbmodels.models import SqlMetric, SqlTag

    with sessions() as session:
        excluded = session.query(SqlTag.run_uuid).filter(SqlTag.key == unless_tag)
        rows = (
            session.query(SqlMetric.run_uuid, SqlMetric.step, SqlMetric.value, SqlMetric.is_nan)
            .join(SqlTag, SqlTag.run_uuid == SqlMetric.run_uuid)
            .filter(SqlTag.key == tag[0], SqlTag.value == tag[1], SqlMetric.key == key)
            .filter(SqlMetric.run_uuid.not_in(excluded))
            .all()
        )
    return _points(rows, ["run_id", "step", "value"])


def server_history_bulk(tracking_uri: str, run_ids: list[str], key: str, options: dict[str, Any]) -> Any:
    """(run_id, step, value) of metric `key` for these runs from a tracking server, 100 runs a request.

    The endpoint is the one MLflow's UI reads charts from (`metrics/get-history-bulk`), not part of its
    documented REST API; `options` are requests' login and TLS options (sweeplab.tracking.store.request_options).
    """
    import pandas as pd
    import requests

    rows: list[tuple] = []
    url = tracking_uri.rstrip("/") + "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
    for start in range(0, len(run_ids), 100):
        params = [("run_id", r) for r in run_ids[start : start + 100]] + [("metric_key", key)]
        response = requests.get(url, params=params, timeout=30, **options)
        response.raise_for_status()
        rows += [(m["run_id"], m["step"], float(m["value"])) for m in response.json().get("metrics", [])]
    return pd.DataFrame(rows, columns=["run_id", "step", "value"])
