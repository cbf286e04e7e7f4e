"""The stopping rule, pure: is a job's objective so far worse than its siblings' at the same epoch?

The median stopping rule (Golovin et al., "Google Vizier", KDD 2017; Optuna's MedianPruner) and its
percentile form (Optuna's PercentilePruner): after `warmup_epochs`, once at least `min_runs` siblings have
reached the epoch, a job whose best value so far is worse than the siblings' `percentile`-th best (50: the
median) stops. Values are compared best-so-far against best-so-far, so a noisy epoch decides nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sweeplab.objective import lower_is_better


@dataclass(frozen=True)
class Rule:
    objective: str = "val_accuracy"
    percentile: float = 50.0  # the top share of siblings a job must reach to go on (50: the median)
    warmup_epochs: int = 3
    min_runs: int = 3
    direction: str = "auto"  # max, min, or auto: inferred from the name as Keras Tuner does

    @property
    def maximize(self) -> bool:
        if self.direction == "auto":
            return not lower_is_better(self.objective)
        return self.direction == "max"


@dataclass(frozen=True)
class Decision:
    epoch: int  # 1-based: the epoch just trained
    value: float  # the job's best objective so far
    threshold: float | None  # the siblings' percentile at this epoch; None: not enough siblings yet
    siblings: int  # siblings that reached this epoch
    prune: bool

    def reason(self, rule: Rule) -> str:
        """Why the job stopped (or went on), for its tags and the summary."""
        word = "below" if rule.maximize else "above"
        what = "median" if rule.percentile == 50 else f"top-{rule.percentile:g}% line"
        return (
            f"{rule.objective} {self.value:.4f} at epoch {self.epoch} {word} the {what} {self.threshold:.4f} "
            f"of {self.siblings} sibling runs"
        )


def best_so_far(values: list[float], maximize: bool) -> float:
    """The best finite value of a history, NaN when there is none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan
    return max(finite) if maximize else min(finite)


def decide(rule: Rule, epoch: int, own: float, siblings: list[float]) -> Decision:
    """The decision after `epoch` (1-based) for a job whose best so far is `own`, given its siblings' bests."""
    values = [v for v in siblings if math.isfinite(v)]
    if epoch <= rule.warmup_epochs or len(values) < rule.min_runs:
        return Decision(epoch, own, None, len(values), False)
    # The line a job must reach: the percentile counted from the best end (Optuna's convention).
    q = 100 - rule.percentile if rule.maximize else rule.percentile
    threshold = float(np.percentile(values, q))
    worse = own < threshold if rule.maximize else own > threshold
    return Decision(epoch, own, threshold, len(values), bool(worse or not math.isfinite(own)))
