"""Where runs go: the store's URI, a fast check that a server answers and lets this user write, a safe first
contact with SQLite."""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def tracking_uri(configured: str | None = None, given: str | None = None) -> str:
    """Where runs go: `given` (a --tracking-uri option) first, then MLFLOW_TRACKING_URI (a tracking server), then
    `configured` (tracking.uri), then the local SQLite store. Every entry point asks here."""
    return given or os.environ.get("MLFLOW_TRACKING_URI") or configured or default_store_uri()


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def shown(uri: str) -> str:
    """The URI as messages show it: without a user or password written into it."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.password and not parts.username:
        return uri
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def check_reachable(uri: str, timeout: float) -> None:
    """Fail within `timeout` seconds, naming the URI, when a tracking server does not answer."""
    if not is_server(uri):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as err:
        raise TrackingError(
            f"the MLflow tracking server at {shown(uri)} does not answer ({type(err).__name__}); start it or fix "
            "MLFLOW_TRACKING_URI / tracking.uri"
        ) from None


def unreachable(uri: str, timeout: float = 2.0) -> str | None:
    """Why a tracking server does not answer now, or None when it does (or the store is not a server)."""
    try:
        check_reachable(uri, timeout)
    except TrackingError as err:
        return str(err)
    return None


def request_options() -> dict[str, Any]:
    """requests' options for the login MLflow's client uses (its documented MLFLOW_TRACKING_* variables)."""
    options: dict[str, Any] = {}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        options["auth"] = (user, password)
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        options["headers"] = {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        options["verify"] = False
    elif os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        options["verify"] = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    return options


READ_ONLY = ("READ", "USE", "NO_PERMISSIONS", "DENY")  # the auth app's experiment permissions that cannot log runs


def check_access(uri: str, experiment: str, timeout: float) -> None:
    """Fail (TrackingError, one line naming the server, user and what to set) when a server with MLflow's
    basic-auth app refuses this login, or does not let it log runs to `experiment`; before any run is made.

    Open servers, and checks this server cannot answer (no auth app), pass: the first write then tells.
    """
    if not is_server(uri):
        return
    import requests

    options, base, where = request_options(), uri.rstrip("/"), shown(uri)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")

    def get(path: str, **params: str) -> requests.Response:
        try:
            return requests.get(f"{base}{path}", params=params, timeout=timeout, **options)
        except requests.RequestException as err:
            raise TrackingError(
                f"the MLflow tracking server at {where} does not answer ({type(err).__name__})"
            ) from None

    found = get("/api/2.0/mlflow/experiments/get-by-name", experiment_name=experiment)
    if found.status_code == 401 and ("auth" in options or "headers" in options):
        who = f"user '{user}'" if "auth" in options else "the token in MLFLOW_TRACKING_TOKEN"
        raise TrackingError(
            f"the MLflow tracking server at {where} refused {who} (HTTP 401: unknown user or wrong "
            "password): check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if found.status_code == 401:
        raise TrackingError(
            f"the MLflow tracking server at {where} requires a login (HTTP 401): set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD to your account on it"
        )
    if found.status_code == 403:
        raise TrackingError(_no_permission(user, experiment, where, "HTTP 403: permission denied"))
    if found.status_code != 200 or not user:
        return  # a new experiment (its creator may write to it), or a server without logins
    me = _json(get("/api/2.0/mlflow/users/get", username=user)).get("user", {})
    experiment_id = _json(found).get("experiment", {}).get("experiment_id")
    if me.get("is_admin", True) or experiment_id is None:
        return  # an admin may do anything; a server that does not say
    granted = get("/api/3.0/mlflow/users/permissions/get", username=user, resource_type="experiment",
                  resource_id=experiment_id)  # fmt: skip
    permission = _json(granted).get("permission")
    if permission in READ_ONLY:
        raise TrackingError(_no_permission(user, experiment, where, f"permission {permission}, no right to log runs"))


def _json(response: Any) -> dict[str, Any]:
    """A 200 response's JSON object, else {} (an older server, or not MLflow's auth app, answers otherwise)."""
    try:
        found = response.json() if response.status_code == 200 else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _no_permission(user: str, experiment: str, where: str, what: str) -> str:
    return (
        f"user '{user or '(none)'}' may not log runs to experiment '{experiment}' on the MLflow tracking server at "
        f"{where} ({what}): ask its admin for EDIT on it, or choose another (tracking.experiment=...)"
    )


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
    """Fail fast (TrackingError) when a tracking server does not answer, or does not let this user write to the
    experiment; returns the store's URI.

    Sets MLflow's HTTP retries and timeout (MLflow retries a failing server for minutes by default; an
    explicit environment still wins). Does not import MLflow.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(tracking.retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(tracking.timeout)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")  # MLflow's 2 doubles from 4 s
    if tracking.uri and urllib.parse.urlsplit(tracking.uri).password:  # the config is logged with every run
        raise TrackingError(
            f"tracking.uri={shown(tracking.uri)} holds a password, which would be logged with the runs' params: "
            "drop it from the URI and set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead"
        )
    uri = tracking_uri(tracking.uri)
    check_reachable(uri, tracking.timeout)
    check_access(uri, tracking.experiment, tracking.timeout)
    if is_server(uri):  # urllib3 logs each of MLflow's retries; a lost server is said in one line instead
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    return uri


def connect(tracking: DictConfig) -> str:
    """Point MLflow at the store, failing fast (TrackingError) when a server does not answer; returns its URI."""
    import mlflow

    uri = check_store(tracking)
    quiet_sql_errors()  # after MLflow's import, which sets up its loggers
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


SQL_LOG = "mlflow.store.db.utils"  # logs every SQLAlchemy error with its traceback before raising it


def quiet_sql_errors() -> None:
    """Keep MLflow's SQL store from logging each database error with a traceback; the error is still raised and
    sweeplab says it in one line (a full disk: sweeplab.tracking.full_disk). Call it once MLflow is imported:
    its logging set-up resets the level of its loggers' children."""
    logging.getLogger(SQL_LOG).setLevel(logging.CRITICAL)
