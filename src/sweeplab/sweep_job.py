"""One job of a multirun: skip it when its config already FINISHED, size its threads, report how it went.

Every job writes sweeplab_job.json into its Hydra output folder (whatever process or machine runs it); the
launching process reads those reports to build the sweep's summary (sweeplab.sweep_summary).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from sweeplab import tracking
from sweeplab.config import config_hash
from sweeplab.errors import ArtifactWriteError, TrackingError
from sweeplab.prewarm import worker_was_warmed
from sweeplab.runtime import raise_if_terminated
from sweeplab.sweeps import AXES_ENV, SIZE_ENV

if TYPE_CHECKING:
    from mlflow.entities import Run

REPORT_FILE = "sweeplab_job.json"


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def finished_run(cfg: DictConfig, identity: str) -> Run | None:
    """The newest FINISHED run of the experiment with this config hash, if any."""
    from mlflow.tracking import MlflowClient

    experiment_id = tracking.configure(cfg.tracking)
    runs = MlflowClient().search_runs(
        [experiment_id],
        f"tags.`{tracking.TAG_HASH}` = '{identity}' and attributes.status = 'FINISHED'",
        order_by=["attributes.end_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def parallel_jobs(launcher: DictConfig, sweep_size: int) -> int:
    """How many jobs of this sweep the launcher runs at once on one machine."""
    cpus = os.cpu_count() or 1
    target = str(launcher.get("_target_", ""))
    if "n_jobs" in launcher:  # joblib: -1 is all cores, -2 all but one, ...
        n_jobs = int(launcher.n_jobs)
        running = cpus + 1 + n_jobs if n_jobs < 0 else n_jobs
    elif target.endswith("LocalLauncher"):  # submitit_local starts every job at once
        running = sweep_size
    else:
        running = 1
    return max(1, min(running, sweep_size or running))


def job_threads(sweep_size: int, launcher: DictConfig | None = None) -> int | None:
    """TensorFlow threads for a job when training.threads is null: cores shared by the jobs running at once.

    None (TensorFlow's default: every core) for one job at a time. `launcher`: hydra.launcher (by default,
    this job's).
    """
    if launcher is None:
        from hydra.core.hydra_config import HydraConfig

        launcher = HydraConfig.get().launcher
    if launcher.get("cpus_per_task"):  # submitit: what the scheduler gives each job
        return int(launcher.cpus_per_task)
    running = parallel_jobs(launcher, sweep_size)
    return None if running == 1 else max(1, (os.cpu_count() or 1) // running)


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")


def write_report(folder: Path, report: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")


def run_job(cfg: DictConfig) -> float:
    """Train one job of a sweep (or skip it) and return its val_accuracy; a failure is raised to Hydra."""
    from hydra.core.hydra_config import HydraConfig

    from sweeplab.backend import select_backend

    hydra_cfg = HydraConfig.get()
    num = int(hydra_cfg.job.num)
    size = int(os.environ.get(SIZE_ENV) or 0)
    axes = [a for a in os.environ.get(AXES_ENV, "").split(",") if a]
    overrides = list(hydra_cfg.overrides.task)
    label = " ".join(o for o in overrides if o.split("=", 1)[0] in axes) or " ".join(overrides)
    tag = f"job {num + 1}/{size or '?'}"
    print(f"sweeplab: {tag} ({label})", flush=True)

    identity = config_hash(cfg)
    report: dict[str, Any] = {
        "num": num,
        "overrides": overrides,
        "config_hash": identity,
        "parent_run_id": tracking.parent_run_id(),
        "skipped": False,
        "run_id": None,
        "status": None,  # how the job ended when it ended before its run could say so
        "error": None,
        "warm_worker": worker_was_warmed(),  # a joblib worker warmed up while the sweep started
        "reused_compiled": False,  # took the compiled model of the previous job in this worker
    }
    try:
        raise_if_terminated()  # a SIGTERM whose exception was swallowed between jobs still stops the sweep
        previous = None if cfg.force else finished_run(cfg, identity)
        if previous is not None:
            report.update(skipped=True, run_id=previous.info.run_id)
            print(
                f"sweeplab: {tag} skipped: this config already FINISHED as run {previous.info.run_id} "
                "(force=true reruns it)",
                flush=True,
            )
            return float(previous.data.metrics.get("val_accuracy", math.nan))
        if cfg.training.threads is None:
            cfg.training.threads = job_threads(size)
        raise_if_terminated()
        # Before the first Keras import (train imports it): KERAS_BACKEND is read once per process.
        select_backend(cfg.backend, cfg.training.threads)
        from sweeplab.train import run

        result = run(cfg)
        report.update(run_id=result.run_id, reused_compiled=result.reused_compiled)
        return result.metrics["val_accuracy"]
    except BaseException as exc:
        # Ctrl-C or SIGTERM (runtime.Terminated) kills the job; anything else fails it.
        report.update(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", error=_reason(exc))
        if isinstance(exc, TrackingError | ArtifactWriteError):  # one line, here, for every job it hits
            print(f"sweeplab: error: {tag}: {exc}", file=sys.stderr, flush=True)
            exc.reported = True  # type: ignore[attr-defined] # cli exits 1 without repeating it
        raise
    finally:
        write_report(Path(hydra_cfg.runtime.output_dir), report)
