"""One job of a study: check its config, skip it when that config already FINISHED, train it, report how it went.

Every job writes sweeplab_job.json into its Hydra output folder (whatever process or machine runs it); the
launching process reads those reports to build the study's summary (sweep.summary). Its return value is
what the sweeper optimises: the job's objective (objective.metric, val_accuracy by default; with seeds=N,
the mean over its seeds, so a sweeper tunes a config, not a lucky seed). A failure is raised to Hydra,
which records it in the job's return; the sweeper's own policy decides what comes next (Hydra's basic
sweeper runs every job, Optuna's stops past hydra.sweeper.max_failure_rate).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweeplab import compat, console
from sweeplab.cli import error_line
from sweeplab.config import config_hash
from sweeplab.errors import SweeplabError, one_line
from sweeplab.objective import objective_of
from sweeplab.perf import compiled_cache
from sweeplab.perf.prewarm import worker_was_warmed
from sweeplab.signals import raise_if_interrupted
from sweeplab.sweep.launchers import job_threads
from sweeplab.sweep.plan import is_basic_sweeper, label
from sweeplab.tracking import store, tags
from sweeplab.tracking.runs import finished_run, parent_run_id
from sweeplab.validate import validate

REPORT_FILE = "sweeplab_job.json"


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def write_report(folder: Path, report: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")


def study_size() -> int | None:
    """How many jobs the study runs, when known (handed to its jobs by the sweep callback)."""
    total = os.environ.get(tags.JOB_TOTAL_ENV)
    return int(total) if total else None


def job_tag(num: int) -> str:
    """'job i/N' where the study's size is known, else 'job i'."""
    total = study_size()
    return f"job {num + 1}/{total}" if total else f"job {num + 1}"


def study_clock() -> console.Clock:
    """Time since the study started (handed to its jobs by the sweep callback), or since now."""
    started = os.environ.get(tags.STARTED_ENV)
    return console.Clock(float(started) if started else None)


def ended(tag: str, num: int, status: str, seconds: float, result: str) -> None:
    """The job's last line: how it ended, in how long, and the time into the sweep and left."""
    clock, total = study_clock(), study_size()
    left = console.time_left(clock.elapsed(), num + 1, total - num - 1 if total else None)
    print(console.ended_line(tag, status, seconds, result, clock.elapsed(), left, console.SWEEP), flush=True)


def run_job(cfg: DictConfig) -> float:
    """Train one job of a study (or skip it) and return its objective; a failure is raised to Hydra."""
    from hydra.core.hydra_config import HydraConfig

    from sweeplab.backend import select_backend

    hydra_cfg = HydraConfig.get()
    num = int(hydra_cfg.job.num)
    axes = [a for a in os.environ.get(tags.AXES_ENV, "").split(",") if a]
    overrides = list(hydra_cfg.overrides.task)
    tag = job_tag(num)
    print(console.started_line(tag, label(overrides, axes), study_clock().elapsed(), console.SWEEP), flush=True)
    started = time.perf_counter()
    grid = is_basic_sweeper(hydra_cfg.sweeper)

    report: dict[str, Any] = {
        "num": num,
        "overrides": overrides,
        "config_hash": None,
        "parent_run_id": parent_run_id(),
        "skipped": False,
        "run_id": None,
        "status": None,  # how the job ended when it ended before its run could say so
        "error": None,
        "warm_worker": worker_was_warmed(),  # a joblib worker warmed up while the sweep started
        "reused_compiled": False,  # took the compiled model of the previous job in this worker
    }
    try:
        raise_if_interrupted()  # a signal whose exception was swallowed between jobs still stops the sweep
        if not grid:  # the grid's jobs were all checked before the first started
            validate(cfg)
        objective = objective_of(cfg)
        identity = report["config_hash"] = config_hash(cfg)
        previous = None if cfg.force else finished_run(store.configure(cfg.tracking), identity)
        if previous is not None:
            report.update(skipped=True, run_id=previous.info.run_id)
            print(
                f"sweeplab: {tag} skipped: this config already FINISHED as run {previous.info.run_id} "
                "(force=true reruns it)",
                flush=True,
            )
            return float(previous.data.metrics.get(objective.metric, math.nan))
        if cfg.training.threads is None:
            cfg.training.threads = job_threads(study_size() or 0)
        raise_if_interrupted()
        # Before the first Keras import (train imports it): KERAS_BACKEND is read once per process.
        select_backend(cfg.backend, cfg.training.threads)
        from sweeplab.seeds.runs import run_config

        # Jobs running at once in one terminal write whole lines, never bars that interleave.
        with console.labelled(tag, lines_only=str(hydra_cfg.launcher.get("_target_")) != compat.BASIC_LAUNCHER):
            result = run_config(cfg)
        report.update(run_id=result.run_id, reused_compiled=compiled_cache.CACHE.reused)
        value = result.metrics.get(objective.metric, math.nan)
        ended(tag, num, "FINISHED", time.perf_counter() - started, f"{objective.metric}={value:.4f}")
        return value
    except BaseException as exc:
        # Ctrl-C or SIGTERM (signals.Terminated) kills the job; anything else fails it.
        killed = isinstance(exc, KeyboardInterrupt)
        report.update(status="KILLED" if killed else "FAILED", error=one_line(exc))
        ended(tag, num, report["status"], time.perf_counter() - started, "")
        if isinstance(exc, SweeplabError):  # one line, here, for every job it hits
            error_line(f"{tag}: {exc}")
        raise
    finally:
        write_report(Path(hydra_cfg.runtime.output_dir), report)
