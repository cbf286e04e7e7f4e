"""Where runs go: the store's URI, a fast check that a server answers, a safe first contact with SQLite."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from sweeplab.errors import TrackingError

try:
    import fcntl
except ImportError:  # Windows: no lock (a fresh store raced by parallel jobs is then the user's risk)
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# MLflow is imported where it is used (it takes seconds): `--help` and refusing bad input do not wait for it.

STORE_DIR = Path("mlruns")


def default_store_uri(root: Path | None = None) -> str:
    """SQLite inside mlruns/ (artifacts go beside it, under mlruns/<experiment id>/)."""
    store = ((root or Path.cwd()) / STORE_DIR).resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def tracking_uri(tracking: DictConfig) -> str:
    """MLFLOW_TRACKING_URI wins (a tracking server), then tracking.uri, then the local SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or tracking.uri or default_store_uri()


def check_reachable(uri: str, timeout: float) -> None:
    """Fail within `timeout` seconds, naming the URI, when a tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as err:
        raise TrackingError(
            f"the MLflow tracking server at {uri} does not answer ({type(err).__name__}); start it or fix "
            "MLFLOW_TRACKING_URI / tracking.uri"
        ) from None


def unreachable(uri: str, timeout: float = 2.0) -> str | None:
    """Why a tracking server does not answer now, or None when it does (or the store is not a server)."""
    try:
        check_reachable(uri, timeout)
    except TrackingError as err:
        return str(err)
    return None


@contextlib.contextmanager
def sqlite_init_lock(uri: str) -> Iterator[None]:
    """Let one process at a time make first contact with a SQLite store (a lock file beside mlflow.db).

    MLflow creates a new SQLite store by running its migrations; parallel jobs racing on a fresh mlflow.db
    break them (alembic errors). Once the tables exist, SQLite's own locking is enough. Other stores pass.
    """
    if not uri.startswith("sqlite:///") or fcntl is None:
        yield
        return
    db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def check_store(tracking: DictConfig) -> str:
    """Fail fast (TrackingError) when a tracking server does not answer; returns the store's URI.

    Sets MLflow's HTTP retries and timeout (MLflow retries a failing server for minutes by default; an
    explicit environment still wins). Does not import MLflow.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(tracking.retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(tracking.timeout)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")  # MLflow's 2 doubles from 4 s
    uri = tracking_uri(tracking)
    check_reachable(uri, tracking.timeout)
    return uri


def connect(tracking: DictConfig) -> str:
    """Point MLflow at the store, failing fast (TrackingError) when a server does not answer; returns its URI."""
    import mlflow

    uri = check_store(tracking)
    mlflow.set_tracking_uri(uri)
    return uri


def configure(tracking: DictConfig) -> str:
    """Point MLflow at the store and the experiment; returns the experiment id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = connect(tracking)
    with sqlite_init_lock(uri):  # a fresh store is created here, maybe by several jobs at once
        try:
            experiment = mlflow.set_experiment(tracking.experiment)
        except MlflowException:
            # Another process of the same sweep created it between our lookup and our create.
            experiment = mlflow.set_experiment(tracking.experiment)
    return experiment.experiment_id


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if missing (by this or a racing process)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # created by another process since our lookup
        return client.get_experiment_by_name(name).experiment_id
