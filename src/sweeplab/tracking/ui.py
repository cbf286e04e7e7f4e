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
    """A port free now; another process may take it before ours binds it: see serves_on."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _listening_sockets(port: int) -> set[str] | None:
    """The inodes of the TCP sockets listening on `port` (Linux's /proc/net/tcp*); None where unreadable."""
    found, read = set(), False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        read = True
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found if read else None


def serves_on(process: subprocess.Popen, port: int) -> bool:
    """Whether the socket listening on `port` belongs to `process` or a process of its group (a server
    started with start_new_session): not another server that took a port free_port gave out twice. True
    where the system does not tell (no /proc)."""
    sockets = _listening_sockets(port)
    if sockets is None:
        return True
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) != process.pid:
                continue
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except (OSError, IndexError, ValueError):
            continue
        if {f"socket:[{inode}]" for inode in sockets} & links:
            return True
    return False


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
    once /health answers from it, not from another server on that port (it takes several seconds). With no
    `port`, a free one; if another process takes it first, once more on another.

    One worker process by default (MLflow starts 4, each importing MLflow: seconds of CPU on a small machine);
    a UI or server for one user or one test does not need more.
    """
    for attempt in range(3):
        chosen = port or free_port()
        url = f"http://{HOST}:{chosen}"
        command = [sys.executable, "-m", "mlflow", kind, "--backend-store-uri", store_uri, "--host", HOST,
                   "--port", str(chosen), "--workers", str(workers), *extra_args]  # fmt: skip
        with log.open("w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        server = UiServer(process=process, url=url, log=log)
        deadline = time.monotonic() + timeout
        taken = False
        while time.monotonic() < deadline and process.poll() is None and not taken:
            if _answers(url) and serves_on(process, chosen):
                return server
            # uvicorn says so and ends, while `mlflow server` itself may stay up: the port is another's.
            taken = "address already in use" in log.read_text(errors="replace")
            time.sleep(0.5)
        server.stop()
        if taken and port is None and attempt < 2:
            continue  # another process took the port between free_port and our bind
        if taken:
            raise RuntimeError(f"mlflow {kind} could not bind {url}: another process holds it; see {log}")
        if process.returncode is not None and process.returncode >= 0:
            raise RuntimeError(f"mlflow {kind} exited with {process.returncode}: {log.read_text()[-2000:]}")
        break
    raise RuntimeError(f"mlflow {kind} did not answer on {url} within {timeout:.0f} s; see {log}")


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
