"""The Keras Tuner search space, computed from `tuner.space` around the baseline config, and its checks.

`tuner.space` holds multipliers and names, not absolute numbers, so that the space follows the model
config: units are factors of each layer's baseline width, the learning rate a factor of the configured
one. `tuner.space.model.<key>` searches any key of the model config in absolute values (a range, choices
or a fixed value). Every dimension holds the baseline's value: the configured model is trial 0. The MLP's
depth and units apply to the MLP only, activation to models with an `activation` key. Nothing here imports
TensorFlow: `validate_tuner` refuses a bad space before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeplab.config import (
    KERAS_ACTIVATIONS,
    OPTIMIZER_CONF_DIR,
    hidden_units,
    is_mlp,
    learning_rate,
    optimizer_name,
    optimizer_names,
)
from sweeplab.errors import ConfigError
from sweeplab.objective import Objective, epoch_metrics, objective_of, task_of
from sweeplab.tuning.dimensions import Choices, Range, Span, model_dimensions, show


@dataclass(frozen=True)
class SearchSpace:
    depth: Range | None  # the MLP only
    units: tuple[Range, ...]  # one per possible hidden layer, up to depth.high (the MLP only)
    activation: Choices | None  # models with an `activation` key
    optimizer: Choices
    learning_rate: Range  # log-uniform
    model: dict[str, Span | Choices] = field(default_factory=dict)  # tuner.space.model, by model key

    def describe(self) -> dict[str, Any]:
        """Absolute values, as logged on the search's parent run: the dimensions actually searched."""
        plain = {k: v for k, v in asdict(self).items() if v not in (None, (), {}, [])}
        if self.units:
            plain["units"] = {f"units_{i + 1}": r for i, r in enumerate(plain["units"])}
        if self.model:
            plain["model"] = {f"model.{k}": v for k, v in plain["model"].items()}
        return plain


def optimizer_config(cfg: DictConfig, name: str) -> DictConfig:
    """The baseline's own optimizer node (user overrides kept) for its name, else conf/optimizer/NAME.yaml."""
    if name == optimizer_name(cfg):
        return cfg.optimizer
    return OmegaConf.load(OPTIMIZER_CONF_DIR / f"{name}.yaml")


def _bounds(key: str, value: Any) -> tuple[float, float]:
    """[low, high], [value] or value -> (low, high), refusing anything else in one line."""
    items = list(value) if isinstance(value, ListConfig | list | tuple) else [value]
    if not 1 <= len(items) <= 2 or any(
        isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in items
    ):
        raise ConfigError(f"tuner.space.{key}={show(value)} is not allowed: give [low, high] or one number")
    low, high = items[0], items[-1]
    if low > high:
        raise ConfigError(f"tuner.space.{key}={show(value)} is not allowed: low {low} > high {high}")
    if low <= 0:
        raise ConfigError(f"tuner.space.{key}={show(value)} is not allowed: values must be > 0")
    return low, high


def _names(key: str, value: Any, known: list[str], default: str) -> Choices:
    items = list(value) if isinstance(value, ListConfig | list | tuple) else [value]
    if not items:
        raise ConfigError(f"tuner.space.{key}=[] is not allowed: give at least one name")
    for item in items:
        if item not in known:
            raise ConfigError(f"tuner.space.{key} has {item!r}, not a known {key}: use any of {' '.join(known)}")
    if default not in items:
        raise ConfigError(
            f"tuner.space.{key}={show(value)} leaves out the baseline {key}={default} "
            f"(trial 0): add it, or set {key}=... to one of them"
        )
    return Choices(tuple(str(i) for i in dict.fromkeys(items)), default)


def _contains_baseline(key: str, value: Any, low: float, high: float, baseline: float, what: str) -> None:
    if not low <= baseline <= high:
        raise ConfigError(
            f"tuner.space.{key}={show(value)} leaves out the baseline ({what}, trial 0): "
            "widen it, or change the baseline config"
        )


def baseline_widths(cfg: DictConfig, layers: int) -> list[int]:
    """The baseline's hidden sizes, continued by model.taper for layers beyond its depth."""
    widths = hidden_units(cfg)
    while len(widths) < layers:
        widths.append(max(1, round(widths[-1] / cfg.model.taper)))
    return widths[:layers]


def search_space(cfg: DictConfig) -> SearchSpace:
    """The space of `cfg.tuner.space` around `cfg`; raises ConfigError naming the first bad key."""
    space = cfg.tuner.space
    model = model_dimensions(cfg)
    depth, units = _mlp_sizes(cfg) if is_mlp(cfg) else (None, ())
    base_lr = learning_rate(cfg)
    f_low, f_high = _bounds("lr", space.lr)
    _contains_baseline("lr", space.lr, f_low, f_high, 1.0, "factor 1")
    lr = Range(base_lr * f_low, base_lr * f_high, base_lr)

    activation = None  # tuner.space.model.activation, where given, searches it instead
    if "activation" in cfg.model and "activation" not in model:
        activation = _names("activation", space.activation, KERAS_ACTIVATIONS, str(cfg.model.activation))
    optimizer = _names("optimizer", space.optimizer, optimizer_names(), optimizer_name(cfg))
    return SearchSpace(depth, units, activation, optimizer, lr, model)


def _mlp_sizes(cfg: DictConfig) -> tuple[Range, tuple[Range, ...]]:
    """The MLP's depth and its layers' widths, from tuner.space.depth and tuner.space.units."""
    space = cfg.tuner.space
    base_depth = len(hidden_units(cfg))
    d_low, d_high = _bounds("depth", space.depth)
    if d_low != int(d_low) or d_high != int(d_high) or d_low < 1:
        raise ConfigError(f"tuner.space.depth={show(space.depth)} is not allowed: give whole numbers >= 1")
    _contains_baseline("depth", space.depth, d_low, d_high, base_depth, f"depth {base_depth}")
    depth = Range(int(d_low), int(d_high), base_depth)

    u_low, u_high = _bounds("units", space.units)
    _contains_baseline("units", space.units, u_low, u_high, 1.0, "factor 1")
    units = []
    for width in baseline_widths(cfg, depth.high):
        low, high = max(1, round(width * u_low)), max(1, round(width * u_high))
        units.append(Range(low, high, min(max(width, low), high)))
    return depth, tuple(units)


def tuner_objective(cfg: DictConfig) -> Objective:
    """What Keras Tuner optimises: the study's objective (in its direction) when tuner.objective is its metric,
    else tuner.objective in the direction its name implies."""
    return objective_of(cfg).on(str(cfg.tuner.objective))


def _at_least(key: str, value: Any, minimum: int, allow_null: bool = False) -> None:
    if value is None and allow_null:
        return
    if value is None or isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        hint = " or null" if allow_null else ""
        raise ConfigError(f"tuner.{key}={value} is not allowed: must be an integer >= {minimum}{hint}")


def validate_tuner(cfg: DictConfig) -> None:
    """Refuse a tuner config that cannot search, before any data is loaded."""
    tuner = cfg.tuner  # its kind and types are checked at composition (sweeplab.schema.TunerConfig)
    _at_least("max_trials", tuner.max_trials, 1, allow_null=tuner.kind == "hyperband")
    _at_least("max_epochs", tuner.max_epochs, 1)
    _at_least("executions_per_trial", tuner.executions_per_trial, 1)
    if cfg.seeds > 1 and tuner.executions_per_trial not in (1, cfg.seeds):
        raise ConfigError(
            f"seeds={cfg.seeds} with tuner.executions_per_trial={tuner.executions_per_trial} is not allowed: "
            "a search's seeds are its executions per trial; set one of them"
        )
    _at_least("patience", tuner.patience, 0, allow_null=True)
    _at_least("max_consecutive_failed_trials", tuner.max_consecutive_failed_trials, 1)
    if tuner.kind == "hyperband":
        _at_least("factor", tuner.factor, 2)
        _at_least("hyperband_iterations", tuner.hyperband_iterations, 1)
    if tuner.kind == "bayesian":
        _at_least("num_initial_points", tuner.num_initial_points, 1, allow_null=True)
    per_epoch = epoch_metrics(task_of(cfg))
    if tuner.objective not in per_epoch:
        raise ConfigError(
            f"tuner.objective={tuner.objective} is not allowed: Keras Tuner needs a per-epoch metric, "
            f"one of {' '.join(per_epoch)}"
        )
    search_space(cfg)
