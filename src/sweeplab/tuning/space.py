"""The Keras Tuner search space, computed from `tuner.space` around the baseline config, and its checks.

`tuner.space` holds multipliers and names, not absolute numbers, so that the space follows the model
config: units are factors of each layer's baseline width, the learning rate a factor of the configured
one. Nothing here imports TensorFlow: `validate_tuner` refuses a bad space before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeplab.config import CONF_DIR, KERAS_ACTIVATIONS, hidden_units, learning_rate, optimizer_name
from sweeplab.errors import ConfigError

OPTIMIZER_CONF_DIR = CONF_DIR / "optimizer"
TUNER_KINDS = ("random", "hyperband", "bayesian")
# What a trial's fit reports each epoch (Keras Tuner infers the direction from the name).
OBJECTIVES = ("val_accuracy", "val_loss", "accuracy", "loss")


@dataclass(frozen=True)
class Range:
    """A numeric dimension; low == high means fixed. `default` is the baseline's value."""

    low: float
    high: float
    default: float

    @property
    def fixed(self) -> bool:
        return self.low == self.high


@dataclass(frozen=True)
class Choices:
    values: tuple[str, ...]
    default: str

    @property
    def fixed(self) -> bool:
        return len(self.values) == 1


@dataclass(frozen=True)
class SearchSpace:
    depth: Range
    units: tuple[Range, ...]  # one per possible hidden layer, up to depth.high
    activation: Choices
    optimizer: Choices
    learning_rate: Range  # log-uniform

    def describe(self) -> dict[str, Any]:
        """Absolute values, as logged on the search's parent run."""
        plain = asdict(self)
        plain["units"] = {f"units_{i + 1}": r for i, r in enumerate(plain["units"])}
        return plain


def optimizer_names() -> list[str]:
    return sorted(p.stem for p in OPTIMIZER_CONF_DIR.glob("*.yaml"))


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
        raise ConfigError(f"tuner.space.{key}={_show(value)} is not allowed: give [low, high] or one number")
    low, high = items[0], items[-1]
    if low > high:
        raise ConfigError(f"tuner.space.{key}={_show(value)} is not allowed: low {low} > high {high}")
    if low <= 0:
        raise ConfigError(f"tuner.space.{key}={_show(value)} is not allowed: values must be > 0")
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
            f"tuner.space.{key}={_show(value)} leaves out the baseline {key}={default} "
            f"(trial 0): add it, or set {key}=... to one of them"
        )
    return Choices(tuple(str(i) for i in dict.fromkeys(items)), default)


def _show(value: Any) -> str:
    plain = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
    return str(plain).replace(" ", "").replace("'", "")


def _contains_baseline(key: str, value: Any, low: float, high: float, baseline: float, what: str) -> None:
    if not low <= baseline <= high:
        raise ConfigError(
            f"tuner.space.{key}={_show(value)} leaves out the baseline ({what}, trial 0): "
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
    base_depth = len(hidden_units(cfg))
    d_low, d_high = _bounds("depth", space.depth)
    if d_low != int(d_low) or d_high != int(d_high) or d_low < 1:
        raise ConfigError(f"tuner.space.depth={_show(space.depth)} is not allowed: give whole numbers >= 1")
    _contains_baseline("depth", space.depth, d_low, d_high, base_depth, f"depth {base_depth}")
    depth = Range(int(d_low), int(d_high), base_depth)

    u_low, u_high = _bounds("units", space.units)
    _contains_baseline("units", space.units, u_low, u_high, 1.0, "factor 1")
    units = []
    for width in baseline_widths(cfg, depth.high):
        low, high = max(1, round(width * u_low)), max(1, round(width * u_high))
        units.append(Range(low, high, min(max(width, low), high)))

    base_lr = learning_rate(cfg)
    f_low, f_high = _bounds("lr", space.lr)
    _contains_baseline("lr", space.lr, f_low, f_high, 1.0, "factor 1")
    lr = Range(base_lr * f_low, base_lr * f_high, base_lr)

    activation = _names("activation", space.activation, KERAS_ACTIVATIONS, str(cfg.activation))
    optimizer = _names("optimizer", space.optimizer, optimizer_names(), optimizer_name(cfg))
    return SearchSpace(depth, tuple(units), activation, optimizer, lr)


def _at_least(key: str, value: Any, minimum: int, allow_null: bool = False) -> None:
    if value is None and allow_null:
        return
    if value is None or isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        hint = " or null" if allow_null else ""
        raise ConfigError(f"tuner.{key}={value} is not allowed: must be an integer >= {minimum}{hint}")


def validate_tuner(cfg: DictConfig) -> None:
    """Refuse a tuner config that cannot search, before any data is loaded."""
    tuner = cfg.tuner
    if tuner.get("kind") not in TUNER_KINDS:
        raise ConfigError(f"tuner.kind={tuner.get('kind')} is not allowed: use tuner={'|'.join(TUNER_KINDS)}")
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
    if tuner.objective not in OBJECTIVES:
        raise ConfigError(f"tuner.objective={tuner.objective} is not allowed: use one of {' '.join(OBJECTIVES)}")
    search_space(cfg)
