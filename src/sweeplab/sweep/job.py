"""One job of a study: check its config, skip it when that config already FINISHED, train it, report how it went.

Every job writes its report (sweeplab.sweep.report) into its Hydra output folder, whatever process or machine
runs it; the launching process reads those reports to build the study's summary (sweep.summary). Its return value is
what the sweeper optimises: the job's objective (objective.metric, val_accuracy by default; with seeds=N,
the mean over its seeds, so a sweeper tunes a config, not a lucky seed). A failure is raised to Hydra,
which records it in the job's return; the sweeper's own policy decides what comes next (Hydra's basic
sweeper runs every job, Optuna's stops past hydra.sweeper.max_failure_rate).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from sweeplab import compat, console
from sweeplab.config import config_hash
from sweeplab.objective import objective_of
from sweeplab.perf import compiled_cache
from sweeplab.perf.prewarm import worker_was_warmed
from sweeplab.signals import raise_if_interrupted
from sweeplab.sweep.launchers import job_threads
from sweeplab.sweep.plan import is_basic_sweeper, label
from sweeplab.sweep.report import JobReport
from sweeplab.tracking import store
from sweeplab.tracking.context import StudyContext
from sweeplab.tracking.runs import finished_run
from sweeplab.validate import validate

if TYPE_CHECKING:
    from sweeplab.train import RunResult


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_tag(num: int, study: StudyContext) -> str:
    """'job i/N' where the study's size is known, else 'job i'."""
    return f"job {num + 1}/{study.size}" if study.size else f"job {num + 1}"


def study_clock(study: StudyContext) -> console.Clock:
    """Time since the study started (handed to its jobs by the sweep callback), or since now."""
    return console.Clock(study.started)


def ended(tag: str, num: int, status: str, seconds: float, result: str, study: StudyContext) -> None:
    """The job's last line: how it ended, in how long, and the time into the sweep and left."""
    clock, total = study_clock(study), study.size
    left = console.time_left(clock.elapsed(), num + 1, total - num - 1 if total else None)
    print(console.ended_line(tag, status, seconds, result, clock.elapsed(), left, console.SWEEP), flush=True)


def run_job(cfg: DictConfig, study: StudyContext) -> float:
    """Train one job of `study` (or skip it) and return its objective; a failure is raised to Hydra."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    report = JobReport(int(hydra_cfg.job.num), overrides, study.parent_run_id, warm_worker=worker_was_warmed())
    tag = job_tag(report.num, study)
    print(
        console.started_line(tag, label(overrides, list(study.axes)), study_clock(study).elapsed(), console.SWEEP),
        flush=True,
    )
    started = time.perf_counter()
    try:
        raise_if_interrupted()  # a signal whose exception was swallowed between jobs still stops the sweep
        if not is_basic_sweeper(hydra_cfg.sweeper):  # the grid's jobs were all checked before the first started
            validate(cfg)
        metric = objective_of(cfg).metric
        report.config_hash = config_hash(cfg)
        previous = None if cfg.force else finished_run(store.configure(cfg.tracking), report.config_hash)
        if previous is not None:
            report.skipped, report.run_id = True, previous.info.run_id
            print(
                f"sweeplab: {tag} skipped: this config already FINISHED as run {report.run_id} (force=true reruns it)",
                flush=True,
            )
            return float(previous.data.metrics.get(metric, math.nan))
        value = train_job(cfg, hydra_cfg, study, report, tag).metrics.get(metric, math.nan)
        ended(tag, report.num, "FINISHED", time.perf_counter() - started, f"{metric}={value:.4f}", study)
        return value
    except BaseException as exc:
        report.failed(exc)
        ended(tag, report.num, str(report.status), time.perf_counter() - started, "", study)
        raise
    finally:
        report.write(Path(hydra_cfg.runtime.output_dir))


def train_job(cfg: DictConfig, hydra_cfg: Any, study: StudyContext, report: JobReport, tag: str) -> RunResult:
    """Train the job's config in this process, its threads shared with the jobs running beside it."""
    from sweeplab.backend import select_backend
    from sweeplab.seeds.runs import run_config

    if cfg.training.threads is None:
        cfg.training.threads = job_threads(study.size or 0)
    raise_if_interrupted()
    # Before the first Keras import (train imports it): KERAS_BACKEND is read once per process.
    select_backend(cfg.backend, cfg.training.threads)
    # Jobs running at once in one terminal write whole lines, never bars that interleave.
    with console.labelled(tag, lines_only=str(hydra_cfg.launcher.get("_target_")) != compat.BASIC_LAUNCHER):
        result = run_config(cfg, study)
    report.run_id, report.reused_compiled = result.run_id, compiled_cache.CACHE.reused
    return result
