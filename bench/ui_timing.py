"""`mlflow ui` over a store: start it, time what the experiment page asks for, stop it."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from pathlib import Path

from sweeplab.tracking.ui import running_ui


def _timed(request: urllib.request.Request) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
    return time.perf_counter() - started


def time_experiment_page(uri: str, experiment_id: str, cwd: Path, repeats: int = 3) -> dict[str, float]:
    """Median seconds for the page's HTML and for the runs search its table sends (first 100 runs)."""
    started = time.perf_counter()
    extra = ("--default-artifact-root", str(cwd / "artifacts"))
    with running_ui(uri, cwd / "mlflow-ui.log", timeout=120, extra_args=extra) as server:
        startup = time.perf_counter() - started
        body = json.dumps(
            {
                "experiment_ids": [experiment_id],
                "max_results": 100,
                "order_by": ["attributes.start_time DESC"],
                "run_view_type": "ACTIVE_ONLY",
            }
        ).encode()
        search = urllib.request.Request(
            f"{server.url}/ajax-api/2.0/mlflow/runs/search",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        page = urllib.request.Request(f"{server.url}/#/experiments/{experiment_id}/runs")
        return {
            "startup_s": startup,
            "page_s": statistics.median(_timed(page) for _ in range(repeats)),
            "search_s": statistics.median(_timed(search) for _ in range(repeats)),
        }
