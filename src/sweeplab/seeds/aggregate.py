"""What a config's seed runs add up to, pure: mean, interquartile mean, standard deviation and a 95% interval.

The interval is Student's t interval of the mean (the seeds are a small sample of the config's outcomes);
compare.py's bootstrap intervals are for comparing groups of runs.
"""

from __future__ import annotations

import math

import numpy as np

from sweeplab.compare.stats import iqm

# The per-run metrics a config's run aggregates over its seeds: every validation and test figure.
AGGREGATED_PREFIXES = ("val_", "test_")


def aggregated(metrics: dict[str, float]) -> dict[str, float]:
    """The validation and test figures of one seed's run (val_accuracy, test_loss, val_mae, ...)."""
    return {k: v for k, v in metrics.items() if k.startswith(AGGREGATED_PREFIXES)}


CONFIDENCE = 0.95


def t_quantile(p: float, dof: int) -> float:
    """Student's t quantile (scipy, imported here: it takes most of a second, and only seeds=N needs it)."""
    from scipy import stats

    return float(stats.t.ppf(p, dof))


def summarize(values: list[float]) -> dict[str, float]:
    """mean, iqm, std (n-1), ci_low, ci_high of the finite values; NaN where too few for a figure."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    n = len(finite)
    if n == 0:
        return {k: math.nan for k in ("mean", "iqm", "std", "ci_low", "ci_high")}
    mean = float(finite.mean())
    std = float(finite.std(ddof=1)) if n > 1 else math.nan
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return {"mean": mean, "iqm": iqm(finite), "std": std, "ci_low": mean - half, "ci_high": mean + half}


def aggregate_metrics(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """The config run's metrics: each aggregated metric's mean under its own name (what sweepers, the summary
    and the UI's charts read), and its `_iqm`, `_std`, `_ci_low`, `_ci_high`; `seeds_run` counts the seeds."""
    found: dict[str, float] = {"seeds_run": float(len(per_seed))}
    for key in dict.fromkeys(k for m in per_seed for k in aggregated(m)):
        values = [m[key] for m in per_seed if key in m]
        if not values:
            continue
        figures = summarize(values)
        found[key] = figures.pop("mean")
        found.update({f"{key}_{name}": value for name, value in figures.items() if math.isfinite(value)})
    return found
