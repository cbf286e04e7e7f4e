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


def job_run(client: MlflowClient, sweep: Sweep, exp_id: str, parent: str, job: Job, report: dict) -> Run | None:
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
        row.update(status=report.get("status") or NOT_RUN, note=report.get("error") or "")
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


def summary_table(rows: list[dict], axes: list[str]) -> pd.DataFrame:
    """One row per job, best val_accuracy first; jobs without a result last."""
    columns = ["job", *axes, "status", "val_accuracy", "test_accuracy", "duration_s", "run_id", "note"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table["note"] = table["note"].fillna("")
    table = table.sort_values(["val_accuracy", "job"], ascending=[False, True], na_position="last")
    return table.round({"val_accuracy": 4, "test_accuracy": 4}).reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub table (pandas' to_markdown needs tabulate, which sweeplab does not depend on)."""

    def cell(value: Any) -> str:
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).replace("|", "/")

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


def counts_and_best(table: pd.DataFrame, axes: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """The parent's metrics (job counts, best job's results) and tags (best run, failures)."""
    counts = table["status"].value_counts()
    metrics: dict[str, float] = {
        "jobs_total": len(table),
        "jobs_finished": int(counts.get("FINISHED", 0) + counts.get(SKIPPED, 0)),
        "jobs_skipped": int(counts.get(SKIPPED, 0)),
        "jobs_failed": int(counts.get("FAILED", 0)),
        "jobs_killed": int(counts.get("KILLED", 0) + counts.get(NOT_RUN, 0)),
    }
    tags = {tracking.TAG_ERROR: ""}  # cleared when a resumed sweep no longer fails
    good = table[table["status"].isin(GOOD) & table["val_accuracy"].notna()]
    if len(good):
        best = good.iloc[0]
        metrics["best_val_accuracy"] = float(best["val_accuracy"])
        metrics["best_test_accuracy"] = float(best["test_accuracy"])
        tags["sweeplab.best_run_id"] = str(best["run_id"])
        tags["sweeplab.best_job"] = " ".join(f"{a}={best[a]}" for a in axes) or f"job {best['job']}"
    failed = [failure_line(row) for row in table.to_dict("records") if row["status"] not in GOOD]
    if failed:
        tags[tracking.TAG_ERROR] = "; ".join(failed)[:5000]
    return metrics, tags


def failure_line(row: dict) -> str:
    return f"job {row['job']} {row['status']}" + (f": {row['note']}" if row["note"] else "")


def print_summary(sweep: Sweep, status: str, table: pd.DataFrame, metrics: dict, tags: dict) -> None:
    print(
        f"\nsweeplab: sweep '{sweep.name}' {status}: "
        f"{metrics['jobs_finished']} of {len(table)} jobs finished "
        f"({metrics['jobs_skipped']} skipped as already done), {metrics['jobs_failed']} failed, "
        f"{metrics['jobs_killed']} killed or not run",
        flush=True,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(table.drop(columns=["run_id"]).to_string(index=False), flush=True)
    if "sweeplab.best_run_id" in tags:
        print(
            f"sweeplab: best {tags['sweeplab.best_job']}: val_accuracy={metrics['best_val_accuracy']:.4f} "
            f"test_accuracy={metrics['best_test_accuracy']:.4f} (run {tags['sweeplab.best_run_id']})"
        )
    for row in table.to_dict("records"):
        if row["status"] not in GOOD:
            print(f"sweeplab: {failure_line(row)}", file=sys.stderr, flush=True)
    print(f"sweeplab: summary in {sweep.directory}/summary.md", flush=True)


def summarise(client: MlflowClient, sweep: Sweep, exp_id: str, parent: str, reached_end: bool) -> str:
    """Build, save, print and log the summary; return the status the parent run ends with."""
    reports = job_reports(sweep.directory, parent)
    axes = list(sweep.axes)
    rows = [job_row(client, sweep, exp_id, parent, job, reports.get(job.num, {})) for job in sweep.jobs]
    table = summary_table(rows, axes)
    status = parent_status(table, reached_end)
    metrics, tags = counts_and_best(table, axes)

    sweep.directory.mkdir(parents=True, exist_ok=True)
    files = [sweep.directory / name for name in ("summary.csv", "summary.md", "val_accuracy.png")]
    table.to_csv(files[0], index=False)
    files[1].write_text(markdown(table))
    plot_val_accuracy(val_accuracy_curves(client, table, axes), files[2], f"{sweep.name}: val_accuracy per epoch")
    print_summary(sweep, status, table, metrics, tags)

    for path in files:
        client.log_artifact(parent, str(path))
    # Step 0 each time: MLflow shows the newest value, and a resumed sweep's history keeps the old ones.
    for key, value in metrics.items():
        client.log_metric(parent, key, value)
    for key, value in tags.items():
        client.set_tag(parent, key, value)
    print_comparison(parent, axes, table)
    print(f"sweeplab: parent run {parent} -> {tracking.ui_url(exp_id, parent)} (make ui)", flush=True)
    return status


def print_comparison(parent: str, axes: list[str], table: pd.DataFrame) -> None:
    """compare.py's report for the sweep, grouped by its first swept axis other than the seed."""
    by = next((axis for axis in axes if axis != "seed"), axes[0] if axes else None)
    if by is None or not (table["status"] == "FINISHED").any():
        return
    from sweeplab.compare import report_for_sweep

    try:
        print(report_for_sweep(parent, by=by), flush=True)
    except Exception as err:  # noqa: BLE001 - the sweep itself is done; a report problem must not fail it
        print(f"sweeplab: no comparison report ({type(err).__name__}: {err})", flush=True)
