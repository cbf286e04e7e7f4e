"""`mlflow ui` over a store: start it, time what the experiment page asks for, stop it."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(request: urllib.request.Request) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
    return time.perf_counter() - started


def time_experiment_page(uri: str, experiment_id: str, cwd: Path, repeats: int = 3) -> dict[str, float]:
    """Median seconds for the page's HTML and for the runs search its table sends (first 100 runs)."""
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    # Its own process group: `mlflow ui` starts helper processes that must go with it.
    server = subprocess.Popen(
        [
            str(mlflow_bin),
            "ui",
            "--backend-store-uri",
            uri,
            "--default-artifact-root",
            str(cwd / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > 120:
                    raise RuntimeError("mlflow ui did not start") from None
                time.sleep(0.2)
        body = json.dumps(
            {
                "experiment_ids": [experiment_id],
                "max_results": 100,
                "order_by": ["attributes.start_time DESC"],
                "run_view_type": "ACTIVE_ONLY",
            }
        ).encode()
        search = urllib.request.Request(
            f"{base}/ajax-api/2.0/mlflow/runs/search",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        page = urllib.request.Request(f"{base}/#/experiments/{experiment_id}/runs")
        return {
            "startup_s": time.perf_counter() - started,
            "page_s": statistics.median(_timed(page) for _ in range(repeats)),
            "search_s": statistics.median(_timed(search) for _ in range(repeats)),
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
