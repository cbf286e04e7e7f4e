"""`python sweep.py`: Hydra composes the config, the library does the work; errors end as one line.

Nothing here imports TensorFlow at module level, so `--help`, `--cfg job` and refusing a bad value
answer at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import hydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from sweeplab import compat
from sweeplab.backend import quiet_start, select_backend
from sweeplab.cli import error_line, exit_quickly, fail, stopped
from sweeplab.cli.faults import close_after, drop_hydra_job_errors, run_full_disk_line
from sweeplab.config import CONF_DIR, register_configs
from sweeplab.errors import SweeplabError, SweepRefused
from sweeplab.objective import objective_of
from sweeplab.perf.process import pause_gc, steady_malloc
from sweeplab.signals import handle_signals
from sweeplab.tracking.context import StudyContext
from sweeplab.tracking.store import check_store
from sweeplab.tuning.space import validate_tuner
from sweeplab.validate import validate

register_configs()
_in_job = False  # set once Hydra hands over to the job: its errors keep Hydra's own report


def composition_error_line(error: BaseException) -> str:
    """Hydra's composition error on one line: the message and cause, without the search path and keys."""
    parts: list[str] = []
    for part in (error, error.__cause__):
        for line in str(part or "").splitlines():
            line = line.strip()
            if line.startswith("Config search path"):
                break
            if not line or line.startswith(("full_key:", "object_type=", "reference_type=")) or line in parts:
                continue
            if parts and parts[-1].endswith(":"):  # "Available options in 'optimizer':" then one per line
                parts[-1] += f" {line}"
            elif parts and parts[-1].startswith("Available options") and " " not in line:
                parts[-1] += f" {line}"
            else:
                parts.append(line)
    return "; ".join(part.rstrip(".") for part in parts)


def _report(func: Callable[[], Any], original: Callable[..., Any]) -> Any:
    """Hydra's error report, with bad overrides and refused sweeps in one line (exit 2) and a study's failed
    jobs, already reported job by job and in its summary, ending the process with status 1 and no traceback."""
    from sweeplab.sweep.callback import launched_here

    def composing() -> Any:
        try:
            return func()
        except SweepRefused as refused:  # raised by the sweep callback, before any job
            fail(refused.error, status=2)
        except CompactHydraException as error:
            if _in_job or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(composition_error_line(error))
        except Exception as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            launched = launched_here()
            if launched.any_open():  # a job's failure (reported, in the summary) or the sweeper's own (one line)
                show_errors(close_after(launched, error))  # a full disk under the store: one line
                sys.exit(1)
            if isinstance(error, SweeplabError):
                fail(error)
            full = run_full_disk_line(error)  # a single run or search stopped by a full disk under its store
            if full is not None:
                fail(full, status=1)
            raise

    return original(composing)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    """Train one configured run (or search, or a study's job) and return its objective for sweepers."""
    global _in_job
    _in_job = True
    quiet_start()  # again: a launcher's worker process starts here
    handle_signals()
    from sweeplab.sweep.job import in_multirun

    study = StudyContext.from_environ()  # the study this job was handed, if any: read once, passed down
    if in_multirun() and cfg.tuner is None:
        return _job(cfg, study)  # resumable; a failure is raised so that Hydra records it and goes on
    try:
        validate(cfg)  # before anything loads TensorFlow, so that bad input is refused at once
        if cfg.tuner is not None:
            validate_tuner(cfg)  # the search's settings and space, as early
        check_store(cfg.tracking)  # a server that does not answer, or refuses this login: also refused at once
        # Before the first Keras import (train imports it): KERAS_BACKEND is read once per process.
        select_backend(cfg.backend, cfg.training.threads)
        if cfg.tuner is not None:  # tuner=random|hyperband|bayesian: a Keras Tuner search instead
            from sweeplab.tuning.search import search

            found = search(cfg, study)
            return found.best_score if found is not None else float("nan")
        from sweeplab.seeds.runs import run_config

        result = run_config(cfg, study)
    except SweeplabError as err:
        fail(err)
    return result.metrics.get(objective_of(cfg).metric, float("nan"))


def _job(cfg: DictConfig, study: StudyContext) -> float:
    """One job of `study`; its error, if one of ours, in one line here, for every job it hits."""
    from hydra.core.hydra_config import HydraConfig

    from sweeplab.sweep.job import job_tag, run_job

    try:
        return run_job(cfg, study)
    except SweeplabError as err:
        error_line(f"{job_tag(int(HydraConfig.get().job.num), study)}: {err}")
        raise


def show_errors(lines: list[str]) -> None:
    for line in lines:
        error_line(line)


def run(app: Callable[[], Any] | None = None) -> NoReturn:
    """`python sweep.py`: main() (or another Hydra app, `app`), then the process ends without the
    interpreter's teardown. The garbage collector pauses until the job has imported what it needs; the
    libraries start quietly in this process and in the processes it starts (sweeplab.backend.quiet_start), with
    malloc kept from growing through training (sweeplab.perf.process.steady_malloc). The studies launched
    meanwhile are this function's: closed (if not yet) and their errors shown here."""
    from sweeplab.sweep.callback import launching

    steady_malloc()
    quiet_start()
    pause_gc()
    drop_hydra_job_errors()  # sweeplab reports a failed job; Hydra's own line about it is left out
    compat.wrap_hydra_error_report(_report)  # Hydra's error report in sweeplab's words (bad overrides: one line)
    with launching() as launched:
        try:
            (app or main)()
            code: int | str | None = 1 if launched.last_outcome() not in (None, "FINISHED") else 0
        except SystemExit as done:
            code = done.code
        except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: the runs are closed by now
            code = stopped(interrupt)
        show_errors(launched.close())  # a study still open (stopped, or a failed job on another path) closes now
    exit_quickly(code)
