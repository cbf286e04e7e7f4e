"""The dimensions of a Keras Tuner search, and `tuner.space.model`: any key of the model config searched in
absolute values, a range ({low: L, high: H}, log: true, step: S), a list of choices or one fixed value.

Every dimension holds the baseline's value (the configured model is trial 0). No TensorFlow here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeplab.builder import builder_arguments
from sweeplab.config import KERAS_ACTIVATIONS, is_mlp, model_name
from sweeplab.errors import ConfigError

# The MLP keys that tuner.space.depth and tuner.space.units search (through model.units).
MLP_SIZES = ("depth", "width", "units", "taper")
SPAN_KEYS = ("low", "high", "log", "step")


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
    values: tuple[Any, ...]  # strings, numbers or booleans, all of one type
    default: Any

    @property
    def fixed(self) -> bool:
        return len(self.values) == 1


@dataclass(frozen=True)
class Span:
    """A model key's range (`tuner.space.model.KEY={low: L, high: H}`): integers when low and high are."""

    low: int | float
    high: int | float
    default: int | float
    log: bool = False
    step: int | float | None = None

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    @property
    def fixed(self) -> bool:
        return self.low == self.high


def show(value: Any) -> str:
    """A config value as a command line writes it: [1,4], {low:0.1,high:0.5}."""
    plain = OmegaConf.to_container(value) if isinstance(value, ListConfig | DictConfig) else value
    return str(plain).replace(" ", "").replace("'", "")


def model_dimensions(cfg: DictConfig) -> dict[str, Span | Choices]:
    """`tuner.space.model`: a range, choices or a fixed value per key of the model config (null: not searched)."""
    given = cfg.tuner.space.get("model")
    if given is None:
        return {}
    if not isinstance(given, DictConfig):
        raise ConfigError(
            f"tuner.space.model={show(given)} is not allowed: give one entry per model key, "
            "e.g. +tuner.space.model.dropout={low:0.0,high:0.5}"
        )
    baseline = builder_arguments(cfg)
    found: dict[str, Span | Choices] = {}
    for key, value in given.items():
        key, name = str(key), f"tuner.space.model.{key}"
        if key not in baseline:
            keys = " ".join(baseline) or "none"
            raise ConfigError(f"{name}: the model ({model_name(cfg)}) has no key {key}; its keys: {keys}")
        if is_mlp(cfg) and key in MLP_SIZES:
            raise ConfigError(f"{name} is not allowed: the MLP's sizes are searched by tuner.space.depth and units")
        if value is None:
            continue
        base = baseline[key]
        if base is None or not isinstance(base, str | int | float):
            raise ConfigError(f"{name}: model.{key}={show(base)} cannot be searched: only numbers, strings, booleans")
        found[key] = (
            _span(name, key, value, base) if isinstance(value, DictConfig) else _choices(name, key, value, base)
        )
    return found


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _leaves_out(name: str, value: Any, key: str, base: Any, hint: str) -> ConfigError:
    return ConfigError(f"{name}={show(value)} leaves out the baseline model.{key}={base} (trial 0): {hint}")


def _span(name: str, key: str, value: DictConfig, base: Any) -> Span:
    """{low: L, high: H} (log: true, step: S) around the baseline value `base`."""
    plain = OmegaConf.to_container(value)
    assert isinstance(plain, dict)
    shown = show(value)
    if set(plain) - set(SPAN_KEYS) or "low" not in plain or "high" not in plain:
        raise ConfigError(f"{name}={shown} is not allowed: give {{low: L, high: H}}, optionally log: true, step: S")
    low, high, log, step = plain["low"], plain["high"], plain.get("log", False), plain.get("step")
    if not (_number(low) and _number(high) and (step is None or _number(step)) and isinstance(log, bool)):
        raise ConfigError(f"{name}={shown} is not allowed: low, high and step must be numbers, log true or false")
    if low > high:
        raise ConfigError(f"{name}={shown} is not allowed: low {low} > high {high}")
    if log and low <= 0:
        raise ConfigError(f"{name}={shown} is not allowed: log sampling needs low > 0")
    if step is not None and (step <= 0 or (log and step <= 1)):
        raise ConfigError(f"{name}={shown} is not allowed: step must be > 0 (a factor > 1 with log: true)")
    span = Span(low, high, base, log, step)
    if span.integer and step is not None and not isinstance(step, int):
        raise ConfigError(f"{name}={shown} is not allowed: an integer range takes a whole step")
    if not _number(base) or not low <= base <= high:
        raise _leaves_out(name, value, key, base, f"widen it, or set model.{key} inside it")
    if span.integer and not isinstance(base, int):
        raise ConfigError(
            f"{name}={shown} is a range of integers (whole low and high) but model.{key}={base} is not: "
            "write low and high as floats (0.0)"
        )
    return span


def _choices(name: str, key: str, value: Any, base: Any) -> Choices:
    """A list of choices, or one value that fixes the key; the baseline's value among them."""
    items = list(value) if isinstance(value, ListConfig) else [value]
    if not items or any(isinstance(i, DictConfig | ListConfig) or not isinstance(i, str | int | float) for i in items):
        raise ConfigError(
            f"{name}={show(value)} is not allowed: give {{low: L, high: H}}, a list of strings, numbers or "
            "booleans, or one value"
        )
    kinds = sorted({type(i).__name__ for i in items})
    if len(kinds) > 1:
        raise ConfigError(f"{name}={show(value)} is not allowed: its values mix {' and '.join(kinds)}")
    if key == "activation" and any(i not in KERAS_ACTIVATIONS for i in items):
        unknown = next(i for i in items if i not in KERAS_ACTIVATIONS)
        raise ConfigError(f"{name} has {unknown!r}, not a Keras activation: use any of {' '.join(KERAS_ACTIVATIONS)}")
    if not any(type(i) is type(base) and i == base for i in items):
        raise _leaves_out(name, value, key, base, f"add it, or set model.{key} to one of them")
    return Choices(tuple(dict.fromkeys(items)), base)
