"""Figures saved as PNG: the tutorial's learning curves, a confusion matrix, a study's curves."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

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
