"""A study's jobs on submitit (Slurm or local processes): submitted, watched until each ends, stopped when told.

hydra-submitit-launcher submits and then waits on result files: sbatch's refusal comes back as a long
traceback, a job pending for a reason that never clears is waited on forever, and Ctrl-C or SIGTERM leaves
the jobs running under a parent run already closed. Here sbatch's refusal is one line (LauncherError), a
job stuck pending is cancelled and reported with squeue's reason, and an interrupt cancels every job and
waits for each to end (its run then ends KILLED itself) before the study closes its parent run. Used by
sweeplab's launcher plugins (src/hydra_plugins/sweeplab_launchers); nothing heavy is imported at the top.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweeplab import compat
from sweeplab.errors import LauncherError, one_line
from sweeplab.signals import signals_held

log = logging.getLogger(__name__)

POLL_S = {"slurm": 5.0, "local": 1.0}  # how often squeue (or each local process) is asked how the jobs are doing
STUCK_AFTER_S = 10.0  # a pending reason that will not clear, seen this long, fails the sweep
GONE_AFTER_S = 10.0  # a job gone from the queue without a result file: how long its file may lag (shared disks)
STOP_WAIT_S = 150.0  # after cancelling: how long the jobs get to end their runs before SIGKILL
RESEND_S = 15.0  # after cancelling: from when scancel is said again while a job still runs
# squeue reasons (%r) that no amount of waiting clears: the request does not fit the partition or node,
# names something that does not exist, or is held. Others (Resources, Priority, ...) are ordinary queueing.
STUCK_REASONS = frozenset(
    {
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "PartitionDown",
        "PartitionInactive",
        "ReqNodeNotAvail",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "QOSMaxCpuPerJobLimit",
        "QOSMaxMemoryPerJob",
        "QOSMaxWallDurationPerJobLimit",
        "AssocMaxCpuPerJobLimit",
        "AssocMaxWallDurationPerJobLimit",
        "DependencyNeverSatisfied",
        "JobHeldAdmin",
        "JobHeldUser",
        "NodeDown",
    }
)
# What the sbatch request was, named in a refusal so that the user knows which knob to turn.
ASKED = ("partition", "cpus_per_task", "mem_gb", "timeout_min", "account", "qos", "constraint", "gres")


def requested(params: dict[str, Any]) -> str:
    """The resources a launcher asks for, as `hydra.launcher.*` overrides, e.g. 'cpus_per_task=1 mem_gb=4'."""
    return " ".join(f"{key}={params[key]}" for key in ASKED if params.get(key) is not None)


def reason_of(output: str) -> str:
    """sbatch's error lines as one line, each without its 'error:' prefix, or the output's first line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line]
    return "; ".join(errors or lines[:1]) or "no reason given"


def trace_end(text: str) -> str:
    """The last line of the traceback in submitit's error for a failed job (the exception and its message)."""
    parts = text.split("-" * 22)
    lines = [line.strip() for line in (parts[1] if len(parts) > 2 else text).splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"


def make_executor(kind: str, params: dict[str, Any]) -> Any:
    """submitit's executor for `kind` ('slurm' or 'local') with the launcher's params, as the plugin builds it."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    params = dict(params)
    init: dict[str, Any] = {"folder": params.pop("submitit_folder")}
    if "max_num_timeout" in params:
        init[f"{kind}_max_num_timeout"] = params.pop("max_num_timeout")
    executor = submitit.AutoExecutor(cluster=kind, **init)
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{key if key in shared else f"{kind}_{key}": v for key, v in params.items()})
    return executor


def submit(launcher: Any, kind: str, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    """Submit the jobs (one Slurm array, or one process each); a refusal raises LauncherError, one line."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import filter_overrides
    from submitit.core.utils import FailedJobError

    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log.info(f"Submitit '{kind}' sweep output dir : {sweep_dir}")
    job_params = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
    asked = requested(launcher.params)
    hint = f" (asked: {asked}; change them with hydra.launcher.KEY=VALUE)" if asked else ""
    said = io.StringIO()  # submitit prints sbatch's stderr itself before raising: it goes into our one line
    # No signals_held here: processes started while SIGTERM is blocked inherit the block (submitit_local's).
    with contextlib.redirect_stderr(said):
        try:
            executor = make_executor(kind, launcher.params)  # no srun here: submitit says so
            return executor.map_array(launcher, *zip(*job_params, strict=True))
        except FailedJobError as err:  # sbatch refused: submitit's error carries its stderr
            reason = reason_of(str(err) or said.getvalue())
            raise LauncherError(f"sbatch refused the sweep's {len(job_params)} jobs: {reason}{hint}") from err
        except Exception as err:  # noqa: BLE001 (no Slurm here, a job that cannot be pickled, ...)
            raise LauncherError(f"the sweep's {kind} jobs could not be submitted: {one_line(err)}") from err


def squeue(job_ids: Sequence[str]) -> dict[str, tuple[str, str]] | None:
    """Slurm's view of these jobs (array tasks one by one): id -> (state, reason); None if squeue failed."""
    arrays = sorted({job_id.split("_", 1)[0] for job_id in job_ids})
    try:
        done = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(arrays)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        # Jobs that have left the queue long enough ago are unknown to it: none of them is queued.
        return {} if "Invalid job id" in done.stderr else None
    rows = (line.split("|", 2) for line in done.stdout.splitlines() if line.count("|") == 2)
    return {job_id: (state, reason) for job_id, state, reason in rows}


class Jobs:
    """The submitted jobs of one launch, and what is known of each: ended, stuck, or still going."""

    def __init__(self, kind: str, jobs: list[Any], params: dict[str, Any]) -> None:
        self.kind, self.jobs, self.params = kind, jobs, params
        self.gone_since: dict[str, float] = {}  # job id -> when the queue first no longer listed it
        self.stuck_since: dict[str, float] = {}  # job id -> when it was first seen pending for good

    def has_result(self, job: Any) -> bool:
        return job.paths.result_pickle.exists()

    def running(self) -> list[Any]:
        """The jobs that have not ended yet (Slurm: still queued, or gone too recently to say)."""
        if self.kind != "slurm":
            return [job for job in self.jobs if not job.done()]
        queue = squeue([job.job_id for job in self.jobs])
        now = time.monotonic()
        left = []
        for job in self.jobs:
            if queue is None or job.job_id in queue:
                left.append(job)
                self.gone_since.pop(job.job_id, None)
            elif not self.has_result(job) and now - self.gone_since.setdefault(job.job_id, now) < GONE_AFTER_S:
                left.append(job)
        self.check_stuck(queue or {}, now)
        return left

    def check_stuck(self, queue: dict[str, tuple[str, str]], now: float) -> None:
        """Fail (after cancelling every job) when one pends for a reason that will not clear by itself."""
        for job_id, (state, reason) in sorted(queue.items()):
            if state != "PENDING" or reason.split(",", 1)[0].strip() not in STUCK_REASONS:
                self.stuck_since.pop(job_id, None)
                continue
            if now - self.stuck_since.setdefault(job_id, now) >= STUCK_AFTER_S:
                self.stop()
                asked = requested(self.params)
                raise LauncherError(
                    f"Slurm job {job_id} pends with reason {reason}, which will not clear by itself"
                    + (f" (asked: {asked}; change them with hydra.launcher.KEY=VALUE)" if asked else "")
                    + "; the sweep's jobs were cancelled"
                )

    def stop(self) -> None:
        """Cancel every job and wait for it to end (its run ends KILLED with the epochs it logged)."""
        with signals_held():  # a second Ctrl-C must not leave jobs behind; the wait is bounded
            self.cancel(signal.SIGTERM)
            started = time.monotonic()
            while self.alive() and time.monotonic() < started + STOP_WAIT_S:
                time.sleep(POLL_S[self.kind])
                if self.kind == "slurm" and time.monotonic() - started >= RESEND_S:
                    self.cancel(signal.SIGTERM)  # a busy controller may have dropped it; a cancelled job ignores it
            if self.alive():
                log.warning(f"jobs still running {STOP_WAIT_S:.0f} s after cancelling them: killing them")
                self.cancel(signal.SIGKILL)
                deadline = time.monotonic() + 30
                while self.alive() and time.monotonic() < deadline:
                    time.sleep(POLL_S[self.kind])

    def cancel(self, signum: int) -> None:
        """Slurm: scancel the arrays (SIGTERM to the running tasks, queued ones dropped). Local: SIGTERM to
        each job's controller, which forwards it to its task (submitit's own cancel sends SIGINT, and the
        controller then kills the task after one second)."""
        if self.kind == "slurm":
            arrays = sorted({job.job_id.split("_", 1)[0] for job in self.jobs})
            extra = ["--signal=KILL", "--full"] if signum == signal.SIGKILL else []
            subprocess.run(["scancel", *extra, *arrays], capture_output=True, timeout=60, check=False)
            return
        for job in self.jobs:
            if not job.done():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(compat.submitit_local_controller_pid(job), signum)

    def alive(self) -> bool:
        if self.kind != "slurm":
            return any(not job.done() for job in self.jobs)
        queue = squeue([job.job_id for job in self.jobs])
        return queue is None or any(job.job_id in queue for job in self.jobs)

    def result(self, job: Any, overrides: Sequence[str], num: int) -> Any:
        """The job's JobReturn; a job that ended without one (killed, out of memory) as a failed return."""
        from hydra.core.utils import JobReturn, JobStatus

        if self.has_result(job):
            try:
                return job.results()[0]
            except Exception as err:  # noqa: BLE001 (an error outside the job's run: submitit's has its trace)
                error = LauncherError(f"job {num + 1} ({self.kind} job {job.job_id}) failed: {trace_end(str(err))}")
        else:
            error = LauncherError(
                f"job {num + 1} ({self.kind} job {job.job_id}) ended without a result; its log: {job.paths.stderr}"
            )
        failed = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
        failed.return_value = error
        return failed


def launch(launcher: Any, kind: str, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    """The launcher plugin's launch: submit, watch until every job ended, return their JobReturns."""
    jobs = Jobs(kind, submit(launcher, kind, job_overrides, initial_job_idx), launcher.params)
    try:
        while jobs.running():
            time.sleep(POLL_S[kind])
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (signals.Terminated) to the sweep: stop means stop
        jobs.stop()
        raise
    return [
        jobs.result(job, overrides, initial_job_idx + i)
        for i, (job, overrides) in enumerate(zip(jobs.jobs, job_overrides, strict=True))
    ]
