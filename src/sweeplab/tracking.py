"""MLflow: where runs go, what identifies them, and a run context that never leaves a run RUNNING."""

from __future__ import annotations

import contextlib
import os
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

import sweeplab
from sweeplab.config import config_hash, hidden_units, learning_rate, optimizer_name
from sweeplab.errors import ArtifactWriteError, TrackingError, TrackingLost
from sweeplab.runtime import signals_held

try:
    import fcntl
except ImportError:  # Windows: no lock (a fresh store raced by parallel jobs is then the user's risk)
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import mlflow

# MLflow is imported where it is used (it takes seconds): `--help` and refusing bad input do not wait for it.

STORE_DIR = Path("mlruns")
PARENT_RUN_ENV = "SWEEPLAB_PARENT_RUN_ID"
TAG_HASH = "sweeplab.config_hash"
TAG_ERROR = "sweeplab.error"
TAG_NOTE = "mlflow.note.content"  # shown as the run's description in the MLflow UI


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


def run_name(cfg: DictConfig) -> str:
    """e.g. 'mlp 300-100 relu sgd lr=0.01 seed=42'."""
    shape = "-".join(str(u) for u in hidden_units(cfg))
    return f"mlp {shape} {cfg.activation} {optimizer_name(cfg)} lr={learning_rate(cfg):g} seed={cfg.seed}"


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config (Hydra's own node left out), flattened to dotted keys."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    plain.pop("hydra", None)
    plain["lr"] = learning_rate(cfg)
    plain["optimizer"]["learning_rate"] = plain["lr"]
    plain["model"]["hidden_units"] = hidden_units(cfg)
    import pandas as pd

    flat = pd.json_normalize(plain, sep=".").iloc[0].to_dict()
    return {k: ("null" if v is None else v) for k, v in flat.items()}


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(sweeplab.__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def source_tags() -> dict[str, str]:
    """Versions and the git state of the code that ran."""
    import keras

    tags = {
        "sweeplab.version": sweeplab.__version__,
        "keras.version": keras.__version__,
        "keras.backend": keras.backend.backend(),
    }
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tags["tensorflow.version"] = tf.__version__
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["sweeplab.git_commit"] = commit
        tags["sweeplab.git_dirty"] = str(bool(_git("status", "--porcelain", "--untracked-files=no")))
    return tags


def parent_run_id() -> str | None:
    """The sweep's parent run, handed to jobs (also in other processes) through the environment."""
    return os.environ.get(PARENT_RUN_ENV) or None


def _reason(exc: BaseException) -> str:
    """The exception on one line (Hydra and Keras spread theirs over several)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _lost(run_id: str) -> TrackingLost:
    import mlflow

    return TrackingLost(
        f"the MLflow tracking server at {mlflow.get_tracking_uri()} stopped answering during run {run_id}, "
        "which stays RUNNING there; rerun the same command once the server is back (a sweep resumes where "
        "it stopped and closes that run)"
    )


@contextlib.contextmanager
def tracked_run(name: str, tags: dict[str, str]) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that ends FINISHED, FAILED (an error) or KILLED (Ctrl-C, SIGTERM), never RUNNING.

    A failed run keeps what it logged and gets the reason as a tag, as its description in the UI, and
    the traceback as error.txt.
    """
    import mlflow
    from mlflow.entities import RunStatus

    run = mlflow.start_run(run_name=name, tags=tags, parent_run_id=parent_run_id())
    try:
        yield run
    except BaseException as exc:
        status = RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
        status_name = RunStatus.to_string(status)
        reason = _reason(exc)
        # A second Ctrl-C or SIGTERM waits until the run is ended (it arrives when the block exits).
        with signals_held():
            # A lost server would make each call below retry; one quick probe tells.
            lost = unreachable(mlflow.get_tracking_uri())
            if lost is None:
                # Record what we can; the store itself may be what failed, and the run must still be ended.
                with contextlib.suppress(Exception):
                    mlflow.set_tags({TAG_ERROR: reason[:5000], TAG_NOTE: f"{status_name}: {reason}"[:5000]})
                    mlflow.log_text(traceback.format_exc(), "error.txt")
                with contextlib.suppress(Exception):
                    mlflow.end_run(status_name)
            else:
                # Off MLflow's stack of active runs, so that the next job in this process starts clean.
                stack = mlflow.tracking.fluent._active_run_stack.get()
                stack[:] = [r for r in stack if r.info.run_id != run.info.run_id]
        if lost is not None and not isinstance(exc, KeyboardInterrupt):
            raise _lost(run.info.run_id) from exc
        if isinstance(exc, OSError):  # inside a run only writing its files raises these (disk full, ...)
            where = f": {exc.filename}" if exc.filename else ""
            raise ArtifactWriteError(
                f"run {run.info.run_id} FAILED: cannot write its files to {run.info.artifact_uri} "
                f"({exc.strerror or exc}{where}); free disk space or fix the experiment's artifact location"
            ) from exc
        raise
    mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def numpy_digest(*arrays: Any) -> str:
    """MLflow's digest of a NumPy dataset (`compute_numpy_digest(features, targets)`), without its copies.

    MLflow hashes the first 10,000 values of each array, flattened, and the array's shape; but it flattens
    with `ndarray.flatten()`, which copies the whole array to read those values: 172 MB and 0.2-0.4 s for
    the 55,000 training images, on every run. Here only the leading rows are flattened (a view when the array is
    contiguous), so the digest is MLflow's own at no cost (tests/test_train.py compares the two).
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


def run_tags(cfg: DictConfig) -> dict[str, str]:
    return {**source_tags(), TAG_HASH: config_hash(cfg), "sweeplab.dataset": cfg.data.name}


def ui_url(experiment_id: str, run_id: str | None = None, base: str = "http://127.0.0.1:5000") -> str:
    """The runs table of an experiment (MLflow 3 opens experiments on a GenAI overview otherwise)."""
    return f"{base}/#/experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "")
