"""The configured model, built by the function its config names (`model._target_`) and checked against the data.

A builder gets the model config's keys plus `input_shape` and `num_outputs` (and `task` where it takes
one) and returns an uncompiled keras.Model; what does not fit is refused in one line before any training.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeplab.errors import ConfigError, first_line


def check_importable(key: str, target: Any) -> None:
    """Refuse a `_target_` whose module cannot be found, without importing it (no TensorFlow yet)."""
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(f"{key}={target} is not allowed: name a function as package.module.function")
    module = target.rsplit(".", 1)[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as err:
        raise ConfigError(f"{key}={target}: cannot import module {module} ({first_line(err)}); {_hint()}") from err
    if found is None:
        raise ConfigError(f"{key}={target}: cannot import module {module} (not found); {_hint()}")


def _hint() -> str:
    return "put the folder that holds its package on PYTHONPATH"


def locate(key: str, target: str) -> Callable[..., Any]:
    """The function a `_target_` names, or one line saying why it cannot be had."""
    module_name, _, name = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - the user's module may raise anything while it imports
        raise ConfigError(f"{key}={target}: cannot import module {module_name} ({first_line(err)})") from err
    found = getattr(module, name, None)
    if not callable(found):
        raise ConfigError(f"{key}={target}: module {module_name} has no function {name}")
    return found


def takes(function: Callable[..., Any], name: str) -> bool:
    """Whether `function` accepts the keyword `name` (by name, or through **kwargs)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def builder_arguments(cfg: DictConfig) -> dict[str, Any]:
    """The model config's own keys, resolved: the builder's hyperparameters."""
    plain = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(plain, dict)
    plain.pop("_target_", None)
    return plain


def build_model(cfg: DictConfig, input_shape: tuple[int, ...], num_outputs: int, task: str) -> Any:
    """An uncompiled keras.Model from the configured builder, checked to fit the data."""
    import keras

    target = str(cfg.model.get("_target_"))
    function = locate("model._target_", target)
    arguments = {**builder_arguments(cfg), "input_shape": input_shape, "num_outputs": num_outputs}
    if takes(function, "task"):
        arguments["task"] = task
    try:
        model = function(**arguments)
    except (TypeError, ValueError) as err:  # keys it does not take, values it refuses
        raise ConfigError(f"model._target_={target} refused its arguments: {first_line(err)}") from err
    if not isinstance(model, keras.Model):
        raise ConfigError(f"model._target_={target} returned {type(model).__name__}, not a keras.Model")
    expected = (None, num_outputs)
    shape = tuple(getattr(model, "output_shape", ()) or ())
    if shape != expected:
        what = f"{num_outputs} classes" if task == "classification" else f"{num_outputs} regression targets"
        raise ConfigError(
            f"model._target_={target} gives outputs of shape {shape} but the data needs {expected} ({what}): "
            f"end the model with Dense(num_outputs)"
        )
    return model
