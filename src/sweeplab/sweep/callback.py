"""Hydra multiruns as MLflow studies, whatever the sweeper: the `hydra.callbacks` entry of conf/config.yaml.

In the process that launches the jobs, before any job: plan the multirun (the basic sweeper's grid is
expanded and every job checked; a bad value, or a launcher that cannot stop its jobs, refuses the sweep:
SweepRefused, which sweeplab.cli shows in one line, exit 2), start and warm the joblib launcher's workers,
open the study (its parent run, reopened for the same command) and hand it to the jobs through
hydra.job.env_set. At the end (normal, failed job, Ctrl-C or SIGTERM): the summary from what ran, and the
parent closed with the right status; what went wrong is kept as lines for sweeplab.cli to show. Nothing
here imports TensorFlow.
"""

from __future__ import annotations

import atexit
import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweeplab import compat
from sweeplab.backend import quiet_optuna
from sweeplab.errors import LauncherError, StudyError, SweeplabError, SweepRefused, one_line
from sweeplab.perf import prewarm
from sweeplab.perf.process import resume_gc
from sweeplab.signals import handle_signals
from sweeplab.sweep.data_check import check_data
from sweeplab.sweep.launchers import check_launcher, parallel_jobs
from sweeplab.sweep.plan import KIND_GRID, Plan, pass_to_jobs, plan
from sweeplab.tracking import store, studies
from sweeplab.tracking.context import NO_STUDY, StudyContext
from sweeplab.tracking.studies import KILLED, Study, StudySpec


class Launched:
    """The studies one entry point launched, in order. Hydra instantiates each SweepCallback itself (from
    hydra.callbacks), so a callback joins the Launched of the `launching` block around it, if any."""

    def __init__(self) -> None:
        self.callbacks: list[SweepCallback] = []

    def any_open(self) -> bool:
        """Whether a study's jobs were launched (their failures are reported job by job)."""
        return any(c.study is not None for c in self.callbacks)

    def last_outcome(self) -> str | None:
        """The status of the last study closed: FINISHED, FAILED or KILLED; None if none."""
        return next((c.outcome for c in reversed(self.callbacks) if c.outcome), None)

    def close(self, error: BaseException | None = None) -> list[str]:
        """Close every study (`error`: what stopped the multirun, if anything); the error lines to show."""
        lines: list[str] = []
        for callback in self.callbacks:
            callback.close(error)
            lines += callback.take_errors()
        return lines


_launched: ContextVar[Launched | None] = ContextVar("sweeplab_launched", default=None)


@contextlib.contextmanager
def launching() -> Iterator[Launched]:
    """The studies launched inside the block are collected in the Launched it yields (the caller owns them)."""
    launched = Launched()
    token = _launched.set(launched)
    try:
        yield launched
    finally:
        _launched.reset(token)


def launched_here() -> Launched:
    """The Launched of the enclosing `launching` block (an empty one outside any)."""
    return _launched.get() or Launched()


def open_parent(client: Any, the_plan: Plan) -> Study:
    """The study's parent run: the same command's earlier one reopened, or a new one with the plan as params."""
    size = f"{the_plan.total} jobs" if the_plan.total else f"jobs drawn by the {the_plan.sweeper} sweeper"
    axes = " ".join(f"{k}={v}" for k, v in the_plan.axes.items()) or "(one job)"
    params = {f"sweep.{key}": values for key, values in the_plan.axes.items()}
    params["sweep.name"] = the_plan.name
    if the_plan.total:
        params["sweep.jobs"] = the_plan.total
    if the_plan.kind != KIND_GRID:
        params["sweep.sweeper"] = the_plan.sweeper
    note = f"{size}: {axes}; jobs are its child runs."
    spec = StudySpec(the_plan.experiment, the_plan.key, the_plan.kind, the_plan.name, params, note=note)
    return studies.open_study(client, spec, within=NO_STUDY)  # a sweep's parent is a top-level run


class SweepCallback(Callback):
    """hydra.callbacks entry: plans the multirun, owns its study, writes its summary."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.study: Study | None = None
        self.reached_end = False
        self.closed = False
        self.outcome: str | None = None  # the parent's final status, once closed
        self.errors: list[str] = []  # what went wrong while closing, one line each, for sweeplab.cli to show
        launched_here().callbacks.append(self)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        handle_signals()  # SIGTERM ends the sweep like Ctrl-C: runs KILLED, summary written
        # Hydra turns a callback's Exception into a warning and goes on; a sweep without its checks or its
        # parent run must not start, so every failure here is raised as SweepRefused (not an Exception).
        try:
            check_launcher(config.hydra.launcher)
            the_plan = plan(config)
            uri = store.check_store(config.tracking)  # a server that does not answer: refused here
            check_data(config)  # once, before any job is launched or submitted
        except SweeplabError as err:
            raise SweepRefused(err) from err
        if the_plan.kind != KIND_GRID:
            quiet_optuna()  # before the sweeper's first study.ask
        self.start_workers(config, the_plan, uri)  # joblib: they import TensorFlow and MLflow meanwhile
        study = self.open(config, the_plan, uri)
        self.plan, self.study = the_plan, study
        if str(config.hydra.launcher.get("_target_", "")) != compat.BASIC_LAUNCHER:
            resume_gc()  # this process's imports are done; with the basic launcher, its first job ends the pause
        # time.time(): for each job's time into the sweep and time left
        pass_to_jobs(config, StudyContext(study.run_id, the_plan.total, tuple(the_plan.axes), time.time()))
        atexit.register(self.close)  # also on a failed job (Hydra exits 1 before on_multirun_end) or Ctrl-C
        size = f"of {the_plan.total} jobs" if the_plan.total else f"by the {the_plan.sweeper} sweeper"
        print(
            f"sweeplab: sweep '{the_plan.name}' {size} -> parent run {study.run_id} "
            f"in experiment '{the_plan.experiment}'",  # its link comes with the summary
            flush=True,
        )

    @staticmethod
    def open(config: DictConfig, the_plan: Plan, uri: str) -> Study:
        """The study's parent run; a store that refuses it stops the workers and refuses the sweep."""
        from mlflow.tracking import MlflowClient

        try:
            store.connect(config.tracking)
            with store.sqlite_init_lock(uri):  # a fresh store is created here (warm workers, sweeps may race)
                return open_parent(MlflowClient(uri), the_plan)
        except SweeplabError as err:
            prewarm.stop_workers()
            raise SweepRefused(err) from err
        except Exception as err:  # noqa: BLE001 (the store: unreachable server, locked or broken database)
            prewarm.stop_workers()
            message = f"the sweep's parent run could not be created in the MLflow store: {err}".splitlines()[0]
            raise SweepRefused(StudyError(message)) from err

    @staticmethod
    def start_workers(config: DictConfig, the_plan: Plan, store_uri: str) -> None:
        from dataclasses import replace

        if the_plan.warm_up is None:
            return
        launcher = config.hydra.launcher
        workers = parallel_jobs(launcher, the_plan.total or 0)
        prewarm.start(launcher, workers, replace(the_plan.warm_up, store_uri=store_uri))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.reached_end = True
        self.close()
        prewarm.stop_workers()

    def close(self, error: BaseException | None = None) -> None:
        """Summarise and end the parent run, once; never leaves it (or a child) RUNNING.

        `error`: what stopped the multirun. A failed job is in the summary already; the cluster's refusal
        (LauncherError) or anything else (the sweeper itself failed) fails the study, with a line in `errors`.
        """
        if self.closed or self.plan is None or self.study is None:
            return
        self.closed = True
        from sweeplab.sweep.summary import finish_sweep

        lost = store.unreachable(self.study.client.tracking_uri)
        if lost is not None:  # every call would retry and fail; say once what happened and how to go on
            self.errors.append(
                f"{lost}; the sweep's parent run {self.study.run_id} stays RUNNING there: "
                "rerun the same sweep command once the server is back, it resumes where it stopped"
            )
            self.outcome = KILLED
            return
        status = KILLED
        try:
            try:
                status = finish_sweep(self.study, self.plan, self.reached_end or error is not None)
            except OSError as err:  # the parent's files, on a full or unwritable artifact store
                status = studies.FAILED
                self.errors.append(self.unwritten(err))
            if isinstance(error, LauncherError):
                status = studies.FAILED
                self.errors.append(str(error))
            elif error is not None and status == studies.FINISHED:
                status = studies.FAILED
                self.errors.append(f"the {self.plan.sweeper} sweeper stopped: {one_line(error)}")
        finally:
            self.outcome = status
            with contextlib.suppress(Exception):
                self.study.finish(status, self.errors[-1] if self.errors else "")

    def take_errors(self) -> list[str]:
        """The lines `close` kept, once: whoever shows them takes them."""
        taken, self.errors = self.errors, []
        return taken

    def unwritten(self, err: OSError) -> str:
        """Why the sweep's summary files could not be logged to its parent run, naming where."""
        assert self.study is not None
        where = err.filename2 or err.filename
        if where is None:
            with contextlib.suppress(Exception):
                where = self.study.client.get_run(self.study.run_id).info.artifact_uri
        return (
            f"the sweep's summary could not be logged to its parent run {self.study.run_id} "
            f"({err.strerror or err}: {where}); free disk space and rerun the same command"
        )
