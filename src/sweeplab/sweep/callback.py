"""Hydra multiruns as MLflow studies, whatever the sweeper: the `hydra.callbacks` entry of conf/config.yaml.

In the process that launches the jobs, before any job: plan the multirun (the basic sweeper's grid is
expanded and every job checked; a bad value is refused in one line, exit 2), start and warm the joblib
launcher's workers, open the study (its parent run, reopened for the same command) and hand its id to the
jobs through hydra.job.env_set. At the end (normal, failed job, Ctrl-C or SIGTERM): the summary from what
ran, and the parent closed with the right status. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import atexit
import contextlib
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweeplab import compat
from sweeplab.cli import error_line, fail
from sweeplab.errors import LauncherError, SweeplabError, one_line
from sweeplab.perf import prewarm
from sweeplab.perf.process import resume_gc
from sweeplab.signals import handle_signals
from sweeplab.sweep.cluster import WATCHED
from sweeplab.sweep.data_check import check_data
from sweeplab.sweep.launchers import parallel_jobs
from sweeplab.sweep.plan import KIND_GRID, Plan, pass_to_jobs, plan
from sweeplab.tracking import store, studies, tags
from sweeplab.tracking.studies import KILLED, Study


def last_outcome() -> str | None:
    """The status of the last study this process closed: FINISHED, FAILED or KILLED; None if none."""
    return next((c.outcome for c in reversed(SweepCallback.instances) if c.outcome), None)


def study_open() -> bool:
    """Whether this process launched a study's jobs (their failures are reported job by job)."""
    return any(c.study is not None for c in SweepCallback.instances)


def close_studies(error: BaseException) -> None:
    """Close the studies of this process after `error` stopped the multirun (a failed job, or the sweeper)."""
    for callback in SweepCallback.instances:
        callback.close(error)


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
    return studies.open_study(
        client,
        the_plan.experiment,
        key=the_plan.key,
        kind=the_plan.kind,
        name=the_plan.name,
        params=params,
        note=f"{size}: {axes}; jobs are its child runs.",
    )


def watch_jobs(config: DictConfig) -> None:
    """Launch through sweeplab's watched submitit launchers (sweeplab.sweep.cluster) where the plugin's own
    were chosen: Hydra instantiates the launcher after this callback's on_multirun_start."""
    from omegaconf import open_dict, read_write

    target = str(config.hydra.launcher.get("_target_", ""))
    if target in WATCHED:
        with read_write(config), open_dict(config):
            config.hydra.launcher["_target_"] = WATCHED[target]


class SweepCallback(Callback):
    """hydra.callbacks entry: plans the multirun, owns its study, writes its summary."""

    instances: list[SweepCallback] = []

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.study: Study | None = None
        self.reached_end = False
        self.closed = False
        self.outcome: str | None = None  # the parent's final status, once closed
        SweepCallback.instances.append(self)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        handle_signals()  # SIGTERM ends the sweep like Ctrl-C: runs KILLED, summary written
        # Hydra turns a callback's exception into a warning and goes on; a sweep without its checks or its
        # parent run must not start, so every failure here stops it with one line.
        try:
            the_plan = plan(config)
            uri = store.check_store(config.tracking)  # a server that does not answer: refused here
            check_data(config)  # once, before any job is launched or submitted
        except SweeplabError as err:
            fail(err, status=2)
        self.start_workers(config, the_plan, uri)  # joblib: they import TensorFlow and MLflow meanwhile
        from mlflow.tracking import MlflowClient

        try:
            store.connect(config.tracking)
            with store.sqlite_init_lock(uri):  # a fresh store is created here (warm workers, sweeps may race)
                study = open_parent(MlflowClient(uri), the_plan)
        except SweeplabError as err:
            prewarm.stop_workers()
            fail(err, status=2)
        except Exception as err:  # noqa: BLE001 (the store: unreachable server, locked or broken database)
            prewarm.stop_workers()
            fail(f"the sweep's parent run could not be created in the MLflow store: {err}".splitlines()[0])
        self.plan, self.study = the_plan, study
        watch_jobs(config)
        if str(config.hydra.launcher.get("_target_", "")) != compat.BASIC_LAUNCHER:
            resume_gc()  # this process's imports are done; with the basic launcher, its first job ends the pause
        env = {**study.env, tags.JOB_TOTAL_ENV: str(the_plan.total or ""), tags.AXES_ENV: ",".join(the_plan.axes)}
        env[tags.STARTED_ENV] = str(time.time())  # for each job's time into the sweep and time left
        pass_to_jobs(config, env)
        atexit.register(self.close)  # also on a failed job (Hydra exits 1 before on_multirun_end) or Ctrl-C
        size = f"of {the_plan.total} jobs" if the_plan.total else f"by the {the_plan.sweeper} sweeper"
        print(
            f"sweeplab: sweep '{the_plan.name}' {size} -> parent run {study.run_id} "
            f"in experiment '{the_plan.experiment}'",  # its link comes with the summary
            flush=True,
        )

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
        (LauncherError) or anything else (the sweeper itself failed) is said in one line and fails the study.
        """
        if self.closed or self.plan is None or self.study is None:
            return
        self.closed = True
        from sweeplab.sweep.summary import summarize

        lost = store.unreachable(self.study.client.tracking_uri)
        if lost is not None:  # every call would retry and fail; say once what happened and how to go on
            error_line(
                f"{lost}; the sweep's parent run {self.study.run_id} stays RUNNING there: "
                "rerun the same sweep command once the server is back, it resumes where it stopped"
            )
            self.outcome = KILLED
            return
        status, reason = KILLED, ""
        try:
            try:
                status = summarize(self.study, self.plan, self.reached_end or error is not None)
            except OSError as err:  # the parent's files, on a full or unwritable artifact store
                status, reason = studies.FAILED, self.unwritten(err)
                error_line(reason)
            if isinstance(error, LauncherError):
                status, reason = studies.FAILED, str(error)
                error_line(reason)
            elif error is not None and status == studies.FINISHED:
                status, reason = studies.FAILED, f"the {self.plan.sweeper} sweeper stopped: {one_line(error)}"
                error_line(reason)
        finally:
            self.outcome = status
            with contextlib.suppress(Exception):
                self.study.finish(status, reason)

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
