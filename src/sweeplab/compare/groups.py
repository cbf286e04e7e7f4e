"""Per-group numbers of a comparison: one bootstrap resample matrix per group, the group table (mean, std,
IQM and the 95% interval of the mean) and the learning curves with their bootstrap bands. Pure pandas/numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweeplab.compare import stats

CURVE_RESAMPLES = 2_000  # of the group's resamples, for the learning curves' bands (a picture, not a test)


@dataclass
class Resampled:
    """One group's runs that have a value, and how often each is drawn in each bootstrap resample."""

    rows: pd.Index  # the group's rows of per_run with a value
    values: np.ndarray
    seeds: np.ndarray  # as text, "" where a run has none
    strata: np.ndarray  # stratum number of each run (0 when the group is resampled as one)
    counts: np.ndarray  # (resamples, runs)


def strata_of(keys: pd.Series) -> np.ndarray:
    """Stratum numbers from config keys; one stratum for the whole group when any config has a single run
    (a stratum of one never varies, which would make the interval look narrower than it is)."""
    codes, uniques = pd.factorize(keys)
    if len(uniques) > 1 and np.bincount(codes).min() < 2:
        return np.zeros(len(keys), dtype=int)
    return codes


def resample(per_run: pd.DataFrame, resamples: int = stats.RESAMPLES, seed: int = stats.SEED) -> dict[str, Resampled]:
    """Each group's stratified resample counts, drawn in the order of the group names from one seeded
    generator, so the same runs always give the same intervals."""
    rng = np.random.default_rng(seed)
    found = {}
    for group in sorted(per_run["group"].unique()):
        rows = per_run.index[(per_run["group"] == group) & per_run["value"].notna()]
        strata = strata_of(per_run.loc[rows, "stratum"])
        found[group] = Resampled(
            rows,
            per_run.loc[rows, "value"].to_numpy(dtype=float),
            per_run.loc[rows, "seed"].to_numpy(dtype=str),
            strata,
            stats.resample_counts(strata, rng, resamples),
        )
    return found


def group_table(per_run: pd.DataFrame, resampled: dict[str, Resampled], maximize: bool = True) -> pd.DataFrame:
    """Per group: runs, configs, mean, std, IQM and the 95% bootstrap interval of the mean of the compared
    value, then test accuracy, val_loss, epochs to target, s/epoch and the best run."""
    grouped = per_run.groupby("group", sort=False)
    table = pd.DataFrame(
        {
            "runs": grouped.size(),
            "configs": grouped["stratum"].nunique(),
            "mean": grouped["value"].mean(),
            "std": grouped["value"].std(),  # ddof=1; NaN for a single run
            "iqm": grouped["value"].agg(lambda v: stats.iqm(v.dropna().to_numpy())),
            "best": grouped["value"].max() if maximize else grouped["value"].min(),
            "test_accuracy_mean": grouped["test_accuracy"].mean(),
            "test_accuracy_std": grouped["test_accuracy"].std(),
            "val_loss_mean": grouped["val_loss"].mean(),
            "val_loss_std": grouped["val_loss"].std(),
            "epochs_to_target_mean": grouped["epochs_to_target"].mean(),
            "reached_target": grouped["epochs_to_target"].count(),
            "seconds_per_epoch": grouped["seconds_per_epoch"].mean(),
        }
    )
    low, high = {}, {}
    for group, r in resampled.items():
        if len(r.values):
            means = r.counts @ r.values.astype(np.float32) / len(r.values)
            low[group], high[group] = stats.percentile_interval(means, n=len(r.values))
    table["ci_low"], table["ci_high"] = pd.Series(low, dtype=float), pd.Series(high, dtype=float)
    best = per_run.dropna(subset=["value"])
    pick = best.groupby("group")["value"].idxmax() if maximize else best.groupby("group")["value"].idxmin()
    table["best_run_id"] = best.loc[pick, ["group", "run_id"]].set_index("group")["run_id"]
    table.index.name = None
    return table


CURVE_METRICS = ("val_accuracy", "val_loss")


def run_matrices(
    per_run: pd.DataFrame, histories: dict[str, pd.DataFrame], metrics: tuple[str, ...] = CURVE_METRICS
) -> np.ndarray:
    """Every counted run's `metrics` by epoch in one pass, (metrics, runs, epochs) in per_run's row
    order; NaN where a run has no value (no history, or it stopped early)."""
    found = [histories.get(run_id) for run_id in per_run["run_id"]]
    found = [h if h is not None and len(h) else None for h in found]
    epochs = max((int(h.index.max()) + 1 for h in found if h is not None), default=0)
    matrix = np.full((len(metrics), len(found), epochs), np.nan)
    for row, history in enumerate(found):
        if history is not None:
            values = history.reindex(columns=list(metrics)).to_numpy(dtype=float).T
            matrix[:, row, history.index.to_numpy(dtype=int)] = values
    return matrix


def curve_table(
    per_run: pd.DataFrame,
    histories: dict[str, pd.DataFrame],
    resampled: dict[str, Resampled],
    metrics: tuple[str, ...] = CURVE_METRICS,
) -> pd.DataFrame:
    """Mean `metrics` (val_accuracy and val_loss) of each group at each epoch with the 95% bootstrap band of that mean,
    from the group's first CURVE_RESAMPLES resamples (a run that stopped early counts at the epochs it reached)."""
    parts = []
    metrics = tuple(dict.fromkeys(metrics))
    every = run_matrices(per_run, histories, metrics)
    positions = pd.Series(np.arange(len(per_run)), index=per_run.index)
    for group, r in resampled.items():
        rows = positions[r.rows].to_numpy()
        for metric, all_runs in zip(metrics, every, strict=True):
            matrix = all_runs[rows]  # the group's runs x epochs
            has = ~np.isnan(matrix).all(axis=1)
            if not has.any():
                continue
            present = (~np.isnan(matrix[has])).astype(np.float32)
            values = np.nan_to_num(matrix[has]).astype(np.float32)
            counts = r.counts[:CURVE_RESAMPLES] if has.all() else r.counts[:CURVE_RESAMPLES, has]
            with np.errstate(invalid="ignore", divide="ignore"):
                means = (counts @ values) / (counts @ present)
                mean = values.sum(axis=0) / present.sum(axis=0)
            low, high = stats.percentile_interval(np.where(np.isnan(means), mean, means), n=int(has.sum()))
            curve = pd.DataFrame(
                {
                    "group": group,
                    "metric": metric,
                    "epoch": np.arange(1, matrix.shape[1] + 1),
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "runs": present.sum(axis=0).astype(int),
                }
            )
            parts.append(curve[curve["runs"] > 0])  # epochs only longer runs of other groups reached: none
    columns = ["group", "metric", "epoch", "mean", "ci_low", "ci_high", "runs"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
