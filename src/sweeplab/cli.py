"""`python sweep.py`: Hydra composes the config, the library does the work.

Nothing here imports TensorFlow at module level, so `--help`, `--cfg job` and refusing a bad value
answer at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import hydra
import hydra._internal.utils as hydra_utils
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from sweeplab.backend import select_backend
from sweeplab.config import ConfigError, register_configs, validate
from sweeplab.data import DataError
from sweeplab.errors import ArtifactWriteError, TrackingError, TrackingLost
from sweeplab.runtime import exit_quickly, handle_sigterm, pause_gc, quiet_tensorflow

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

register_configs()
_in_job = False  # set once Hydra hands over to the job: its errors keep Hydra's own report


def one_line(error: BaseException) -> str:
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


def _run_and_report(func: Any, _original: Any = hydra_utils.run_and_report) -> Any:
    """Hydra's run_and_report, with bad overrides and unknown options refused in one line (exit 2)."""

    def composing() -> Any:
        try:
            return func()
        except CompactHydraException as error:
            if _in_job or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            fail(one_line(error))
        except (TrackingError, ArtifactWriteError) as error:  # a multirun's job: one line, not a traceback
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            if not getattr(error, "reported", False):
                print(f"sweeplab: error: {error}", file=sys.stderr, flush=True)
            sys.exit(1)

    return _original(composing)


# Hydra prints composition errors over several lines (search path, keys); users get one line naming the
# value. hydra.main looks run_and_report up in this module at call time, so replacing it here is enough.
hydra_utils.run_and_report = _run_and_report


def fail(message: str, status: int = 2) -> None:
    """One line on stderr, exit status 2: how bad input is refused (1: a run that started and failed)."""
    print(f"sweeplab: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    """Train one configured run and return its final val_accuracy (the value sweepers optimise)."""
    global _in_job
    _in_job = True
    quiet_tensorflow()
    handle_sigterm()
    from sweeplab.sweep_job import in_multirun, run_job

    if in_multirun() and cfg.tuner is None:
        return run_job(cfg)  # resumable; a failure is raised so that Hydra records it and goes on
    try:
        validate(cfg)  # before anything loads TensorFlow, so that bad input is refused at once
        # Before the first Keras import (train imports it): KERAS_BACKEND is read once per process.
        select_backend(cfg.backend, cfg.training.threads)
        if cfg.tuner is not None:  # tuner=random|hyperband|bayesian: a Keras Tuner search instead
            from sweeplab.tuning import search

            found = search(cfg)
            return found.best_score if found is not None else float("nan")
        from sweeplab.train import run

        result = run(cfg)
    except (TrackingLost, ArtifactWriteError) as err:
        fail(str(err), status=1)
    except (ConfigError, DataError, TrackingError) as err:
        fail(str(err))
    return result.metrics["val_accuracy"]


def run(app: Callable[[], Any] | None = None) -> NoReturn:
    """`python sweep.py`: main() (or another Hydra app, `app`), then the process ends without the
    interpreter's teardown (2 s with TensorFlow loaded). An exception other than SystemExit (Hydra turns a
    job's errors into one) ends it the usual way, with its traceback. The garbage collector pauses until the
    job has imported what it needs (sweeplab.runtime.pause_gc)."""
    pause_gc()
    try:
        (app or main)()
    except SystemExit as done:
        exit_quickly(done.code)
    exit_quickly(0)
