"""What a user reads while work runs, and the tables written for people: the console's output.

A bar per epoch in a terminal, one plain line per epoch anywhere else (a log file, CI, a parallel launcher's
jobs writing to one terminal), nothing at `training.verbose=0`. A study's jobs and a search's trials say when
they start and end, with the time spent and an estimate of the time left. Tables written outside a terminal
are GitHub Markdown. No Keras here: the process that launches a sweep prints nothing of its jobs and must not
import TensorFlow (the Keras callback that shows epochs is sweeplab.callbacks.EpochProgress).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

BAR, LINES, OFF = "bar", "lines", "off"
SWEEP, SEARCH = "sweep", "search"  # the study a job or trial belongs to, as its lines name it
EPOCH_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")  # shown first, in this order


@dataclass(frozen=True)
class Heading:
    """What the epochs trained now belong to (e.g. "job 2/4") and whether bars are forbidden (a parallel
    launcher's job: bars of several jobs would interleave)."""

    label: str = ""
    lines_only: bool = False


# The heading of the work this thread and task is training: set only by `labelled`, for the block it wraps,
# and read once per fit by the callback that shows epochs (the job or trial does not reach fit's arguments).
_HEADING: ContextVar[Heading] = ContextVar("sweeplab_heading", default=Heading())  # noqa: B039 (frozen)


@contextlib.contextmanager
def labelled(label: str, lines_only: bool = False) -> Iterator[Heading]:
    """Epochs trained inside the block are headed by `label` (nested labels join); `lines_only` forbids bars."""
    outer = _HEADING.get()
    heading = Heading(f"{outer.label} {label}".strip(), outer.lines_only or lines_only)
    token = _HEADING.set(heading)
    try:
        yield heading
    finally:
        _HEADING.reset(token)


def heading() -> Heading:
    """The heading of the innermost `labelled` block around this call (an empty one outside any)."""
    return _HEADING.get()


def display_mode(verbose: str | int, lines_only: bool = False) -> str:
    """`training.verbose` as shown here: auto is a bar in a terminal and lines elsewhere; 1 a bar, 2 lines."""
    verbose = str(verbose)
    if verbose == "0":
        return OFF
    if lines_only or verbose == "2":
        return LINES
    if verbose == "1":
        return BAR
    return BAR if sys.stdout.isatty() else LINES


def duration(seconds: float) -> str:
    """e.g. '8.2 s', '3 min 05 s', '1 h 02 min'."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def epoch_line(epoch: int, epochs: int, logs: Mapping[str, float], seconds: float, label: str = "") -> str:
    """One epoch as a plain line: `job 2/4 epoch 3/10: loss=0.4123 accuracy=0.8512 ... (2.1 s)`."""
    keys = [k for k in EPOCH_KEYS if k in logs] + sorted(k for k in logs if k not in EPOCH_KEYS)
    values = " ".join(f"{k}={float(logs[k]):.4f}" for k in keys)
    prefix = f"{label} " if label else ""
    return f"{prefix}epoch {epoch + 1}/{epochs}: {values} ({duration(seconds)})"


def time_left(elapsed: float, done: int, left: int | None) -> float | None:
    """Seconds the `left` jobs or trials will take at the pace of the `done` ones; None when not known."""
    if left is None or done <= 0:
        return None
    return elapsed / done * max(0, left)


def started_line(what: str, detail: str, elapsed: float, study: str = SWEEP) -> str:
    """`sweeplab: job 2/4 (lr=0.01) starts, 12.0 s into the sweep` (`study`: SWEEP or SEARCH)."""
    described = f"{what} ({detail})" if detail else what
    return f"sweeplab: {described} starts, {duration(elapsed)} into the {study}"


def ended_line(
    what: str, status: str, seconds: float, result: str, elapsed: float, left_s: float | None, study: str = SWEEP
) -> str:
    """`sweeplab: job 2/4 FINISHED in 12.0 s: val_accuracy=0.8512; 25.1 s into the sweep, about 25.1 s left`."""
    outcome = f": {result}" if result else ""
    left = f", about {duration(left_s)} left" if left_s else ""
    return f"sweeplab: {what} {status} in {duration(seconds)}{outcome}; {duration(elapsed)} into the {study}{left}"


class Clock:
    """Seconds since `started` (a time.time() value handed between processes, or now)."""

    def __init__(self, started: float | None = None) -> None:
        self.started = started if started is not None else time.time()

    def elapsed(self) -> float:
        return max(0.0, time.time() - self.started)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).replace("|", "\\|")


def markdown(frame: pd.DataFrame, index: bool = False) -> str:
    """`frame` as a GitHub Markdown table (pandas' to_markdown needs tabulate); with `index`, the index first."""
    header = [str(frame.index.name or ""), *map(str, frame.columns)] if index else list(map(str, frame.columns))
    rows = [[*([i] if index else []), *row] for i, row in zip(frame.index, frame.itertuples(index=False), strict=True)]
    lines = ["| " + " | ".join(_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
