"""A study's search as one figure: the objective of each trial in order with the running best, and the
objective against each searched hyperparameter. Used for Keras Tuner searches, sweeps of any sweeper, and
compare.py's report on a study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from sweeplab.plots import plt

ORDER = "trial"  # the column holding each trial's position in the search, from 1
BOOKKEEPING = {ORDER, "trial_id", "job", "status", "score", "best_step", "run_id", "note", "duration_s", "pruned"}


def searched(trials: pd.DataFrame, objective: str) -> list[str]:
    """The columns that vary across trials, less bookkeeping (Keras Tuner's `tuner/...` values included)."""
    return [
        c
        for c in trials.columns
        if c not in BOOKKEEPING and c != objective and not str(c).startswith("tuner/") and trials[c].nunique() > 1
    ]


def numeric(values: pd.Series) -> pd.Series | None:
    """`values` as numbers when every one given is a number (sweep values arrive as text), else None."""
    converted = pd.to_numeric(values, errors="coerce")
    return converted if converted.notna().sum() == values.notna().sum() else None


def _by_param(ax: object, trials: pd.DataFrame, objective: str, param: str, best: int | None) -> None:
    y = trials[objective]
    values = numeric(trials[param])
    if values is not None:
        x = values
        positive = x[x > 0]
        if len(positive) == x.notna().sum() and positive.max() / positive.min() >= 20:
            ax.set_xscale("log")
        elif (x.dropna() % 1 == 0).all():
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # depth, units, seed
    else:
        labels = sorted(trials[param].dropna().astype(str).unique())
        x = trials[param].astype(str).map({v: i for i, v in enumerate(labels)})
        tilted = len(labels) > 3
        ax.set_xticks(range(len(labels)), labels, rotation=30 if tilted else 0, ha="right" if tilted else "center")
        ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.scatter(x, y, s=22, color="tab:blue", alpha=0.8)
    if best is not None:
        ax.scatter(x.loc[best], y.loc[best], s=90, marker="*", color="tab:orange", zorder=3)
    ax.set(xlabel=param, ylabel=objective)
    ax.grid(True, alpha=0.4)


def plot_search(
    trials: pd.DataFrame, objective: str, path: Path, title: str, params: list[str] | None = None, maximize: bool = True
) -> Path:
    """`trials`: one row per trial with its position (`trial`), the objective and its values; failed trials
    have no objective and show as a gap. The best trial is a star in every panel."""
    trials = trials.sort_values(ORDER).reset_index(drop=True)
    params = searched(trials, objective) if params is None else params
    y = pd.to_numeric(trials[objective], errors="coerce")
    trials = trials.assign(**{objective: y})
    best = (y.idxmax() if maximize else y.idxmin()) if y.notna().any() else None

    panels = 1 + len(params)
    columns = min(3, panels)
    rows = int(np.ceil(panels / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.8 * rows), squeeze=False)
    first = axes[0][0]
    first.plot(trials[ORDER], y, "o", color="tab:blue", label=objective)
    running = y.cummax() if maximize else y.cummin()
    first.step(trials[ORDER], running, where="post", color="tab:orange", label="best so far")
    failed = trials[ORDER][y.isna()]
    if len(failed):
        low = float(np.nanmin(y)) if y.notna().any() else 0.0
        first.plot(failed, np.full(len(failed), low), "x", color="tab:red", label="no result")
    first.set(xlabel="trial", ylabel=objective, title="in the order they ran")
    first.xaxis.get_major_locator().set_params(integer=True)
    first.grid(True, alpha=0.4)
    first.legend(fontsize=8)
    for ax, param in zip(axes.flat[1:], params, strict=False):
        _by_param(ax, trials, objective, param, best)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the title
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
