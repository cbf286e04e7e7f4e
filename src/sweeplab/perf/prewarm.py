"""Joblib workers started and warmed (TensorFlow, MLflow, data) while the launching process opens the study.

One warm-up task per worker goes through joblib with the launcher's own settings; loky's reusable executor
then hands Hydra's jobs to those same, warm processes. A warm-up never fails: whatever it cannot do, the
job does (and reports) itself. Nothing here imports TensorFlow or MLflow in the launching process.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeplab import compat

JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"

_warmed = False  # in a worker: a warm-up task ran here


@dataclass(frozen=True)
class WarmUp:
    """What a job of the sweep loads first. A field is None where the sweep's jobs differ on it."""

    backend: str | None
    threads: int | None
    data: tuple[str, str | None] | None  # (data.name, data.path)
    store_uri: str | None = None

    @classmethod
    def common(cls, jobs: list[WarmUp]) -> WarmUp:
        """What every job shares: a backend or dataset that varies across the sweep is not preloaded."""

        def same(values: set) -> Any:
            return next(iter(values)) if len(values) == 1 else None

        backend = same({j.backend for j in jobs})
        threads = {j.threads for j in jobs}
        return cls(
            backend=backend if len(threads) == 1 else None,  # threads are fixed when the backend loads
            threads=same(threads),
            data=same({j.data for j in jobs}),
        )


def joblib_settings(launcher: DictConfig) -> dict[str, Any] | None:
    """The arguments Hydra's joblib launcher gives joblib.Parallel, or None for another launcher."""
    if str(launcher.get("_target_", "")) != JOBLIB_LAUNCHER:
        return None
    settings = OmegaConf.to_container(launcher, resolve=True)
    assert isinstance(settings, dict)
    settings.pop("_target_", None)
    return compat.joblib_launcher_settings(settings)


def start(launcher: DictConfig, workers: int, warm_up: WarmUp) -> threading.Thread | None:
    """Start the joblib launcher's workers now, each running `warm_up`; a no-op for other launchers.

    The Parallel call runs in a thread of its own (the caller goes on at once) and returns when every
    worker is warm, leaving the workers up for the launcher's own Parallel call.
    """
    settings = joblib_settings(launcher)
    if settings is None:
        return None
    from joblib import Parallel, delayed

    def submit() -> None:
        try:
            Parallel(**settings)(delayed(warm)(warm_up) for _ in range(workers))
        except Exception as err:  # noqa: BLE001 - the jobs start cold, nothing else changes
            print(f"sweeplab: the joblib workers could not be warmed up ({err}); jobs start cold", file=sys.stderr)

    thread = threading.Thread(target=submit, name="sweeplab-prewarm", daemon=True)
    thread.start()
    return thread


def warm(warm_up: WarmUp) -> bool:
    """In a worker: import (and load) what the first job needs; True when it all went through."""
    global _warmed
    _warmed = True
    from sweeplab.perf.process import pause_gc

    pause_gc()  # until the first job's fresh_start: the imports here are most of a worker's
    try:
        _warm(warm_up)
    except BaseException:  # noqa: BLE001 - the job runs into it again and reports it
        return False
    return True


def _warm(warm_up: WarmUp) -> None:
    if warm_up.backend is not None:
        from sweeplab.backend import configure_threads, quiet_start, select_backend

        quiet_start()
        select_backend(warm_up.backend, warm_up.threads)  # before Keras loads: the backend and its threads
        import keras  # noqa: F401 (TensorFlow or JAX)

        configure_threads(warm_up.threads)
        if warm_up.data is not None:
            from sweeplab.data import load_raw

            load_raw(*warm_up.data)
    import mlflow  # noqa: F401

    if warm_up.store_uri and not warm_up.store_uri.startswith(("http://", "https://")):
        compat.import_sql_store()  # SQLAlchemy, alembic
    import sweeplab.callbacks  # noqa: F401
    import sweeplab.plots  # noqa: F401 (matplotlib)
    import sweeplab.train  # noqa: F401 (pandas)


def worker_was_warmed() -> bool:
    """In a job: whether this process ran a warm-up task before it (the joblib launcher's workers)."""
    return _warmed


def stop_workers() -> None:
    """Stop the joblib launcher's worker processes (once every job has returned, or on a refusal).

    They hold nothing once their runs are ended and stored, but left alone they exit only when this process
    does, each tearing TensorFlow down (about 2 s) while this process waits for them.
    """
    compat.stop_joblib_workers()
