"""What a multirun will run, as the launching process knows it before any job starts.

Under Hydra's basic sweeper every job is known: the grid is expanded and each job composed and validated
here, so a bad value is refused before any run exists. Under any other sweeper (Optuna, a plugin of the
user's) jobs are drawn as the study goes: the plan holds what is swept and how many trials are asked
for, and each job validates itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from sweeplab import compat
from sweeplab.config import config_hash
from sweeplab.errors import ConfigError, first_line
from sweeplab.objective import Objective, objective_of
from sweeplab.perf.prewarm import WarmUp
from sweeplab.sweep.launchers import job_threads
from sweeplab.tracking.context import StudyContext
from sweeplab.tuning.space import validate_tuner
from sweeplab.validate import validate

KIND_GRID, KIND_SWEEPER = "grid", "sweeper"


@dataclass
class Job:
    """One planned job: Hydra's job number, its overrides and the identity of its config."""

    num: int
    overrides: list[str]
    config_hash: str


@dataclass
class Plan:
    """A multirun before it starts: planned jobs (grid) or only its swept keys and size (other sweepers)."""

    kind: str
    name: str
    axes: dict[str, str]  # swept key -> its values or range as given, e.g. {"lr": "0.001,0.01,0.1"}
    experiment: str
    directory: Path
    jobs: list[Job] = field(default_factory=list)  # grid: every job; other sweepers: none known ahead
    total: int | None = None  # jobs the study will run, when known
    sweeper: str = "basic"
    identity: str = ""  # other sweepers: what makes two launches the same study
    warm_up: WarmUp | None = None  # what every job's process loads first, where they agree
    objective: Objective = field(default_factory=Objective)  # what the jobs return, sort and pick the best by

    @property
    def key(self) -> str:
        """The study's key: the same jobs (grid) or sweep (other sweepers) in the same experiment."""
        if self.kind == KIND_GRID:
            text = json.dumps({"experiment": self.experiment, "jobs": sorted(j.config_hash for j in self.jobs)})
        else:
            text = json.dumps({"experiment": self.experiment, "sweep": self.identity}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def label(overrides: list[str], axes: list[str]) -> str:
    """What varies in a job, e.g. 'lr=0.01 seed=1'."""
    return " ".join(o for o in overrides if o.split("=", 1)[0] in axes) or "(no swept keys)"


def sweep_lines(config: DictConfig) -> list[str]:
    """The sweep's overrides as a sweeper reads them: hydra.sweeper.params, then the command line."""
    params = config.hydra.sweeper.get("params") or {}
    lines = [f"{key}={value}" for key, value in params.items()]
    return lines + list(config.hydra.overrides.task)


def _parse(config: DictConfig) -> list:
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    return parser.parse_overrides(sweep_lines(config))


def swept_axes(overrides: list) -> dict[str, str]:
    """Swept key -> its values as given; a later override of the same key wins, as in the sweepers."""
    axes: dict[str, str] = {}
    for override in overrides:
        key = override.get_key_element()
        axes.pop(key, None)
        if override.is_sweep_override():
            if override.is_discrete_sweep():
                axes[key] = ",".join(override.sweep_string_iterator())
            else:  # interval(...), a sweeper's own syntax: as the user wrote it
                line = override.input_line or ""
                axes[key] = line.split("=", 1)[1] if "=" in line else "?"
    return axes


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


def target_name(node: DictConfig) -> str:
    """The class name of a Hydra plugin's `_target_`, e.g. OptunaSweeper."""
    return str(node.get("_target_", "")).rsplit(".", 1)[-1]


def is_basic_sweeper(sweeper: DictConfig) -> bool:
    return str(sweeper.get("_target_", "")) == compat.BASIC_SWEEPER


def _name(config: DictConfig, axes: dict[str, str], prefix: str) -> str:
    choices = config.hydra.runtime.get("choices") or {}
    return str(choices.get("sweeps") or f"{prefix} " + " ".join(axes)).strip()


def _warm_up(job_cfg: DictConfig, threads: int | None) -> WarmUp:
    # A loader of the user's (data._target_) is left to the job: its config need not have a path, and its
    # arrays are not what load_raw reads.
    data = None if job_cfg.data.get("_target_") else (job_cfg.data.name, job_cfg.data.get("path"))
    return WarmUp(backend=job_cfg.backend, threads=threads, data=data)


def plan(config: DictConfig) -> Plan:
    """The multirun's plan; raises ConfigError (one line) for a sweep that cannot work."""
    try:
        overrides = _parse(config)
        axes = swept_axes(overrides)
        grid = is_basic_sweeper(config.hydra.sweeper)
        job_overrides = compat.basic_sweep_jobs(overrides) if grid else []
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise ConfigError(f"the sweep cannot be expanded: {first_line(err)}") from err
    common = {
        "axes": axes,
        "experiment": config.tracking.experiment,
        "directory": Path(config.hydra.sweep.dir),
        "objective": objective_of(config),
    }
    if not grid:
        return _open_plan(config, axes, common)
    if not job_overrides:
        raise ConfigError(f"the sweep {' '.join(sweep_lines(config))} has no jobs: give each swept key a value")
    jobs, warm_ups = [], []
    for num, job in enumerate(job_overrides):
        where = f"job {num + 1} ({label(list(job), list(axes))})"
        try:
            job_cfg = without_hydra(compose_job(config, job, num))
            validate(job_cfg)
            if job_cfg.tuner is not None:
                validate_tuner(job_cfg)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from err
        except (HydraException, OmegaConfBaseException, ValueError) as err:
            raise ConfigError(f"{where}: {first_line(err)}") from err
        threads = job_cfg.training.threads or job_threads(len(job_overrides), config.hydra.launcher)
        jobs.append(Job(num, list(job), config_hash(job_cfg)))
        warm_ups.append(_warm_up(job_cfg, threads))
    name = _name(config, axes, "sweep")
    return Plan(KIND_GRID, name, jobs=jobs, total=len(jobs), warm_up=WarmUp.common(warm_ups), **common)


def _open_plan(config: DictConfig, axes: dict[str, str], common: dict) -> Plan:
    """Another sweeper's study: what it sweeps, how many trials it asks for, and its identity."""
    sweeper = config.hydra.sweeper
    objective = objective_of(config)
    wanted = "maximize" if objective.maximize else "minimize"
    direction = str(sweeper.get("direction", wanted)).rsplit(".", 1)[-1]
    if direction != wanted:
        raise ConfigError(
            f"hydra.sweeper.direction={direction}: sweeplab's jobs return {objective.describe()}; "
            f"add hydra.sweeper.direction={wanted}"
        )
    if sweeper.get("storage") and target_name(sweeper) == "OptunaSweeper":
        raise ConfigError(
            f"hydra.sweeper.storage={sweeper.storage}: Optuna's database storage would keep a second record of "
            "the study beside MLflow's, which sweeplab does not read; leave it null: the same command resumes the "
            "study through MLflow"
        )
    if target_name(sweeper) == "SweeplabSweeper":  # its space and sampler refused here, before any run
        from sweeplab.study.space import check_study

        check_study(sweep_lines(config), str(sweeper.sampler), int(sweeper.n_trials), int(sweeper.workers))
    total = sweeper.get("n_trials")
    total = int(total) if isinstance(total, int) and total > 0 else None
    short = target_name(sweeper).removesuffix("Sweeper").lower() or "sweeper"
    settings = OmegaConf.to_container(sweeper, resolve=True)
    assert isinstance(settings, dict)
    for key in ("n_trials", "n_jobs", "workers"):  # how far and how wide, not what: more trials continue the study
        settings.pop(key, None)
    base = without_hydra(config)
    identity = json.dumps({"sweeper": settings, "lines": sweep_lines(config), "base": config_hash(base)}, default=str)
    threads = base.training.threads or job_threads(total or 0, config.hydra.launcher)
    warm_up = None if {"backend", "data"} & set(axes) else _warm_up(base, threads)
    name = _name(config, axes, short)
    return Plan(KIND_SWEEPER, name, total=total, sweeper=short, identity=identity, warm_up=warm_up, **common)


def pass_to_jobs(config: DictConfig, study: StudyContext) -> None:
    """Hand `study` to every job, wherever the launcher runs it: the one place it is written to the environment.

    Through hydra.job.env_set: each launcher composes a job from the sweep's hydra overrides and Hydra sets
    env_set around the job, in this process (basic launcher), in a joblib worker started before the parent
    run existed, as in a submitit or Slurm job; the job reads it back once (StudyContext.from_environ).
    """
    from omegaconf import read_write

    with read_write(config), open_dict(config):
        for key, value in study.environ().items():
            quoted = value.replace("\\", "\\\\").replace("'", "\\'")
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{key}='{quoted}'")
