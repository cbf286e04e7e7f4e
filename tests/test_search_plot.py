"""The figure of a study's search, drawn from a hand-made table of trials (no training here)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from sweeplab.plots import plot_search, searched


def trials() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial": [3, 1, 2, 4, 5, 6],
            "status": ["COMPLETED"] * 5 + ["FAILED"],
            "val_accuracy": [0.81, 0.85, 0.62, 0.88, 0.84, math.nan],
            "lr": ["0.01", "0.1", "0.0001", "0.001", "0.03", "1.0"],  # as a sweep's overrides give them
            "optimizer": ["sgd", "adam", "sgd", "adam", "nadam", "sgd"],
            "seed": [42] * 6,
            "tuner/epochs": [2, 2, 2, 4, 4, 4],
            "run_id": [f"r{i}" for i in range(6)],
        }
    )


def drawn(path: Path, panels: int, width: int = 460) -> list[tuple[int, int]]:
    """(blue, orange) pixels in each panel of the first row: the trials' points and the best trial's marks."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    blue, orange = (b > r + 60) & (b > 120), (r > b + 80) & (r > 180) & (g > 80)
    return [(int(blue[:, i * width : (i + 1) * width].sum()), int(orange[:, i * width : (i + 1) * width].sum()))
            for i in range(panels)]  # fmt: skip


def test_the_searched_values_are_those_that_vary() -> None:
    assert searched(trials(), "val_accuracy") == ["lr", "optimizer"]


def test_one_panel_for_the_order_and_one_per_searched_value(tmp_path: Path) -> None:
    path = plot_search(trials(), "val_accuracy", tmp_path / "trials.png", "lr and optimizer")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1380, 380)  # three panels in a row, 100 dpi
    # Not blank: five trials' points in each panel (a point is about 35 to 55 blue pixels, the legend's one),
    # the best-so-far line in the first, the best trial's star in the others.
    (order, in_order_line), *by_value = drawn(path, 3)
    assert order >= 5 * 45 and in_order_line >= 300, (order, in_order_line)
    assert all(blue >= 5 * 30 and star >= 40 for blue, star in by_value), by_value
    four = plot_search(trials(), "val_accuracy", tmp_path / "four.png", "four", params=["lr", "optimizer", "seed"])
    with Image.open(four) as image:
        assert image.size == (1380, 760)  # a second row for the fourth panel
