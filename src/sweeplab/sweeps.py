"""Hydra multiruns as MLflow sweeps: one parent run per sweep, one child run per job.

`SweepCallback` (registered in conf/config.yaml under hydra.callbacks) does the sweep's bookkeeping in the
process that launches the jobs:

- before any job, it expands the sweep exactly as Hydra's basic sweeper does, composes every job and
  refuses a bad value with one line (exit 2), so no run exists for a sweep that cannot work;
- on the joblib launcher, it starts the worker processes and has them import TensorFlow and MLflow
  meanwhile (sweeplab.prewarm);
- it creates (or, for the identical sweep, reopens) the parent run with MlflowClient and hands its id to
  the jobs through SWEEPLAB_PARENT_RUN_ID, set in every job's process by Hydra (hydra.job.env_set);
- at the end (normal, failed job, Ctrl-C or SIGTERM) it writes the summary and ends the parent run.

The job side (resume, threads, per-job report) is sweeplab.sweep_job; the table and plot, sweep_summary.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from sweeplab import prewarm, tracking
from sweeplab.config import ConfigError, config_hash, validate
from sweeplab.errors import TrackingError
from sweeplab.prewarm import WarmUp
from sweeplab.runtime import handle_sigterm, resume_gc

if TYPE_CHECKING:  # MLflow is imported once the sweep's jobs are validated (and its workers started)
    from mlflow.tracking import MlflowClient

SIZE_ENV = "SWEEPLAB_SWEEP_SIZE"  # jobs in the sweep, for "job i/N"
AXES_ENV = "SWEEPLAB_SWEEP_AXES"  # swept keys, comma-separated, to label a job by what varies
TAG_SWEEP_HASH = "sweeplab.sweep_hash"
TAG_SWEEP = "sweeplab.sweep"


@dataclass
class Job:
    """One job of the sweep: Hydra's job number, its overrides and the identity of its config."""

    num: int
    overrides: list[str]
    config_hash: str
    warm_up: WarmUp | None = None  # what its process loads first (backend, threads, dataset)

    def label(self, axes: list[str]) -> str:
        """What varies in this job, e.g. 'lr=0.01 seed=1'."""
        return " ".join(o for o in self.overrides if o.split("=", 1)[0] in axes) or "(no swept keys)"


@dataclass
class Sweep:
    """The sweep as the launching process knows it."""

    name: str
    axes: dict[str, str]  # swept key -> its values as given, e.g. {"lr": "0.001,0.01,0.1"}
    jobs: list[Job]
    experiment: str
    directory: Path
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def hash(self) -> str:
        """Same jobs in the same experiment = same sweep, whatever the order, folder or time."""
        text = json.dumps({"experiment": self.experiment, "jobs": sorted(j.config_hash for j in self.jobs)})
        return hashlib.sha256(text.encode()).hexdigest()[:16]


BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"  # runs the jobs in this process


def refuse(message: str) -> None:
    """One line on stderr, exit status 2, as sweeplab.cli refuses bad input (before any run exists)."""
    print(f"sweeplab: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def sweep_lines(config: DictConfig) -> list[str]:
    """The sweep's overrides as the basic sweeper reads them: hydra.sweeper.params, then the command line."""
    params = config.hydra.sweeper.get("params") or {}
    lines = [f"{key}={value}" for key, value in params.items()]
    return lines + list(config.hydra.overrides.task)


def expand(config: DictConfig) -> tuple[dict[str, str], list[list[str]]]:
    """(swept axes, each job's overrides) in the order Hydra numbers the jobs."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    overrides = parser.parse_overrides(sweep_lines(config))
    axes: dict[str, str] = {}
    for override in overrides:
        key = override.get_key_element()
        axes.pop(key, None)  # a later override of the same key wins, as in the sweeper
        if override.is_sweep_override():
            axes[key] = ",".join(override.sweep_string_iterator()) if override.is_discrete_sweep() else "?"
    return axes, BasicSweeper.split_arguments(overrides, None)[0]


def compose_job(config: DictConfig, overrides: list[str], num: int) -> DictConfig:
    """A job's full config, composed as the launchers compose it (hydra.job.num set, for interpolations)."""
    job_cfg = GlobalHydra.instance().config_loader().load_sweep_config(config, overrides)
    with open_dict(job_cfg):
        job_cfg.hydra.job.id = f"job_id_for_{num}"
        job_cfg.hydra.job.num = num
    return job_cfg


def without_hydra(config: DictConfig) -> DictConfig:
    """The job's own config (what the task function receives), for hashing and validation."""
    return OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])


def plan(config: DictConfig) -> Sweep:
    """Expand and compose every job and validate it; raise ConfigError (one line) at the first bad one."""
    from sweeplab.sweep_job import job_threads

    try:
        axes, job_overrides = expand(config)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise ConfigError(f"the sweep cannot be expanded: {_first_line(err)}") from err
    if not job_overrides:
        raise ConfigError(f"the sweep {' '.join(sweep_lines(config))} has no jobs: give each swept key a value")
    jobs = []
    for num, overrides in enumerate(job_overrides):
        where = f"job {num + 1} ({Job(num, list(overrides), '').label(list(axes))})"
        try:
            job_cfg = without_hydra(compose_job(config, overrides, num))
            validate(job_cfg)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from err
        except (HydraException, OmegaConfBaseException, ValueError) as err:
            raise ConfigError(f"{where}: {_first_line(err)}") from err
        warm_up = WarmUp(
            backend=job_cfg.backend,
            threads=job_cfg.training.threads or job_threads(len(job_overrides), config.hydra.launcher),
            data=(job_cfg.data.name, job_cfg.data.path),
        )
        jobs.append(Job(num=num, overrides=list(overrides), config_hash=config_hash(job_cfg), warm_up=warm_up))
    choices = config.hydra.runtime.get("choices") or {}
    name = choices.get("sweeps") or "sweep " + " ".join(axes)
    return Sweep(
        name=str(name).strip(),
        axes=axes,
        jobs=jobs,
        experiment=config.tracking.experiment,
        directory=Path(config.hydra.sweep.dir),
    )


def experiment_id(client: MlflowClient, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # created by another process since our lookup
        return client.get_experiment_by_name(name).experiment_id


def open_parent(client: MlflowClient, sweep: Sweep) -> tuple[str, str]:
    """(experiment id, parent run id): the identical sweep's earlier parent reopened, or a new one."""
    from mlflow.entities import RunStatus

    exp_id = experiment_id(client, sweep.experiment)
    earlier = client.search_runs(
        [exp_id],
        f"tags.`{TAG_SWEEP_HASH}` = '{sweep.hash}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if earlier:
        run_id = earlier[0].info.run_id
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        client.set_tag(run_id, tracking.TAG_ERROR, "")
        close_stale_children(client, exp_id, run_id)
        return exp_id, run_id
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    axes = " ".join(f"{k}={v}" for k, v in sweep.axes.items())
    run = client.create_run(
        exp_id,
        run_name=f"{sweep.name} {stamp}",
        tags={
            TAG_SWEEP_HASH: sweep.hash,
            TAG_SWEEP: sweep.name,
            tracking.TAG_NOTE: f"{len(sweep.jobs)} jobs: {axes or '(one job)'}; jobs are its child runs.",
        },
    )
    params = {f"sweep.{key}": values for key, values in sweep.axes.items()}
    params.update({"sweep.jobs": len(sweep.jobs), "sweep.name": sweep.name})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, str(value)[:6000])
    return exp_id, run.info.run_id


def close_stale_children(client: MlflowClient, exp_id: str, parent_run_id: str) -> None:
    """End KILLED, with the reason, the jobs an earlier attempt of this sweep left RUNNING.

    Only a lost tracking server (or a killed machine) leaves them so: their process could not end them.
    """
    from mlflow.entities import RunStatus

    stale = client.search_runs(
        [exp_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'RUNNING'"
    )
    reason = "its sweep stopped while it ran (tracking server lost or process killed); the resumed sweep reruns it"
    for run in stale:
        client.set_tag(run.info.run_id, tracking.TAG_ERROR, reason)
        client.set_tag(run.info.run_id, tracking.TAG_NOTE, f"KILLED: {reason}")
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))


def pass_to_jobs(config: DictConfig, env: dict[str, str]) -> None:
    """Set `env` in this process and in every job's, wherever the launcher runs it.

    Through hydra.job.env_set: each launcher composes a job from the sweep's hydra overrides and Hydra sets
    env_set around the job, in a joblib worker started before the parent run existed as in a submitit or
    Slurm job. (A process started later inherits os.environ as well.)
    """
    os.environ.update(env)
    with read_write(config), open_dict(config):
        for key, value in env.items():
            quoted = value.replace("\\", "\\\\").replace("'", "\\'")
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{key}='{quoted}'")


class SweepCallback(Callback):
    """hydra.callbacks entry: plans the sweep, owns its parent run, writes its summary."""

    def __init__(self) -> None:
        self.sweep: Sweep | None = None
        self.client: MlflowClient | None = None
        self.experiment_id = ""
        self.parent_run_id = ""
        self.reached_end = False
        self.closed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        handle_sigterm()  # SIGTERM ends the sweep like Ctrl-C: runs KILLED, summary written
        # Hydra turns a callback's exception into a warning and goes on; a sweep without its checks or its
        # parent run must not start, so every failure here stops it with one line.
        try:
            sweep = plan(config)
            uri = tracking.check_store(config.tracking)  # a server that does not answer: refused here
        except (ConfigError, TrackingError) as err:
            refuse(str(err))
        self.start_workers(config, sweep, uri)  # joblib: they import TensorFlow and MLflow meanwhile
        from mlflow.tracking import MlflowClient

        try:
            tracking.connect(config.tracking)
            with tracking.sqlite_init_lock(uri):  # a fresh store is created here (warm workers, sweeps may race)
                client = MlflowClient(uri)
                self.experiment_id, self.parent_run_id = open_parent(client, sweep)
        except TrackingError as err:
            prewarm.stop_workers()
            refuse(str(err))
        except Exception as err:  # noqa: BLE001 (the store: unreachable server, locked or broken database)
            prewarm.stop_workers()
            refuse(f"the sweep's parent run could not be created in the MLflow store: {_first_line(err)}")
        self.sweep, self.client = sweep, client
        if str(config.hydra.launcher.get("_target_", "")) != BASIC_LAUNCHER:
            resume_gc()  # this process's imports are done; with the basic launcher, its first job ends the pause
        pass_to_jobs(
            config,
            {
                tracking.PARENT_RUN_ENV: self.parent_run_id,
                SIZE_ENV: str(len(sweep.jobs)),
                AXES_ENV: ",".join(sweep.axes),
            },
        )
        atexit.register(self.close)  # also on a failed job (Hydra exits 1 before on_multirun_end) or Ctrl-C
        print(
            f"sweeplab: sweep '{sweep.name}' of {len(sweep.jobs)} jobs -> parent run {self.parent_run_id} "
            f"in experiment '{sweep.experiment}' ({tracking.ui_url(self.experiment_id, self.parent_run_id)})",
            flush=True,
        )

    @staticmethod
    def start_workers(config: DictConfig, sweep: Sweep, store_uri: str) -> None:
        from sweeplab.sweep_job import parallel_jobs

        launcher = config.hydra.launcher
        common = WarmUp.common([job.warm_up for job in sweep.jobs if job.warm_up is not None])
        prewarm.start(launcher, parallel_jobs(launcher, len(sweep.jobs)), replace(common, store_uri=store_uri))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.reached_end = True
        self.close()
        prewarm.stop_workers()

    def close(self) -> None:
        """Summarise and end the parent run, once; never leaves it (or a child) RUNNING."""
        if self.closed or self.sweep is None or self.client is None:
            return
        self.closed = True
        from mlflow.entities import RunStatus

        from sweeplab.sweep_summary import summarise

        lost = tracking.unreachable(self.client.tracking_uri)
        if lost is not None:  # every call would retry and fail; say once what happened and how to go on
            print(
                f"sweeplab: error: {lost}; the sweep's parent run {self.parent_run_id} stays RUNNING there: "
                "rerun the same sweep command once the server is back, it resumes where it stopped",
                file=sys.stderr,
                flush=True,
            )
            return
        status = RunStatus.to_string(RunStatus.KILLED)
        try:
            status = summarise(self.client, self.sweep, self.experiment_id, self.parent_run_id, self.reached_end)
        finally:
            with contextlib.suppress(Exception):
                self.client.set_terminated(self.parent_run_id, status)
