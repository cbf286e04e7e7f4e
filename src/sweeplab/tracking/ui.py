"""The MLflow UI: links into it (the store's own UI), and the UI (or a server) as a managed process on 127.0.0.1.

`mlflow ui` spawns worker processes, so it runs in its own process group and the whole group is stopped.
`make ui` is the everyday way in; this module is for tests and scripts that need a UI for a while.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class UiServer:
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the process group, SIGKILL if it has not ended within `timeout`."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_ui(
    store_uri: str, log: Path, port: int | None = None, timeout: float = 90, kind: str = "ui",
    extra_args: tuple[str, ...] = (), workers: int = 1,
) -> UiServer:  # fmt: skip
    """Start `mlflow ui` (or `mlflow server`, kind="server") on the store, bound to 127.0.0.1, and return
    once /health answers (it takes several seconds).

    One worker process by default (MLflow starts 4, each importing MLflow: seconds of CPU on a small machine);
    a UI or server for one user or one test does not need more.
    """
    port = port or free_port()
    url = f"http://{HOST}:{port}"
    command = [sys.executable, "-m", "mlflow", kind, "--backend-store-uri", store_uri, "--host", HOST,
               "--port", str(port), "--workers", str(workers), *extra_args]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = UiServer(process=process, url=url, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow {kind} exited with {process.returncode}: {log.read_text()[-2000:]}")
        if _answers(url):
            return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"mlflow ui did not answer on {url} within {timeout:.0f} s; see {log}")


@contextlib.contextmanager
def running_ui(store_uri: str, log: Path, port: int | None = None, **options: Any) -> Iterator[UiServer]:
    """start_ui for the duration of a `with` block (options: kind="server", extra_args=(...), workers=N)."""
    server = start_ui(store_uri, log, port, **options)
    try:
        yield server
    finally:
        server.stop()


LOCAL_UI = f"http://{HOST}:5000"  # `make ui`'s address


def ui_url(experiment_id: str, run_id: str | None = None, base: str = LOCAL_UI) -> str:
    """The runs table of an experiment (MLflow 3 opens experiments on a GenAI overview otherwise)."""
    return f"{base}/#/experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "")


def ui_base(tracking_uri: str) -> tuple[str, str]:
    """(address, hint) of the UI that shows a store's runs: a tracking server is its own UI; any other store
    is read by a local `mlflow ui` (`make ui` for the project's mlruns/)."""
    parts = urllib.parse.urlsplit(tracking_uri)
    if parts.scheme in ("http", "https"):
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port}" if parts.port else ""  # user and password left out
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), ""
    from sweeplab.tracking.store import STORE_DIR

    if tracking_uri == f"sqlite:///{(Path.cwd() / STORE_DIR / 'mlflow.db').resolve()}":  # the default store
        return LOCAL_UI, "make ui"
    return LOCAL_UI, f"mlflow ui --backend-store-uri {tracking_uri}"


def run_link(experiment_id: str, run_id: str | None = None, tracking_uri: str | None = None) -> str:
    """The one link printed for a run or study: its page in the UI of the store it went to, and how to open
    that UI when it is a local one, e.g. `http://127.0.0.1:5000/#/experiments/1/runs/<id> (make ui)`."""
    if tracking_uri is None:
        import mlflow

        tracking_uri = mlflow.get_tracking_uri()
    base, hint = ui_base(tracking_uri)
    return ui_url(experiment_id, run_id, base) + (f" ({hint})" if hint else "")
