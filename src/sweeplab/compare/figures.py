"""A comparison's figures as PNG: group means with their intervals, the P(A > B) matrix, learning curves
with bootstrap bands, and the expected best score against the number of trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sweeplab.compare.analysis import Comparison


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, which sweeplab.plots selects; imported only when plotting."""
    import sweeplab.plots

    return sweeplab.plots.plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def plot_groups(comparison: Comparison, path: Path) -> Path:
    """Each group's mean with its 95% bootstrap interval, each run as a dot (x: stopped by the pruner)."""
    plt = _pyplot()
    t = comparison.table
    groups = [str(g) for g in t.index]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) + 2), 4.5))
    x = np.arange(len(groups))
    errors = np.nan_to_num(np.vstack([t["mean"] - t["ci_low"], t["ci_high"] - t["mean"]]).clip(min=0))
    ax.bar(x, t["mean"], yerr=errors, capsize=6, color="tab:blue", alpha=0.6)
    for i, group in enumerate(t.index):
        runs = comparison.per_run[comparison.per_run["group"] == group]
        stopped = runs["pruned_at"].notna().to_numpy()
        ax.plot(np.full(int((~stopped).sum()), i), runs.loc[~stopped, "value"], "k.", zorder=3)
        ax.plot(np.full(int(stopped.sum()), i), runs.loc[stopped, "value"], "rx", zorder=3)
    values = comparison.per_run["value"].dropna()
    low = float(values.min()) if len(values) else 0.0
    ax.set_ylim(max(0.0, low - 0.05), min(1.0, float(values.max()) + 0.03) if len(values) else 1.0)
    ax.set_xticks(x, groups)
    ax.set_xlabel(comparison.by)
    ax.set_ylabel(f"{comparison.metric} ({comparison.at} epoch)")
    ax.set_title("mean, 95% bootstrap interval\n(dots: runs, x: pruned)", fontsize=10)
    ax.grid(True, axis="y")
    return _save(fig, path)


def plot_improvement(comparison: Comparison, path: Path) -> Path:
    """P(row > column) for every two groups as a heat map, 0.5 (a coin toss) white."""
    plt = _pyplot()
    matrix = comparison.improvement
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(3.0 + 0.8 * n, 2.0 + 0.7 * n))
    image = ax.imshow(matrix.to_numpy(float), cmap="RdBu", vmin=0, vmax=1)
    ax.set_xticks(range(n), [str(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(i) for i in matrix.index])
    for (i, j), value in np.ndenumerate(matrix.to_numpy(float)):
        if not np.isnan(value):
            color = "white" if abs(value - 0.5) > 0.3 else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=9, color=color)
    ax.set_xlabel("B")
    ax.set_ylabel("A")
    ax.set_title("P(A > B)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def plot_curves(comparison: Comparison, path: Path) -> Path:
    """The compared metric and val_loss per epoch for each group, shaded: the 95% bootstrap band of the mean."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    metrics = list(dict.fromkeys((comparison.metric, "val_loss")))
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for group in comparison.table.index:
            c = comparison.curves
            c = c[(c["group"] == group) & (c["metric"] == metric)].sort_values("epoch")
            if c.empty:
                continue
            (line,) = ax.plot(c["epoch"], c["mean"], marker="o", label=f"{group} (n={int(c['runs'].max())})")
            ax.fill_between(c["epoch"], c["ci_low"], c["ci_high"], color=line.get_color(), alpha=0.2)
        ax.set_title(f"{metric} (mean, 95% bootstrap band)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True)
        if ax.lines:
            ax.legend(title=comparison.by, fontsize=8)
    return _save(fig, path)


def plot_expected_best(comparison: Comparison, path: Path) -> Path:
    """Expected best score of k trials against k, per group and over all trials (Dodge et al. 2019)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    table = comparison.expected_best
    for group, curve in table.groupby("group", sort=False):
        style = {"color": "black", "linewidth": 2.5} if group == "all" else {}
        ax.plot(curve["trials"], curve["expected_best"], marker=".", label=str(group), **style)
    ax.set_xscale("log" if table["trials"].max() > 20 else "linear")
    ax.set_xlabel("trials (configs, each its mean over seeds)")
    ax.set_ylabel(f"expected best {comparison.metric}")
    ax.set_title("expected best score against the number of trials")
    ax.grid(True)
    ax.legend(title=comparison.by, fontsize=8)
    return _save(fig, path)
