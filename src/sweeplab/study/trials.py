"""The trials of one study, asked and told from several worker threads: one lock, one budget, one stop flag."""

from __future__ import annotations

import math
import threading
from typing import Any

from sweeplab.study.space import trial_overrides


def job_value(ret: Any) -> float | None:
    """What a finished job returned to the sweeper; None for a failed job or one with no value."""
    from hydra.core.utils import JobStatus

    if ret.status != JobStatus.COMPLETED:
        return None
    value = float(ret.return_value)
    return value if math.isfinite(value) else None


class Trials:
    """Hands out the next trial (its job number and overrides) while the budget lasts, and takes results back."""

    def __init__(self, optuna_study: Any, space: dict[str, Any], fixed: list[str], first_num: int, left: int) -> None:
        self.study, self.space, self.fixed = optuna_study, space, fixed
        self.num, self.left = first_num, left
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.running: dict[int, list[str]] = {}  # job number -> overrides, of the jobs launched and not yet told

    def next(self) -> tuple[Any, int, list[str]] | None:
        """The next trial, its job number and overrides; None once the budget is spent or the study stopped."""
        with self.lock:
            if self.left <= 0 or self.stopped.is_set() or self.exhausted():
                return None
            trial = self.study.ask(fixed_distributions=self.space)
            num, self.num, self.left = self.num, self.num + 1, self.left - 1
            self.running[num] = [*self.fixed, *trial_overrides(trial.params)]
        return trial, num, self.running[num]

    def exhausted(self) -> bool:
        """Whether the sampler has nothing left to ask (a grid whose every point was asked)."""
        is_exhausted = getattr(self.study.sampler, "is_exhausted", None)
        return bool(is_exhausted and is_exhausted(self.study))

    def tell(self, trial: Any, num: int, ret: Any) -> None:
        """Tell Optuna how job `num` of the trial ended: its value, or FAIL (the study goes on)."""
        from optuna.trial import TrialState

        value = job_value(ret)
        with self.lock:
            self.running.pop(num, None)
            if value is None:
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                self.study.tell(trial, value)

    def stop(self) -> None:
        """No trial is handed out after this (Ctrl-C, SIGTERM, or a worker that broke)."""
        self.stopped.set()
