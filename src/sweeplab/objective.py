"""What a run is trained on and judged by: the task's loss and metrics, and the study's objective.

The objective (`objective.metric`, `objective.direction`) is what a job returns to sweepers, what pruning
and Keras Tuner compare, what a summary sorts by and what makes a model the champion. Nothing here imports
TensorFlow: the checks run before any work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from sweeplab.errors import ConfigError

# Per-epoch metrics besides the loss, by task (Keras names: history keys, val_ and test_ prefixed).
TASK_METRICS = {"classification": ("accuracy",), "regression": ("mae", "rmse")}
# Logged once per run, whatever the task.
RUN_METRICS = ("param_count", "train_time")
EPOCH_EXTRAS = ("learning_rate", "epoch_time")
# Names whose smaller values are better; anything else is taken as higher-is-better.
_LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "rmse", "time", "param_count")
DIRECTIONS = {"max": True, "maximize": True, "min": False, "minimize": False}


def task_of(cfg: DictConfig) -> str:
    return str(cfg.data.get("task") or "classification")


def epoch_metrics(task: str) -> list[str]:
    """The metrics fit() reports each epoch: loss, the task's metrics, then their validation values."""
    train = ["loss", *TASK_METRICS[task]]
    return [*train, *(f"val_{m}" for m in train)]


def test_metrics(task: str) -> list[str]:
    return [f"test_{m}" for m in ("loss", *TASK_METRICS[task])]


def logged_metrics(task: str) -> list[str]:
    """Every metric a run of this task logs (per epoch, or once at the end)."""
    return [*epoch_metrics(task), *EPOCH_EXTRAS, *test_metrics(task), *RUN_METRICS]


def lower_is_better(metric: str) -> bool:
    """The direction a metric's name implies, as Keras Tuner infers it: losses and errors go down."""
    return any(word in metric for word in _LOWER_IS_BETTER)


@dataclass(frozen=True)
class Objective:
    metric: str = "val_accuracy"
    maximize: bool = True

    @property
    def direction(self) -> str:
        return "max" if self.maximize else "min"

    @property
    def test_metric(self) -> str:
        """The test-set counterpart that ranks registered models: val_loss -> test_loss."""
        return "test_" + self.metric.removeprefix("val_") if self.metric.startswith("val_") else self.metric

    def better(self, value: float, than: float) -> bool:
        """Whether `value` beats `than` (a NaN never beats anything; anything beats a NaN)."""
        if not math.isfinite(value):
            return False
        if not math.isfinite(than):
            return True
        return value > than if self.maximize else value < than

    def on(self, metric: str) -> Objective:
        """The objective that judges `metric`: this one when it is its metric, else `metric` in the direction
        its name implies (pruning, Keras Tuner and compare.py may be asked about another metric)."""
        return self if metric == self.metric else Objective(metric, not lower_is_better(metric))

    def describe(self) -> str:
        return f"{self.metric} ({'higher' if self.maximize else 'lower'} is better)"


def objective_from(metric: str, direction: str = "auto") -> Objective:
    """`metric` in `direction`: max, min (or maximize, minimize), or auto, inferred from its name."""
    if direction == "auto":
        return Objective(metric, not lower_is_better(metric))
    if direction not in DIRECTIONS:
        raise ConfigError(f"objective.direction={direction} is not allowed: use max, min or auto")
    return Objective(metric, DIRECTIONS[direction])


def objective_of(cfg: Any) -> Objective:
    """The config's objective, `direction: auto` inferred from the metric's name."""
    node = cfg.get("objective") if cfg is not None else None
    if node is None:
        return Objective()
    return objective_from(str(node.get("metric") or "val_accuracy"), str(node.get("direction") or "auto"))


def validate_objective(cfg: DictConfig) -> Objective:
    """Refuse an objective that no run of this task logs, listing the ones that are logged."""
    objective = objective_of(cfg)
    logged = logged_metrics(task_of(cfg))
    if objective.metric not in logged:
        raise ConfigError(
            f"objective.metric={objective.metric} is not logged by a {task_of(cfg)} run: use one of {' '.join(logged)}"
        )
    return objective


def compile_settings(task: str) -> tuple[str, list[Any]]:
    """The loss and metrics a model of this task is compiled with (Keras objects: call after the backend
    is chosen)."""
    import keras

    if task == "regression":
        return "mean_squared_error", [
            keras.metrics.MeanAbsoluteError(name="mae"),
            keras.metrics.RootMeanSquaredError(name="rmse"),
        ]
    return "sparse_categorical_crossentropy", ["accuracy"]
