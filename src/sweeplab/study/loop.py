"""The asynchronous loop of `hydra/sweeper=sweeplab`: each worker asks, launches its one job, tells, and asks
again, so a worker is refilled the moment its trial ends (finished, failed or pruned) instead of waiting for a
batch. The study's MLflow record is the sweep callback's parent run and its jobs' child runs."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweeplab import compat
from sweeplab.config import config_hash
from sweeplab.errors import StudyError
from sweeplab.perf import prewarm
from sweeplab.study.resume import finished_trials, give_back, report_resumed
from sweeplab.study.samplers import make_sampler
from sweeplab.study.space import search_space
from sweeplab.study.trials import Trials
from sweeplab.sweep.plan import Plan, compose_job, sweep_lines, without_hydra
from sweeplab.sweep.report import REPORT_FILE, JobReport, job_reports
from sweeplab.tracking import tags


def run_study(config: DictConfig, launcher: Any, settings: dict[str, Any]) -> list[float | None]:
    """Run the study up to n_trials (finished trials under the same parent count and are not run again)."""
    import optuna

    from sweeplab.sweep.callback import launched_here

    callback = next((c for c in reversed(launched_here().callbacks) if c.study is not None), None)
    if callback is None or callback.plan is None or callback.study is None:
        raise StudyError("hydra/sweeper=sweeplab needs sweeplab's sweep callback (hydra.callbacks.sweep)")
    plan, study = callback.plan, callback.study
    space, fixed = search_space(sweep_lines(config))
    direction = "maximize" if plan.objective.maximize else "minimize"
    found = finished_trials(study, space, plan.objective.metric)
    optuna_study = optuna.create_study(direction=direction, sampler=make_sampler(settings, space, len(found)))
    resumed = give_back(optuna_study, found, space)
    first_num = report_resumed(plan.directory, study.run_id, found)
    if resumed:
        print(f"sweeplab: {resumed} trials FINISHED earlier in this study are given back to the sampler", flush=True)
    trials = Trials(optuna_study, space, fixed, first_num, int(settings["n_trials"]) - resumed)
    workers = worker_count(config, int(settings["workers"]))

    def record(ret: Any, params: dict[str, Any]) -> None:
        tag_run(study.client, ret, params)

    try:
        if workers == 1:
            work(trials, launcher, record)
        else:
            in_threads(trials, launcher, record, workers)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the jobs joblib's abort ended before they could say so
        report_stopped(config, plan, study.run_id, dict(trials.running))
        raise
    return [t.value for t in optuna_study.trials]


def report_stopped(config: DictConfig, plan: Plan, parent_run_id: str, running: dict[int, list[str]]) -> None:
    """A KILLED report for each job in flight that left none, naming its config: the summary then finds its run
    (by config hash) and ends it KILLED instead of leaving it RUNNING."""
    reports = job_reports(plan.directory, parent_run_id)
    for num, overrides in running.items():
        if num in reports:
            continue
        report = JobReport(num, overrides, parent_run_id, status="KILLED", error="the sweep was stopped")
        with contextlib.suppress(Exception):  # a job that cannot be composed has no run to find
            report.config_hash = config_hash(without_hydra(compose_job(config, overrides, num)))
        report.write(plan.directory / "stopped" / str(num))


def worker_count(config: DictConfig, asked: int) -> int:
    """Workers this launcher can run at once: joblib's n_jobs at most; one for every other launcher for now."""
    settings = prewarm.joblib_settings(config.hydra.launcher)
    n_jobs = int(settings.get("n_jobs") or 1) if settings is not None else 1
    workers = min(asked, n_jobs) if n_jobs > 0 else asked
    if workers < asked:
        print(f"sweeplab: hydra.sweeper.workers={asked}: this launcher runs {workers} trial(s) at once", flush=True)
    return max(1, workers)


def work(trials: Trials, launcher: Any, record: Any) -> None:
    """One worker: ask, launch the trial's job alone, tell, until the budget is spent or the study stops."""
    while (drawn := trials.next()) is not None:
        trial, num, overrides = drawn
        (ret,) = launcher.launch([overrides], initial_job_idx=num)
        trials.tell(trial, num, ret)
        record(ret, trial.params)


def in_threads(trials: Trials, launcher: Any, record: Any, workers: int) -> None:
    """`workers` threads each run `work`; the main thread waits for them and takes Ctrl-C and SIGTERM, which
    stop the study and the launcher's worker processes (the runs they leave end KILLED in the summary)."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work(trials, launcher, record)
        except BaseException as err:  # noqa: BLE001 - the main thread raises it once every worker has ended
            errors.append(err)
            trials.stop()

    threads = [threading.Thread(target=guarded, name=f"sweeplab-worker-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        trials.stop()  # no new trial; the jobs in flight end their runs KILLED and write their reports
        compat.signal_joblib_workers(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        prewarm.stop_workers()
        raise
    if errors:
        raise errors[0]


def tag_run(client: Any, ret: Any, params: dict[str, Any]) -> None:
    """Tag the run a trial's job made with its sampled values, which a resumed study gives back to the sampler."""
    path = Path(str(ret.hydra_cfg.hydra.runtime.output_dir)) / REPORT_FILE
    try:
        report = JobReport.read(path)
    except (OSError, ValueError, KeyError, TypeError):
        return
    if report.run_id and not report.skipped:
        client.set_tag(report.run_id, tags.STUDY_PARAMS, json.dumps(params))
