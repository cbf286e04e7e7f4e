"""A study's summary from what actually ran: one row per job, best objective first, printed, saved, logged.

The jobs' own reports (sweeplab.sweep.report, in their output folders) say which run each job made or reused;
MLflow says how those runs ended. A planned job that left no report (killed, never started) is looked up
among the parent's children by its config hash; any child still RUNNING is ended KILLED here.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd
from mlflow.entities import Run

from sweeplab.objective import Objective
from sweeplab.sweep.plan import Job, Plan
from sweeplab.sweep.report import JobReport, job_reports
from sweeplab.tracking import studies, tags
from sweeplab.tracking.studies import DONE, FINISHED, KILLED, NOT_RUN, PRUNED, RUNNING, SKIPPED, Study
from sweeplab.tracking.ui import run_link


def what_ran(plan: Plan, study: Study) -> list[tuple[Job, JobReport]]:
    """Each job with its report (an empty one where it left none): the planned grid, or the jobs another
    sweeper actually launched."""
    reports = job_reports(plan.directory, study.run_id)
    if plan.jobs:
        return [(job, reports.get(job.num) or JobReport(job.num, job.overrides)) for job in plan.jobs]
    return [(Job(num, r.overrides, r.config_hash or ""), r) for num, r in sorted(reports.items())]


def job_run(study: Study, job: Job, report: JobReport) -> Run | None:
    if report.run_id:
        return study.client.get_run(report.run_id)
    if not job.config_hash:
        return None
    runs = study.children(f"tags.`{tags.CONFIG_HASH}` = '{job.config_hash}'", since_start=True)
    return runs[0] if runs else None


def job_row(study: Study, axes: list[str], job: Job, report: JobReport, objective: Objective) -> dict:
    values = dict(o.split("=", 1) for o in job.overrides if "=" in o)
    row: dict[str, Any] = {"job": job.num + 1, **{axis: values.get(axis) for axis in axes}}
    run = job_run(study, job, report)
    if run is None:
        row.update(status=report.status or NOT_RUN, note=report.error or "")
        return row
    status = run.info.status
    if status == RUNNING:  # its process was killed (e.g. a parallel worker on Ctrl-C)
        status = KILLED
        study.end_child(run.info.run_id, KILLED, "the sweep ended while this job was running")
    metrics, labels = run.data.metrics, run.data.tags
    end = run.info.end_time or run.info.start_time
    note = labels.get(tags.PRUNED_REASON, "") if status == FINISHED else labels.get(tags.ERROR, "")
    if status == FINISHED and tags.PRUNED in labels:
        status = PRUNED
    if report.skipped:
        earlier = f" (pruned at epoch {labels[tags.PRUNED]})" if tags.PRUNED in labels else ""
        status, note = SKIPPED, f"FINISHED earlier{earlier}"
    row.update(
        status=status,
        **{name: metrics.get(name, math.nan) for name in (objective.metric, objective.test_metric)},
        duration_s=round((end - run.info.start_time) / 1000, 1),
        run_id=run.info.run_id,
        note=note,
        pruned=labels.get(tags.PRUNED),
        seeds=metrics.get("seeds_run") if tags.SEEDS in labels else None,
        **{f"{objective.metric}_std": metrics.get(f"{objective.metric}_std")},
    )
    return row


def summary_table(rows: list[dict], axes: list[str], objective: Objective) -> pd.DataFrame:
    """One row per job, best objective first; jobs without a result last. With seeds=N, a job's figures are
    the means over its seeds, and the table says how many seeds and their std."""
    frame = pd.DataFrame(rows)
    metric, spread = objective.metric, f"{objective.metric}_std"
    seeded = ["seeds", spread] if "seeds" in frame and frame["seeds"].notna().any() else []
    figures = [metric, *seeded, *([objective.test_metric] if objective.test_metric != metric else [])]
    columns = ["job", *axes, "status", *figures, "duration_s", "run_id", "note"]
    table = frame.reindex(columns=[*columns, "pruned"])
    table["note"] = table["note"].fillna("")
    if seeded:
        table["seeds"] = table["seeds"].astype("Int64")
    table = table.sort_values([metric, "job"], ascending=[not objective.maximize, True], na_position="last")
    return table.round({name: 4 for name in (metric, spread, objective.test_metric)}).reset_index(drop=True)


def objective_curves(
    study: Study, table: pd.DataFrame, axes: list[str], metric: str
) -> tuple[dict[str, pd.Series], set[str]]:
    """Each job's `metric` per epoch (1-based), by label; and the labels of the pruned jobs."""
    curves, pruned = {}, set()
    for row in table.to_dict("records"):
        if not isinstance(row.get("run_id"), str):
            continue
        curve = _curve(study, row["run_id"], metric, seeded=pd.notna(row.get("seeds")))
        if len(curve):
            label = " ".join(f"{a}={row[a]}" for a in axes) or f"job {row['job']}"
            if isinstance(row.get("pruned"), str):
                label += f" (pruned at {row['pruned']})"
                pruned.add(label)
            curves[label] = curve
    return curves, pruned


def _curve(study: Study, run_id: str, metric: str, seeded: bool) -> pd.Series:
    """A job's `metric` per epoch (1-based); with seeds, the mean over its seeds' runs."""
    ids = [run_id]
    if seeded:  # its seeds' runs nested under it (seeds reused from elsewhere stay where they ran)
        nested = study.client.search_runs([study.experiment_id], f"tags.`{tags.PARENT}` = '{run_id}'")
        ids = [r.info.run_id for r in nested] or ids
    series = []
    for one in ids:
        history = study.client.get_metric_history(one, metric)
        series.append(pd.Series({m.step + 1: m.value for m in history}, dtype=float))
    return pd.concat(series, axis=1).mean(axis=1).sort_index() if series else pd.Series(dtype=float)


def counts_and_best(
    table: pd.DataFrame, axes: list[str], objective: Objective
) -> tuple[dict[str, float], dict[str, str]]:
    """The parent's metrics (job counts, the best job's results: best_val_accuracy, ...) and tags (best run,
    failures)."""
    metrics = studies.count_outcomes(table["status"])
    labels = {tags.ERROR: ""}  # cleared when a resumed sweep no longer fails
    good = table[table["status"].isin(DONE) & table[objective.metric].notna()]
    if len(good):
        best = good.iloc[0]
        for name in dict.fromkeys((objective.metric, objective.test_metric)):
            metrics[f"best_{name}"] = float(best[name])
        labels.update(
            studies.best_labels(str(best["run_id"]), " ".join(f"{a}={best[a]}" for a in axes) or f"job {best['job']}")
        )
    failed = [failure_line(row) for row in table.to_dict("records") if row["status"] not in DONE]
    if failed:
        labels[tags.ERROR] = "; ".join(failed)[:5000]
    return metrics, labels


def failure_line(row: dict) -> str:
    return f"job {row['job']} {row['status']}" + (f": {row['note']}" if row["note"] else "")


def print_summary(plan: Plan, status: str, table: pd.DataFrame, metrics: dict, labels: dict) -> None:
    names = dict.fromkeys((plan.objective.metric, plan.objective.test_metric))
    print(
        f"\nsweeplab: sweep '{plan.name}' {status}: "
        f"{metrics['jobs_finished']} of {len(table)} jobs finished "
        f"({metrics['jobs_skipped']} skipped as already done), {metrics['jobs_failed']} failed, "
        f"{metrics['jobs_killed']} killed or not run",
        flush=True,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(table.drop(columns=["run_id", "pruned"]).to_string(index=False), flush=True)
    if tags.BEST_RUN in labels:
        figures = " ".join(f"{name}={metrics[f'best_{name}']:.4f}" for name in names)
        print(f"sweeplab: best {labels[tags.BEST]}: {figures} (run {labels[tags.BEST_RUN]})")
    for row in table.to_dict("records"):
        if row["status"] not in DONE:
            print(f"sweeplab: {failure_line(row)}", file=sys.stderr, flush=True)
    print(f"sweeplab: summary in {plan.directory}/summary.md", flush=True)


def finish_sweep(study: Study, plan: Plan, reached_end: bool) -> str:
    """The sweep's end on its parent: each job's row (a child still RUNNING ended KILLED), the summary saved,
    printed and logged, compare.py's report printed; returns the status the parent run ends with."""
    from sweeplab.console import markdown
    from sweeplab.plots import plot_curves, plot_search

    axes, objective, metric = list(plan.axes), plan.objective, plan.objective.metric
    rows = [job_row(study, axes, job, report, objective) for job, report in what_ran(plan, study)]
    table = summary_table(rows, axes, objective)
    status = studies.final_status(table["status"], reached_end)
    metrics, labels = counts_and_best(table, axes, objective)

    plan.directory.mkdir(parents=True, exist_ok=True)
    files = [plan.directory / name for name in ("summary.csv", "summary.md", f"{metric}.png", "trials.png")]
    table.to_csv(files[0], index=False)
    files[1].write_text(markdown(table))
    in_order = table.assign(trial=table["job"])
    title = f"{plan.name}: {metric} of each job"
    plot_search(in_order, metric, files[3], title, params=axes, maximize=objective.maximize)
    curves, pruned = objective_curves(study, table, axes, metric)
    plot_curves(curves, files[2], f"{plan.name}: {metric} per epoch", ylabel=metric, dashed=pruned)
    print_summary(plan, status, table, metrics, labels)
    study.record(metrics, labels, files)
    print_comparison(study.run_id, plan.axes, table, objective)
    link = run_link(study.experiment_id, study.run_id, study.client.tracking_uri)
    print(f"sweeplab: parent run {study.run_id} -> {link}", flush=True)
    return status


def print_comparison(parent: str, axes: dict[str, str], table: pd.DataFrame, objective: Objective) -> None:
    """compare.py's report for the sweep, grouped by its first swept axis of listed values other than the
    seed (a sampled range, e.g. Optuna's interval, has a value per job: nothing to group)."""
    listed = [axis for axis, values in axes.items() if "(" not in values or values.startswith("choice(")]
    by = next((axis for axis in listed if axis != "seed"), next(iter(axes), None))
    if by is None or not (table["status"] == "FINISHED").any():
        return
    from sweeplab.compare.runs import report_for_sweep

    try:
        print(report_for_sweep(parent, by=by, metric=objective.metric, maximize=objective.maximize), flush=True)
    except Exception as err:  # noqa: BLE001 - the sweep itself is done; a report problem must not fail it
        print(f"sweeplab: no comparison report ({type(err).__name__}: {err})", file=sys.stderr, flush=True)
