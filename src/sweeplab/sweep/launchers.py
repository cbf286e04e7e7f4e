"""How a Hydra launcher runs a study's jobs: how many at once on one machine, and so how many threads each."""

from __future__ import annotations

import os

from omegaconf import DictConfig

from sweeplab.errors import ConfigError

# hydra-submitit-launcher's own launchers -> the name of sweeplab's launcher on the same plugin.
_SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher"
UNWATCHED = {f"{_SUBMITIT}.SlurmLauncher": "slurm", f"{_SUBMITIT}.LocalLauncher": "local"}


def check_launcher(launcher: DictConfig) -> None:
    """Refuse hydra-submitit-launcher's own launchers: stopped, a sweep on them leaves its jobs running and
    their runs RUNNING under a closed parent. sweeplab's launchers on the same plugin watch and cancel them."""
    ours = UNWATCHED.get(str(launcher.get("_target_", "")))
    if ours is not None:
        raise ConfigError(
            f"hydra/launcher=submitit_{ours}: Hydra's submitit launcher leaves the jobs running when the sweep is "
            f"stopped; use hydra/launcher={ours}, sweeplab's launcher on the same plugin, which cancels them"
        )


def parallel_jobs(launcher: DictConfig, sweep_size: int) -> int:
    """How many jobs of this sweep the launcher runs at once on one machine (sweep_size 0: not known)."""
    cpus = os.cpu_count() or 1
    target = str(launcher.get("_target_", ""))
    if "n_jobs" in launcher:  # joblib: -1 is all cores, -2 all but one, ...
        n_jobs = int(launcher.n_jobs)
        running = cpus + 1 + n_jobs if n_jobs < 0 else n_jobs
    elif target.endswith("LocalLauncher"):  # hydra/launcher=local (submitit) starts every job at once
        running = sweep_size
    else:
        running = 1
    return max(1, min(running, sweep_size or running))


def job_threads(sweep_size: int, launcher: DictConfig | None = None) -> int | None:
    """TensorFlow threads for a job when training.threads is null: cores shared by the jobs running at once.

    None (TensorFlow's default: every core) for one job at a time. `launcher`: hydra.launcher (by default,
    this job's). Inside a Slurm job the cores are those Slurm gave it (asked or not, e.g. Slurm's default one),
    not the node's.
    """
    if launcher is None:
        from hydra.core.hydra_config import HydraConfig

        launcher = HydraConfig.get().launcher
    if launcher.get("cpus_per_task"):  # submitit: what the scheduler gives each job
        return int(launcher.cpus_per_task)
    running = parallel_jobs(launcher, sweep_size)
    given = slurm_cores()
    if given:
        return max(1, given // running)
    return None if running == 1 else max(1, (os.cpu_count() or 1) // running)


def slurm_cores() -> int | None:
    """The cores Slurm gave the job this process runs in; None outside Slurm."""
    cores = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE") or ""
    return int(cores) if os.environ.get("SLURM_JOB_ID") and cores.isdigit() else None
