"""Figures saved as PNG: the tutorial's learning curves, a confusion matrix, a study's curves, and a study's
search (the objective of each trial in order, and against each searched hyperparameter: Keras Tuner searches,
sweeps of any sweeper, compare.py's report on a study)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Per-epoch columns that are not the model's figures.
NOT_CURVES = ("learning_rate", "epoch_time")


def unit_range(names: Collection[str]) -> tuple[float, float] | None:
    """y from 0 to 1 for accuracies (as the tutorial draws them); losses and errors get their own range."""
    return (0, 1) if all("accuracy" in n or n in ("loss", "val_loss") for n in names) else None


def plot_learning_curves(history: pd.DataFrame, path: Path, title: str = "") -> Path:
    """The loss and the task's metrics per epoch, training and validation, on one figure with a grid (as the
    tutorial: loss, accuracy, val_loss, val_accuracy from 0 to 1)."""
    columns = [c for c in history if c not in NOT_CURVES]
    frame = history[columns].copy()
    frame.index = np.arange(1, len(frame) + 1)
    ax = frame.plot(figsize=(8, 5), grid=True, ylim=unit_range(columns), title=title or None)
    ax.set_xlabel("epoch")
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=100)
    plt.close(ax.figure)
    return path


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str = "") -> Path:
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n, 0.8 + 0.7 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"confusion matrix (accuracy {np.trace(matrix) / max(matrix.sum(), 1):.4f})")
    threshold = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color="white" if count > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(
    curves: dict[str, pd.Series], path: Path, title: str, ylabel: str = "val_accuracy", dashed: Collection[str] = ()
) -> Path:
    """Several runs' curves (label -> values by epoch) on one figure, e.g. every job of a sweep; the `dashed`
    ones (runs stopped early) end in a cross."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for label, curve in curves.items():
        if label in dashed:
            (line,) = ax.plot(curve.index, curve.values, linestyle="--", marker="o", markersize=3, label=label)
            ax.plot(curve.index[-1:], curve.values[-1:], marker="x", markersize=9, color=line.get_color())
        else:
            ax.plot(curve.index, curve.values, marker="o", markersize=3, label=label)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    if "accuracy" in ylabel:
        ax.set_ylim(0, 1)
    ax.grid(True)
    if curves:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
