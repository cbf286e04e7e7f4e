"""What a user reads while work runs: how epochs are shown, and the lines that start and end a job or trial.

A bar per epoch in a terminal, one plain line per epoch anywhere else (a log file, CI, a parallel launcher's
jobs writing to one terminal), nothing at `training.verbose=0`. A study's jobs and a search's trials say when
they start and end, with the time spent and an estimate of the time left. No Keras here: the process that
launches a sweep prints nothing of its jobs and must not import TensorFlow (the Keras callback that shows
epochs is sweeplab.epoch_progress).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator, Mapping

BAR, LINES, OFF = "bar", "lines", "off"
EPOCH_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")  # shown first, in this order

_label = ""  # what the epochs belong to, e.g. "job 2/4" (set by the job or trial that trains)
_lines_only = False  # a parallel launcher's job: bars of several jobs would interleave


@contextlib.contextmanager
def labelled(label: str, lines_only: bool = False) -> Iterator[None]:
    """Epoch lines inside the block start with `label` (nested labels join); `lines_only` forbids bars."""
    global _label, _lines_only
    before = (_label, _lines_only)
    _label = f"{_label} {label}".strip()
    _lines_only = _lines_only or lines_only
    try:
        yield
    finally:
        _label, _lines_only = before


def display_mode(verbose: str | int) -> str:
    """`training.verbose` as shown here: auto is a bar in a terminal and lines elsewhere; 1 a bar, 2 lines."""
    verbose = str(verbose)
    if verbose == "0":
        return OFF
    if _lines_only or verbose == "2":
        return LINES
    if verbose == "1":
        return BAR
    return BAR if sys.stdout.isatty() else LINES


def label() -> str:
    return _label


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


def epoch_line(epoch: int, epochs: int, logs: Mapping[str, float], seconds: float) -> str:
    """One epoch as a plain line: `job 2/4 epoch 3/10: loss=0.4123 accuracy=0.8512 ... (2.1 s)`."""
    keys = [k for k in EPOCH_KEYS if k in logs] + sorted(k for k in logs if k not in EPOCH_KEYS)
    values = " ".join(f"{k}={float(logs[k]):.4f}" for k in keys)
    prefix = f"{_label} " if _label else ""
    return f"{prefix}epoch {epoch + 1}/{epochs}: {values} ({duration(seconds)})"


def time_left(elapsed: float, done: int, left: int | None) -> float | None:
    """Seconds the `left` jobs or trials will take at the pace of the `done` ones; None when not known."""
    if left is None or done <= 0:
        return None
    return elapsed / done * max(0, left)


def _study(what: str) -> str:
    return "search" if what.startswith("trial") else "sweep"


def started_line(what: str, detail: str, elapsed: float) -> str:
    """`sweeplab: job 2/4 (lr=0.01) starts, 12.0 s into the sweep`."""
    described = f"{what} ({detail})" if detail else what
    return f"sweeplab: {described} starts, {duration(elapsed)} into the {_study(what)}"


def ended_line(what: str, status: str, seconds: float, result: str, elapsed: float, left_s: float | None) -> str:
    """`sweeplab: job 2/4 FINISHED in 12.0 s: val_accuracy=0.8512; 25.1 s into the sweep, about 25.1 s left`."""
    study = _study(what)
    outcome = f": {result}" if result else ""
    left = f", about {duration(left_s)} left" if left_s else ""
    return f"sweeplab: {what} {status} in {duration(seconds)}{outcome}; {duration(elapsed)} into the {study}{left}"


class Clock:
    """Seconds since `started` (a time.time() value handed between processes, or now)."""

    def __init__(self, started: float | None = None) -> None:
        self.started = started if started is not None else time.time()

    def elapsed(self) -> float:
        return max(0.0, time.time() - self.started)
