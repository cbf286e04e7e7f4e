"""Tables as people read them outside a terminal: GitHub Markdown (pandas' to_markdown needs tabulate)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).replace("|", "\\|")


def markdown(frame: pd.DataFrame, index: bool = False) -> str:
    """`frame` as a GitHub Markdown table; with `index`, the index is the first column."""
    header = [str(frame.index.name or ""), *map(str, frame.columns)] if index else list(map(str, frame.columns))
    rows = [[*([i] if index else []), *row] for i, row in zip(frame.index, frame.itertuples(index=False), strict=True)]
    lines = ["| " + " | ".join(_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
