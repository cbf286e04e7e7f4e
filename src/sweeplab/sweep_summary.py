"""A sweep's summary: every job's outcome, sorted by val_accuracy, printed, saved and logged to the parent.

The jobs' own reports (sweeplab_job.json in their output folders) say which run each job made or reused;
MLflow says how those runs ended. A job that left no report (killed, never started) is looked up among the
parent's children by its config hash, and any child still RUNNING is ended KILLED here.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from sweeplab import tracking
from sweeplab.sweep_job import REPORT_FILE
from sweeplab.sweeps import Job, Sweep

SKIPPED = "SKIPPED"  # FINISHED earlier, reused
NOT_RUN = "NOT RUN"
GOOD = ("FINISHED", SKIPPED)


def job_reports(directory: Path, parent_run_id: str) -> dict[int, dict[str, Any]]:
    reports: dict[int, dict[str, Any]] = {}
    for path in directory.rglob(REPORT_FILE):
        with contextlib.suppress(OSError, ValueError, KeyError):
            report = json.loads(path.read_text())
            if report.get("parent_run_id") == parent_run_id:
                reports[int(report["num"])] = report
    return reports


def job_run(
    client: MlflowClient, sweep: Sweep, exp_id: str, parent: str, job: Job, report: dict
) -> Run | None:
    if report.get("run_id"):
        return client.get_run(report["run_id"])
    runs = client.search_runs(
        [exp_id],
        f"tags.`mlflow.parentRunId` = '{parent}' and tags.`{tracking.TAG_HASH}` = '{job.config_hash}' "
        f"and attributes.start_time >= {sweep.started_ms}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def job_row(client: MlflowClient, sweep: Sweep, exp_id: str, parent: str, job: Job, report: dict) -> dict:
    values = dict(o.split("=", 1) for o in job.overrides if "=" in o)
    row: dict[str, Any] = {"job": job.num + 1, **{axis: values.get(axis) for axis in sweep.axes}}
    run = job_run(client, sweep, exp_id, parent, job, report)
    if run is None:
        row.update(status="FAILED" if report.get("error") else NOT_RUN, note=report.get("error") or "")
        return row
    status = run.info.status
    if status == "RUNNING":  # its process was killed (e.g. a parallel worker on Ctrl-C)
        status = "KILLED"
        with contextlib.suppress(Exception):
            client.set_tag(run.info.run_id, tracking.TAG_ERROR, "the sweep ended while this job was running")
            client.set_terminated(run.info.run_id, status)
    metrics = run.data.metrics
    end = run.info.end_time or run.info.start_time
    row.update(
        status=SKIPPED if report.get("skipped") else status,
        val_accuracy=metrics.get("val_accuracy", math.nan),
        test_accuracy=metrics.get("test_accuracy", math.nan),
        duration_s=round((end - run.info.start_time) / 1000, 1),
        run_id=run.info.run_id,
        note="FINISHED earlier" if report.get("skipped") else run.data.tags.get(tracking.TAG_ERROR, ""),
    )
    return row


def summary_table(rows: list[dict]) -> pd.DataFrame:
    columns = ["val_accuracy", "test_accuracy", "duration_s", "run_id", "note"]
    table = pd.DataFrame(rows).reindex(columns=[*dict.fromkeys([*rows[0], *columns])])
    table = table.sort_values(["val_accuracy", "job"], ascending=[False, True], na_position="last")
    return table.round({"val_accuracy": 4, "test_accuracy": 4}).reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub table (pandas' to_markdown needs tabulate, which sweeplab does not depend on)."""

    def cell(value: Any) -> str:
        return (
            ""
            if value is None or (isinstance(value, float) and math.isnan(value))
            else str(value).replace("|", "/")
        )

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def plot_val_accuracy(curves: dict[str, pd.Series], path: Path, title: str) -> Path:
    """Every job's val_accuracy per epoch on one figure."""
    import matplotlib.pyplot as plt

    from sweeplab import plots  # noqa: F401  (selects the file-only matplotlib backend)

    fig, ax = plt.subplots(figsize=(9, 5))
    for label, curve in curves.items():
        ax.plot(curve.index, curve.values, marker="o", markersize=3, label=label)
    ax.set(xlabel="epoch", ylabel="val_accuracy", title=title, ylim=(0, 1))
    ax.grid(True)
    if curves:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def val_accuracy_curves(client: MlflowClient, table: pd.DataFrame, axes: list[str]) -> dict[str, pd.Series]:
    curves = {}
    for row in table.to_dict("records"):
        if not isinstance(row.get("run_id"), str):
            continue
        history = sorted(client.get_metric_history(row["run_id"], "val_accuracy"), key=lambda m: m.step)
        if history:
            label = " ".join(f"{a}={row[a]}" for a in axes) or f"job {row['job']}"
            curves[label] = pd.Series([m.value for m in history], index=[m.step + 1 for m in history])
    return curves


def parent_status(table: pd.DataFrame, reached_end: bool) -> str:
    statuses = set(table["status"])
    if not reached_end and statuses & {"KILLED", NOT_RUN}:
        return "KILLED"
    return "FAILED" if statuses - set(GOOD) else "FINISHED"


def summarise(client: MlflowClient, sweep: Sweep, exp_id: str, parent: str, reached_end: bool) -> str:
    """Build, print, save and log the summary; return the status the parent run ends with."""
    reports = job_reports(sweep.directory, parent)
    rows = [job_row(client, sweep, exp_id, parent, job, reports.get(job.num, {})) for job in sweep.jobs]
    table = summary_table(rows)
    status = parent_status(table, reached_end)
    counts = table["status"].value_counts()
    good = table[table["status"].isin(GOOD) & table["val_accuracy"].notna()]
    failed = table[~table["status"].isin(GOOD)]
    axes = list(sweep.axes)

    sweep.directory.mkdir(parents=True, exist_ok=True)
    table.to_csv(sweep.directory / "summary.csv", index=False)
    (sweep.directory / "summary.md").write_text(markdown(table))
    plot_val_accuracy(
        val_accuracy_curves(client, table, axes),
        sweep.directory / "val_accuracy.png",
        f"{sweep.name}: val_accuracy per epoch",
    )
    for name in ("summary.csv", "summary.md", "val_accuracy.png"):
        client.log_artifact(parent, str(sweep.directory / name))

    finished = int(counts.get("FINISHED", 0) + counts.get(SKIPPED, 0))
    metrics = {
        "jobs_total": len(table),
        "jobs_finished": finished,
        "jobs_skipped": int(counts.get(SKIPPED, 0)),
        "jobs_failed": int(counts.get("FAILED", 0)),
        "jobs_killed": int(counts.get("KILLED", 0) + counts.get(NOT_RUN, 0)),
    }
    tags = {tracking.TAG_ERROR: ""}
    if len(good):
        best = good.iloc[0]
        metrics.update(
            best_val_accuracy=float(best["val_accuracy"]), best_test_accuracy=float(best["test_accuracy"])
        )
        tags["sweeplab.best_run_id"] = str(best["run_id"])
        tags["sweeplab.best_job"] = " ".join(f"{a}={best[a]}" for a in axes) or f"job {best['job']}"
    if len(failed):
        tags[tracking.TAG_ERROR] = "; ".join(
            f"job {r.job} {r.status}" + (f": {r.note}" if isinstance(r.note, str) and r.note else "")
            for r in failed.itertuples(index=False)
        )[:5000]
    step = int(sweep.started_ms // 1000)  # one point per (re)run of the sweep
    for key, value in metrics.items():
        client.log_metric(parent, key, value, step=step)
    for key, value in tags.items():
        client.set_tag(parent, key, value)

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(
            f"\nsweeplab: sweep '{sweep.name}' {status}: {finished} of {len(table)} jobs finished "
            f"({metrics['jobs_skipped']} skipped as already done), {metrics['jobs_failed']} failed, "
            f"{metrics['jobs_killed']} killed or not run",
            flush=True,
        )
        print(table.drop(columns=["run_id"]).to_string(index=False), flush=True)
    if len(good):
        print(
            f"sweeplab: best {tags['sweeplab.best_job']}: val_accuracy={metrics['best_val_accuracy']:.4f} "
            f"test_accuracy={metrics['best_test_accuracy']:.4f} (run {tags['sweeplab.best_run_id']})"
        )
    for row in failed.itertuples(index=False):
        reason = f": {row.note}" if isinstance(row.note, str) and row.note else ""
        print(f"sweeplab: job {row.job} {row.status}{reason}", file=sys.stderr)
    print(
        f"sweeplab: summary in {sweep.directory}/summary.md -> {tracking.ui_url(exp_id, parent)} (make ui)",
        flush=True,
    )
    return status
