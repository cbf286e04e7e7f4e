"""A failed multirun in sweeplab's own words: Hydra's line about a failed job left out (sweeplab reports each
job), and a full disk under the store said in one line with what stays RUNNING."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO

from sweeplab.tracking import full_disk as disk

HYDRA_JOB_ERROR = "Error executing job with overrides:"  # Hydra's JobReturn.return_value writes it to sys.stderr


class WithoutHydraJobError:
    """A stderr that drops Hydra's `Error executing job with overrides: [...]`: a study's failed jobs are sweeplab's
    to report (job by job, and in the summary), a single run's error is one line or, if not one of ours, its
    traceback. Everything else goes through."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if text.startswith(HYDRA_JOB_ERROR):
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def drop_hydra_job_errors() -> None:
    """Filter this process's stderr through WithoutHydraJobError (not under HYDRA_FULL_ERROR=1, for debugging).

    Hydra writes the line straight to sys.stderr when its sweeper reads a failed job's result, with no
    setting, callback or logger to turn it off.
    """
    if os.environ.get("HYDRA_FULL_ERROR") != "1" and not isinstance(sys.stderr, WithoutHydraJobError):
        sys.stderr = WithoutHydraJobError(sys.stderr)  # type: ignore[assignment]


def still_running(studies: list[Any]) -> list[str]:
    """The runs of these studies (their jobs' runs and the parents) the store still has RUNNING."""
    from sweeplab.tracking.studies import RUNNING

    found: list[str] = []
    for study in studies:
        with contextlib.suppress(Exception):  # a store that cannot even be read: nothing to name
            found += [f"run {run.info.run_id}" for run in study.children(f"attributes.status = '{RUNNING}'")]
            if study.client.get_run(study.run_id).info.status == RUNNING:
                found.append(f"the sweep's parent run {study.run_id}")
    return found


def full_disk_line(error: BaseException, studies: list[Any]) -> str | None:
    """The one line for a multirun that `error` (a job's or the study's close) stopped on a full disk, or None."""
    if not studies or not disk.full_disk(error):
        return None
    return disk.full_disk_line(studies[0].client.tracking_uri, error, still_running(studies))


def close_after(launched: Any, error: BaseException) -> list[str]:
    """Close the studies `launched` (a sweep.callback.Launched) after `error` stopped the multirun; the lines to
    show: the closing's own, and on a full disk (the jobs' error, or the close's own writes) one line that says
    so instead of MLflow's traceback."""
    try:
        lines = launched.close(error)
    except Exception as closing:
        if not disk.full_disk(closing):
            raise
        lines, error = [], error if disk.full_disk(error) else closing
    line = full_disk_line(error, [c.study for c in launched.callbacks if c.study is not None])
    return [*lines, line] if line is not None else lines


def run_full_disk_line(error: BaseException) -> str | None:
    """The one line for a single run (or search) that `error` stopped on a full disk under its store, or None;
    it names the run if the store still has it RUNNING."""
    if not disk.full_disk(error):
        return None
    import mlflow

    running: list[str] = []
    with contextlib.suppress(Exception):  # a store that cannot even be read: nothing to name
        run = mlflow.last_active_run()
        if run is not None and run.info.status == "RUNNING":
            running.append(f"run {run.info.run_id}")
    return disk.full_disk_line(mlflow.get_tracking_uri(), error, running, resumes=False)
