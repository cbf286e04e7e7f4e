"""Shared fixtures: the offline Keras cache, a real MLflow store per test, the real CLI as a subprocess."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SHARED_DATA = Path(os.environ.get("SWEEPLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))
MNIST_NPZ = SHARED_DATA / "mnist" / "mnist.npz"
# Small and fast, but real: 2,000 training images, compiled steps, two epochs.
QUICK = ["data.limit=2000", "epochs=2", "training.verbose=2"]
# For tests about tracking, sweeps and failures rather than the training path: 1,000 validation images and
# no XLA compile (on this little data, compiling costs seconds of CPU per run and saves nothing).
LIGHT = ["data.validation_size=1000", "training.jit_compile=false"]


# CI (.ci/run, CI=true) installs every part the tests use: there a missing part is a failure, never a skip.
# Any true-ish CI counts (true, True, 1, yes): only unset, empty, 0, false, no and off do not.
ON_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Under CI the whole suite runs: a -k or -m (from the command line, PYTEST_ADDOPTS or the config) that
    leaves defined tests out fails the run, as a skip does (deselected tests would pass unseen)."""
    if ON_CI and items:
        raise pytest.UsageError(f"CI runs the whole suite: {len(items)} defined tests deselected (-k or -m)")


def require(available: bool, what: str) -> None:
    """Skip the test, saying `what` is missing, unless `available`; under CI=true fail instead of skipping."""
    __tracebackhide__ = True
    if available:
        return
    if ON_CI:
        pytest.fail(f"{what} (CI=true: a missing part fails)", pytrace=False)
    pytest.skip(what)


def require_module(name: str) -> ModuleType:
    """pytest.importorskip(name), with its reason, except that under CI=true a missing module fails."""
    __tracebackhide__ = True
    try:
        return pytest.importorskip(name)
    except pytest.skip.Exception as missing:
        if ON_CI:
            pytest.fail(f"{missing.msg} (CI=true: a missing part fails)", pytrace=False)
        raise


@pytest.fixture(scope="session", autouse=True)
def keras_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras cache holding Fashion-MNIST: $KERAS_HOME if it has the files, else a copy of shared/data."""
    current = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    if len(list((current / "datasets" / "fashion-mnist").glob("*.gz"))) == 4:
        os.environ["KERAS_HOME"] = str(current)
        return current
    source = SHARED_DATA / "fashion-mnist"
    if not source.is_dir():
        pytest.exit(f"no Fashion-MNIST in {current}/datasets/fashion-mnist nor in {source}: run `make data`")
    home = tmp_path_factory.mktemp("keras_home")
    shutil.copytree(source, home / "datasets" / "fashion-mnist", ignore=shutil.ignore_patterns("*.md"))
    os.environ["KERAS_HOME"] = str(home)
    return home


@pytest.fixture(autouse=True)
def fresh_mlflow_uri() -> Iterator[None]:
    """Forget the tracking URI a test set in this process (train.run calls mlflow.set_tracking_uri, which
    also sets MLFLOW_TRACKING_URI): the next test in the same worker must see its own store, not that one."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    mlflow.set_tracking_uri(None)
    if before is not None:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow store for this test, also seen by subprocesses through the environment."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture
def client(store: str) -> MlflowClient:
    return MlflowClient(tracking_uri=store)


# Runs a script as `python script args` would, and at exit (sys.exit and sweeplab's quick exit run atexit
# hooks) writes the names of every module the process imported to $TEST_IMPORTS_FILE, one per line.
WATCHED_MAIN = """
import atexit, os, runpy, sys
def _imports():
    with open(os.environ["TEST_IMPORTS_FILE"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
atexit.register(_imports)
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(sys.argv[0])
runpy.run_path(sys.argv[0], run_name="__main__")
"""
HEAVY = ("tensorflow", "keras", "jax", "torch")  # what a command refused before any work must not import


def run_cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    script: str = "sweep.py",
    imports: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real entry point in a fresh process, output captured; with `imports`, the names of the modules the
    process imported are written there at its exit (see imported_heavy)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    watch = ["-c", WATCHED_MAIN] if imports else []
    if imports:
        full_env["TEST_IMPORTS_FILE"] = str(imports)
    return subprocess.run(
        [sys.executable, *watch, str(ROOT / script), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def imported_heavy(imports: Path) -> list[str]:
    """The heavy packages (TensorFlow, Keras, JAX, torch) a run_cli(..., imports=...) process imported: what it
    did, not what it printed. Fails if the process never got to write the list."""
    assert imports.is_file(), f"the process wrote no list of its imports to {imports}"
    return sorted({name.split(".")[0] for name in imports.read_text().split()} & set(HEAVY))


@contextlib.contextmanager
def tracking_server(folder: Path) -> Iterator[Any]:
    """A real `mlflow server` on 127.0.0.1 for the test, its SQLite store, log and artifacts in `folder`."""
    from sweeplab.tracking.ui import running_ui

    store, artifacts = f"sqlite:///{folder / 'server.db'}", ("--artifacts-destination", str(folder / "artifacts"))
    with running_ui(store, folder / "server.log", kind="server", extra_args=artifacts) as server:
        yield server


@contextlib.contextmanager
def served_model(model_uri: str, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`mlflow models serve` of `model_uri` on a free local port (the venv's bin on PATH: it runs uvicorn),
    until it answers /ping from its own socket; yields its URL and stops it (its process group) afterwards."""
    import time
    import urllib.request

    from sweeplab.tracking.ui import UiServer, free_port, serves_on

    port = free_port()
    env = {**os.environ, **(env or {}), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = UiServer(process, f"http://127.0.0.1:{port}", log)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{server.url}/ping", timeout=2) as response:
                return response.status == 200 and serves_on(process, port)  # this server, not another's
        except OSError:
            return False

    try:
        deadline = time.monotonic() + 180
        while not answers():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def cli(tmp_path: Path, store: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_cli with the test's store and working folder (Hydra outputs land in tmp_path)."""

    def _run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), cwd=tmp_path, **kwargs)

    return _run


@pytest.fixture
def compose_cfg() -> Iterator[Callable[..., DictConfig]]:
    """Compose the real configs with overrides, as Hydra would for `python sweep.py ...`."""
    from sweeplab.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda *overrides: compose(config_name="config", overrides=list(overrides))


def run_child(code: str, cfg: DictConfig) -> Any:
    """Run `code` in a fresh process (a Keras backend is fixed per process) with the resolved `cfg` as YAML on
    stdin; it prints one line `RESULT <json>`, returned here parsed."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=OmegaConf.to_yaml(cfg, resolve=True),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def experiment_runs(client: MlflowClient, experiment: str = "fashion_mnist") -> list:
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


# A real small sweep shared by the compare, predict and UI tests (built once per session: it trains).
SWEEP_NAME = "optimizers-small"


def once_per_session(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict]) -> dict:
    """build(folder) once for the whole test session, also under pytest-xdist (`make test` runs two workers).

    Each xdist worker has its own session fixtures: the first to get here builds under a lock, in the folder
    all workers of the session share, and the others read what it returned (JSON: plain values, paths as text).
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent  # this session's, shared by its workers
    done = shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            folder = shared / name
            folder.mkdir()
            done.write_text(json.dumps(build(folder), default=str))
    return json.loads(done.read_text())


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory: pytest.TempPathFactory, keras_home: Path) -> dict:
    """sweep.py -m optimizer=sgd,adam seed=0,1 under a parent run, a FAILED child and a run outside it."""
    return once_per_session(tmp_path_factory, "small_sweep", lambda folder: _build_small_sweep(folder, keras_home))


def _build_small_sweep(folder: Path, keras_home: Path) -> dict:
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    (folder / "mlruns").mkdir()
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("fashion_mnist", artifact_location=str(folder / "mlruns" / "artifacts"))
    env = {"MLFLOW_TRACKING_URI": uri, "KERAS_HOME": str(keras_home)}
    args = ["-m", "optimizer=sgd,adam", "seed=0,1", "data.limit=1000", "epochs=2", "training.verbose=0", *LIGHT]
    result = run_cli(args, cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    # The sweep made its parent run; give it a fixed name for the tests that look it up by name.
    children = [r for r in client.search_runs([exp_id]) if "mlflow.parentRunId" in r.data.tags]
    parent_id = children[0].data.tags["mlflow.parentRunId"]
    client.update_run(parent_id, name=SWEEP_NAME)
    # A child that failed (must be left out) and a finished run outside the sweep (must not be counted in it).
    failed = client.create_run(exp_id, run_name="failed child", tags={"mlflow.parentRunId": parent_id})
    client.log_param(failed.info.run_id, "optimizer.name", "adam")
    client.set_terminated(failed.info.run_id, "FAILED")
    outside = client.create_run(exp_id, run_name="rmsprop outside the sweep")
    client.log_param(outside.info.run_id, "optimizer.name", "rmsprop")
    for step, value in enumerate([0.80, 0.86, 0.88]):
        client.log_metric(outside.info.run_id, "val_accuracy", value, step=step)
        client.log_metric(outside.info.run_id, "val_loss", 1 - value, step=step)
    client.log_metric(outside.info.run_id, "test_accuracy", 0.87)
    client.set_terminated(outside.info.run_id, "FINISHED")
    # A copy of the store as built, for the tests that count runs: other tests write to the shared one.
    snapshot = folder / "mlruns" / "snapshot.db"
    with contextlib.closing(sqlite3.connect(folder / "mlruns" / "mlflow.db")) as source:
        with contextlib.closing(sqlite3.connect(snapshot)) as copy:
            source.backup(copy)
    return {
        "snapshot": f"sqlite:///{snapshot}",
        "folder": str(folder),
        "uri": uri,
        "experiment_id": exp_id,
        "parent_id": parent_id,
        "failed_id": failed.info.run_id,
        "outside_id": outside.info.run_id,
        "output": result.stdout,
    }
