"""Compare groups of runs by a param: per-group statistics with intervals, learning curves, and a verdict
that says what the seeds support.

Pure (pandas in, a `Comparison` out) and free of MLflow, so it can be tested on hand-made frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sweeplab.compare import groups as group_stats
from sweeplab.compare import verdict as verdicts
from sweeplab.compare.stats import RESAMPLES, SEED
from sweeplab.errors import CompareError
from sweeplab.tracking import tags  # names only: tags.py imports nothing, so this module stays pure

METRIC = "val_accuracy"  # the metric that names the winner (at the last or best epoch, see AT)
AT = ("last", "best")  # which epoch's METRIC a run counts with: its last, or its best
TARGET_ACCURACY = 0.85  # "epochs to reach 85% val_accuracy"
STUDY_ROLES = (tags.Role.STUDY, tags.LEGACY_ROLE_STUDY)  # a study's parent (search: older stores)
HISTORY_KEYS = ("val_accuracy", "val_loss", "epoch_time")  # with every other val_ metric the runs log
FINISHED = tags.Status.FINISHED  # as search_runs writes MLflow's RunStatus.FINISHED


@dataclass
class RunSet:
    """Runs read from MLflow: search_runs' frame and each run's per-epoch history (index = epoch, from 0)."""

    runs: pd.DataFrame
    histories: dict[str, pd.DataFrame]
    experiment: str
    sweep: str | None = None  # the parent run's id when restricted to one sweep
    sweep_name: str | None = None
    study_kind: str | None = None  # the parent's sweeplab.study_kind: grid, sweeper or tuner


@dataclass
class Comparison:
    """What compare_runs found: the tables, the curves, the pairwise tests and the verdict."""

    by: str  # the param key runs were grouped by, e.g. optimizer.name
    at: str  # "last" or "best": which epoch's METRIC each run counts with
    per_run: pd.DataFrame  # one row per counted run: group, seed, stratum, value, final metrics, ...
    table: pd.DataFrame  # one row per group (index): runs, mean, std, iqm, ci_low, ci_high, ...
    curves: pd.DataFrame  # group, metric, epoch (1-based), mean, ci_low, ci_high, runs
    comparisons: list[verdicts.PairResult]  # the best group against each other group
    improvement: pd.DataFrame  # P(row > column) for every two groups
    winner: str | None
    runner_up: str | None
    distinguishable: bool
    seeds_needed: int | None  # for the winner against the runner-up, when not distinguishable
    verdict: str
    expected_best: pd.DataFrame | None = None  # group, trials (k), expected best of k (a study's trials)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> count
    title: str = ""
    metric: str = METRIC
    maximize: bool = True  # whether higher values of `metric` are better
    resamples: int = RESAMPLES
    seed: int = SEED


def group_sort_key(value: str) -> tuple[int, float, str]:
    """Numbers in numeric order ('0.001' < '0.01' < '0.1'), then other values alphabetically."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def check_at(at: str) -> str:
    if at not in AT:
        raise CompareError(f"--at must be best or last, not '{at}'")
    return at


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


def _final(run: pd.Series, history: pd.DataFrame | None, key: str, at: str = "last", maximize: bool = True) -> float:
    """The run's `key` at its last epoch (or its best, the highest or with `maximize` false the lowest, with
    at="best"); the logged metric when there is no history."""
    if history is not None and key in history:
        values = history[key].to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        if len(values):
            best = values.max() if maximize else values.min()
            return float(best if at == "best" else values[-1])
    value = run.get(f"metrics.{key}")
    return float(value) if value is not None and pd.notna(value) else math.nan


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def strata_keys(runs: pd.DataFrame) -> pd.Series:
    """Each run's config without its seed: the tag sweeplab.config_group, else its params other than the seed
    (older runs), so that runs differing only by seed fall in one stratum."""
    params = [c for c in runs.columns if c.startswith("params.") and c != "params.seed" and "tuner/" not in c]
    params = [c for c in params if not c.startswith("params.sweep.")]
    if params:
        fallback = "params " + runs.groupby(params, dropna=False, sort=False).ngroup().astype(str)
    else:
        fallback = pd.Series("", index=runs.index)
    column = f"tags.{tags.CONFIG_GROUP}"
    if column not in runs:
        return fallback
    tagged = runs[column].fillna("").astype(str)
    return tagged.where(tagged != "", fallback)


def per_run_table(
    runs: pd.DataFrame,
    histories: dict[str, pd.DataFrame],
    param: str,
    at: str,
    metric: str = METRIC,
    maximize: bool = True,
) -> pd.DataFrame:
    """One row per run: its group, seed, stratum, `value` (the metric at its `at` epoch) and final figures."""
    rows = []
    for (_, run), stratum in zip(runs.iterrows(), strata_keys(runs), strict=True):
        history = histories.get(run["run_id"])
        times = history["epoch_time"] if history is not None and "epoch_time" in history else pd.Series()
        last = _final(run, history, metric)
        rows.append(
            {
                "group": str(run[f"params.{param}"]),
                "run_id": run["run_id"],
                "run_name": run.get("tags.mlflow.runName", ""),
                "seed": _text(run.get("params.seed")),
                "stratum": stratum,
                "value": _final(run, history, metric, at, maximize) if at == "best" else last,
                metric: last,
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
    value = run.get(f"tags.{tags.PRUNED}")
    return float(value) if isinstance(value, str) and value else math.nan


def leaf_runs(runs: pd.DataFrame, left_out: dict[str, int]) -> pd.DataFrame:
    """Runs that trained one seed: not a study's parent, not a run aggregating its seed runs (those are
    counted through their seeds); what is dropped is counted in `left_out`."""
    role = runs.get(f"tags.{tags.ROLE}", pd.Series("", index=runs.index)).fillna("")
    seeds = runs.get(f"tags.{tags.SEEDS}", pd.Series("", index=runs.index)).fillna("")
    parents, aggregates = role.isin(STUDY_ROLES), (seeds != "") & ~role.isin(STUDY_ROLES)
    if parents.any():
        left_out["study parents"] = int(parents.sum())
    if aggregates.any():
        left_out["aggregates of seed runs (their seeds are counted)"] = int(aggregates.sum())
    return runs[~parents & ~aggregates]


def counted_runs(runs: pd.DataFrame, param: str, left_out: dict[str, int]) -> pd.DataFrame:
    """The FINISHED leaf runs that have the param, in the bootstrap's (reproducible) order; the others are
    counted in `left_out` by why."""
    runs = leaf_runs(runs, left_out)
    finished = runs["status"] == FINISHED
    for status, count in runs.loc[~finished, "status"].value_counts().items():
        left_out[f"not finished ({status})"] = int(count)
    counted = runs[finished]
    has_param = counted[f"params.{param}"].notna()
    if (~has_param).any():
        left_out[f"without param {param}"] = int((~has_param).sum())
    return counted[has_param].sort_values("run_id", kind="stable")


def require_metric(counted: pd.DataFrame, metric: str) -> None:
    """CompareError naming the metrics the runs do log, when none of them logs `metric`."""
    if f"metrics.{metric}" not in counted.columns or counted[f"metrics.{metric}"].isna().all():
        logged = sorted(c.removeprefix("metrics.") for c in counted.columns if c.startswith("metrics."))
        raise CompareError(f"--metric {metric}: no run logs it; the runs log {' '.join(logged)}")


def compare_runs(
    runs: pd.DataFrame,
    histories: dict[str, pd.DataFrame],
    by: str,
    title: str = "",
    at: str = "last",
    expected_best: bool = False,
    metric: str = METRIC,
    maximize: bool = True,
) -> Comparison:
    """Group FINISHED leaf runs by the param `by` and compare them at their `at` epoch; other runs are
    counted in `left_out`. `expected_best`: also the expected best score against the number of trials (a
    sampled study's runs)."""
    check_at(at)
    if runs.empty:
        raise CompareError(f"no runs to compare{' in ' + title if title else ''}")
    param = resolve_param(runs.columns, by)
    left_out: dict[str, int] = {}
    counted = counted_runs(runs, param, left_out)
    if counted.empty:
        raise CompareError(f"no FINISHED run with param {param}{' in ' + title if title else ''}")
    require_metric(counted, metric)
    per_run = per_run_table(counted, histories, param, at, metric, maximize)
    resampled = group_stats.resample(per_run)
    table = group_stats.group_table(per_run, resampled, maximize)
    table = table.loc[sorted(table.index, key=group_sort_key)]
    better = "higher" if maximize else "lower"
    found = verdicts.judge(per_run, table, resampled, f"{metric} at the {at} epoch ({better} is better)", maximize)
    return Comparison(
        by=param,
        at=at,
        per_run=per_run,
        table=table,
        curves=group_stats.curve_table(per_run, histories, resampled, (metric, "val_loss")),
        comparisons=found.comparisons,
        improvement=verdicts.improvement_table(per_run, list(table.index), maximize),
        winner=found.winner,
        runner_up=found.runner_up,
        distinguishable=found.distinguishable,
        seeds_needed=found.seeds_needed,
        verdict=found.text,
        expected_best=verdicts.expected_best_table(per_run, maximize) if expected_best else None,
        left_out=left_out,
        title=title,
        metric=metric,
        maximize=maximize,
    )
