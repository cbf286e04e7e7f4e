"""The search space of `hydra/sweeper=sweeplab`, read with Hydra's public override parser.

The syntax is Hydra's Optuna sweeper's: `interval(a,b)` (floats, or ints when both ends are), tagged `log`
and/or `int`; `choice(...)`, `range(...)` and plain lists are categorical. Anything else is a fixed override
every trial carries. A space Optuna would refuse is refused here, in one line, before any run exists.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, Transformer
from hydra.errors import HydraException

from sweeplab.errors import ConfigError, first_line

SAMPLERS = ("tpe", "random", "gp", "grid", "nsga2")


def search_space(lines: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(swept key -> Optuna distribution, the fixed overrides); a later line for the same key wins."""
    try:
        overrides = OverridesParser.create().parse_overrides(lines)
    except HydraException as err:
        raise ConfigError(f"the search space cannot be read: {first_line(err)}") from err
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in overrides:
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = str(override.input_line)
    return space, list(fixed.values())


def distribution(override: Override) -> Any:
    """The Optuna distribution of one swept override (ConfigError for one Optuna cannot sample)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key, line = override.get_key_element(), override.input_line
    try:
        if not override.is_interval_sweep():
            choices = list(override.sweep_iterator(transformer=Transformer.encode))
            if not choices:
                raise ValueError("no values to choose from")
            return CategoricalDistribution(choices)
        value = override.value()
        assert isinstance(value, IntervalSweep)
        start, end, log = value.start, value.end, "log" in value.tags
        if "int" in value.tags or (isinstance(start, int) and isinstance(end, int)):
            return IntDistribution(int(start), int(end), log=log)  # type: ignore[arg-type]
        return FloatDistribution(float(start), float(end), log=log)  # type: ignore[arg-type]
    except ValueError as err:
        raise ConfigError(f"{line or key}: {first_line(err)}") from err


def check_sampler(name: str, space: dict[str, Any]) -> None:
    """Refuse a sampler that is unknown, not installed, or that cannot walk this space."""
    from optuna.distributions import CategoricalDistribution

    if name not in SAMPLERS:
        raise ConfigError(f"hydra.sweeper.sampler={name} is not a sampler: use one of {' '.join(SAMPLERS)}")
    if name == "gp" and importlib.util.find_spec("torch") is None:
        raise ConfigError("hydra.sweeper.sampler=gp needs PyTorch (pip install torch); use tpe or random")
    ranged = [key for key, d in space.items() if not isinstance(d, CategoricalDistribution)]
    if name == "grid" and ranged:
        raise ConfigError(f"hydra.sweeper.sampler=grid walks listed values only: {' '.join(ranged)} is an interval")


def check_study(lines: list[str], sampler: str, n_trials: int, workers: int) -> dict[str, Any]:
    """The study's space, once everything about it is known to work (ConfigError in one line otherwise)."""
    space, _ = search_space(lines)
    if not space:
        raise ConfigError("hydra/sweeper=sweeplab has nothing to search: sweep a key, e.g. 'lr=interval(0.001,0.3)'")
    check_sampler(sampler, space)
    if n_trials < 1 or workers < 1:
        raise ConfigError(f"hydra.sweeper.n_trials={n_trials} workers={workers}: both must be at least 1")
    return space


def trial_overrides(params: dict[str, Any]) -> list[str]:
    """A trial's values as the overrides its job is composed with."""
    return [f"{key}={Transformer.str(value)}" for key, value in params.items()]
