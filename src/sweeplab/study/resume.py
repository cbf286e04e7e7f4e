"""Resume a `hydra/sweeper=sweeplab` study from MLflow alone: the trials that FINISHED under its parent run are
given back to the sampler (not trained again), and listed in this launch's summary as done earlier."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sweeplab.study.space import trial_overrides
from sweeplab.sweep.report import JobReport, job_reports
from sweeplab.tracking import tags
from sweeplab.tracking.studies import Study


def finished_trials(study: Study, space: dict[str, Any], metric: str) -> list[tuple[dict[str, Any], float, str]]:
    """(sampled values, objective, run id) of each FINISHED child this sweeper tagged, oldest first."""
    found = []
    for run in reversed(study.children("attributes.status = 'FINISHED'")):
        text = run.data.tags.get(tags.STUDY_PARAMS)
        value = run.data.metrics.get(metric, math.nan)
        if text is None or not math.isfinite(value):
            continue
        params = json.loads(text)
        if set(params) == set(space):
            found.append((params, value, run.info.run_id))
    return found


def give_back(optuna_study: Any, found: list[tuple[dict[str, Any], float, str]], space: dict[str, Any]) -> int:
    """Add each finished trial to the Optuna study as COMPLETE; how many were taken (a value outside
    today's space is left out)."""
    import optuna

    taken = 0
    for params, value, _ in found:
        try:
            trial = optuna.trial.create_trial(params=params, distributions=space, value=value)
        except ValueError:
            continue
        optuna_study.add_trial(trial)
        taken += 1
    return taken


def report_resumed(directory: Path, parent_run_id: str, found: list[tuple[dict[str, Any], float, str]]) -> int:
    """A skipped job's report for each resumed run this launch's folder does not list yet (so the summary shows
    the whole study); returns the first free job number."""
    reports = job_reports(directory, parent_run_id)
    listed = {r.run_id for r in reports.values()}
    num = max(reports, default=-1) + 1
    for params, _, run_id in found:
        if run_id in listed:
            continue
        report = JobReport(num, trial_overrides(params), parent_run_id, skipped=True, run_id=run_id)
        report.write(directory / "resumed" / str(num))
        num += 1
    return num
