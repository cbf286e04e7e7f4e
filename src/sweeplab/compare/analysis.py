"""Compare groups of runs by a param: per-group table, mean learning curves, a winner judged against the noise.

Pure (pandas in, a `Comparison` out) and free of MLflow, so it can be tested on hand-made frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sweeplab.errors import CompareError

METRIC = "val_accuracy"  # the metric that names the winner (final epoch, mean over the group's runs)
TARGET_ACCURACY = 0.85  # "epochs to reach 85% val_accuracy"
PRUNED_TAG = "sweeplab.pruned"  # sweeplab.tracking.tags.PRUNED, named here to keep this module pure
HISTORY_KEYS = ("val_accuracy", "val_loss", "epoch_time")
FINISHED = "FINISHED"  # MLflow's RunStatus.FINISHED as search_runs writes it


@dataclass
class RunSet:
    """Runs read from MLflow: search_runs' frame and each run's per-epoch history (index = epoch, from 0)."""

    runs: pd.DataFrame
    histories: dict[str, pd.DataFrame]
    experiment: str
    sweep: str | None = None  # the parent run's id when restricted to one sweep
    sweep_name: str | None = None


@dataclass
class Comparison:
    """What compare_runs found: the tables, the curves and the verdict."""

    by: str  # the param key runs were grouped by, e.g. optimizer.name
    per_run: pd.DataFrame  # one row per counted run: group, final metrics, epochs to target, s/epoch
    table: pd.DataFrame  # one row per group (index), numeric
    curves: pd.DataFrame  # group, epoch (1-based), metric, mean, std, runs
    winner: str | None
    runner_up: str | None
    margin: float | None  # winner's mean METRIC minus the runner-up's
    noise: float | None  # the larger std of the two groups (None: a group has a single run)
    verdict: str
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> count
    title: str = ""


def group_sort_key(value: str) -> tuple[int, float, str]:
    """Numbers in numeric order ('0.001' < '0.01' < '0.1'), then other values alphabetically."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def resolve_param(columns: pd.Index, by: str) -> str:
    """`optimizer` means optimizer.name (the optimizer group's choice); any exact param name works too."""
    params = [c.removeprefix("params.") for c in columns if c.startswith("params.")]
    for candidate in (by, f"{by}.name"):
        if candidate in params:
            return candidate
    known = ", ".join(sorted(p for p in params if "." not in p or p.endswith(".name")))
    raise CompareError(f"no run has a param '{by}'; group by one of: {known}")


def epochs_to_reach(history: pd.DataFrame | None, target: float = TARGET_ACCURACY) -> float:
    """The first epoch (1-based) whose val_accuracy reached `target`, NaN if none did."""
    if history is None or "val_accuracy" not in history:
        return math.nan
    reached = history.index[history["val_accuracy"] >= target]
    return float(reached[0] + 1) if len(reached) else math.nan


def _final(run: pd.Series, history: pd.DataFrame | None, key: str) -> float:
    if history is not None and key in history and history[key].notna().any():
        return float(history[key].dropna().iloc[-1])
    value = run.get(f"metrics.{key}")
    return float(value) if value is not None and pd.notna(value) else math.nan


def per_run_table(runs: pd.DataFrame, histories: dict[str, pd.DataFrame], param: str) -> pd.DataFrame:
    rows = []
    for _, run in runs.iterrows():
        history = histories.get(run["run_id"])
        times = history["epoch_time"] if history is not None and "epoch_time" in history else pd.Series()
        rows.append(
            {
                "group": str(run[f"params.{param}"]),
                "run_id": run["run_id"],
                "run_name": run.get("tags.mlflow.runName", ""),
                "val_accuracy": _final(run, history, "val_accuracy"),
                "val_loss": _final(run, history, "val_loss"),
                "test_accuracy": _final(run, history, "test_accuracy"),
                "epochs_to_target": epochs_to_reach(history),
                "seconds_per_epoch": float(times.mean()) if len(times) else math.nan,
                "pruned_at": _pruned_at(run),
            }
        )
    return pd.DataFrame(rows)


def _pruned_at(run: pd.Series) -> float:
    """The last epoch of a run the pruner stopped early (tag sweeplab.pruned), NaN for a run that ran out."""
    value = run.get(f"tags.{PRUNED_TAG}")
    return float(value) if isinstance(value, str) and value else math.nan


def group_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """Per group: run count, best/mean/std of the final metrics, epochs to target, s/epoch, best run."""
    grouped = per_run.groupby("group", sort=False)
    table = pd.DataFrame(
        {
            "runs": grouped.size(),
            "val_accuracy_best": grouped["val_accuracy"].max(),
            "val_accuracy_mean": grouped["val_accuracy"].mean(),
            "val_accuracy_std": grouped["val_accuracy"].std(),  # ddof=1; NaN for a single run
            "test_accuracy_best": grouped["test_accuracy"].max(),
            "test_accuracy_mean": grouped["test_accuracy"].mean(),
            "test_accuracy_std": grouped["test_accuracy"].std(),
            "val_loss_mean": grouped["val_loss"].mean(),
            "val_loss_std": grouped["val_loss"].std(),
            "epochs_to_target_mean": grouped["epochs_to_target"].mean(),
            "reached_target": grouped["epochs_to_target"].count(),
            "seconds_per_epoch": grouped["seconds_per_epoch"].mean(),
            "best_run_id": per_run.loc[grouped["val_accuracy"].idxmax(), ["group", "run_id"]].set_index("group")[
                "run_id"
            ],
        }
    )
    table.index.name = None
    return table.loc[sorted(table.index, key=group_sort_key)]


def curve_table(per_run: pd.DataFrame, histories: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean and std across a group's runs of val_accuracy and val_loss at each epoch."""
    columns: dict[str, list] = {"group": [], "epoch": [], "metric": [], "v": []}
    for run_id, group in zip(per_run["run_id"], per_run["group"], strict=True):
        history = histories.get(run_id)
        if history is None:
            continue
        for metric in ("val_accuracy", "val_loss"):
            if metric in history:
                values = history[metric].dropna()
                columns["group"].append(np.full(len(values), group, dtype=object))
                columns["epoch"].append(values.index.to_numpy() + 1)
                columns["metric"].append(np.full(len(values), metric, dtype=object))
                columns["v"].append(values.to_numpy())
    if not columns["v"]:
        return pd.DataFrame(columns=["group", "epoch", "metric", "mean", "std", "runs"])
    long = pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})
    curves = long.groupby(["group", "metric", "epoch"])["v"].agg(["mean", "std", "count"]).reset_index()
    return curves.rename(columns={"count": "runs"})


def judge(table: pd.DataFrame) -> tuple[str | None, str | None, float | None, float | None, str]:
    """Winner by mean final METRIC; does its lead over the runner-up exceed the spread across seeds?"""
    if table.empty:
        return None, None, None, None, "No finished runs to compare."
    ranked = table.sort_values(f"{METRIC}_mean", ascending=False, kind="stable")
    winner = str(ranked.index[0])
    best = ranked.iloc[0]
    if len(ranked) == 1:
        return winner, None, None, None, f"Only one group ({winner}): nothing to compare it with."
    runner_up = str(ranked.index[1])
    second = ranked.iloc[1]
    margin = float(best[f"{METRIC}_mean"] - second[f"{METRIC}_mean"])
    lead = (
        f"{winner} wins on mean final {METRIC} ({best[f'{METRIC}_mean']:.4f} over {int(best['runs'])} run(s) "
        f"vs {second[f'{METRIC}_mean']:.4f} for runner-up {runner_up}): a lead of {margin:.4f}"
    )
    if best["runs"] < 2 or second["runs"] < 2:
        return (
            winner,
            runner_up,
            margin,
            None,
            (
                f"{lead}, but with a single run per group there is no spread across seeds to judge it by: "
                "sweep more seeds before trusting it."
            ),
        )
    noise = float(max(best[f"{METRIC}_std"], second[f"{METRIC}_std"]))
    if margin > noise:
        verdict = f"{lead}, larger than the spread across seeds (std up to {noise:.4f}): a real lead."
    else:
        verdict = (
            f"{lead}, within the spread across seeds (std up to {noise:.4f}): too close to call, this could be noise."
        )
    return winner, runner_up, margin, noise, verdict


def compare_runs(runs: pd.DataFrame, histories: dict[str, pd.DataFrame], by: str, title: str = "") -> Comparison:
    """Group FINISHED runs by the param `by` and compare them; other runs are counted in `left_out`."""
    if runs.empty:
        raise CompareError(f"no runs to compare{' in ' + title if title else ''}")
    param = resolve_param(runs.columns, by)
    left_out: dict[str, int] = {}
    finished = runs["status"] == FINISHED
    for status, count in runs.loc[~finished, "status"].value_counts().items():
        left_out[f"not finished ({status})"] = int(count)
    counted = runs[finished]
    has_param = counted[f"params.{param}"].notna()
    if (~has_param).any():
        left_out[f"without param {param} (e.g. sweep parents)"] = int((~has_param).sum())
    counted = counted[has_param]
    if counted.empty:
        raise CompareError(f"no FINISHED run with param {param}{' in ' + title if title else ''}")
    per_run = per_run_table(counted, histories, param)
    table = group_table(per_run)
    winner, runner_up, margin, noise, verdict = judge(table)
    return Comparison(
        by=param,
        per_run=per_run,
        table=table,
        curves=curve_table(per_run, histories),
        winner=winner,
        runner_up=runner_up,
        margin=margin,
        noise=noise,
        verdict=verdict,
        left_out=left_out,
        title=title,
    )
