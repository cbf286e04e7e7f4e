"""The configured model, built by the function its config names (`model._target_`) and checked against the data.

A builder gets the model config's keys plus `input_shape` and `num_outputs` (and `task` where it takes
one) and returns an uncompiled keras.Model; what does not fit is refused in one line before any training.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeplab.errors import ConfigError, SweeplabError, first_line, one_line


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
    except SweeplabError:
        raise
    except (TypeError, ValueError) as err:  # keys it does not take, values it refuses
        raise ConfigError(f"model._target_={target} refused its arguments: {first_line(err)}") from err
    except Exception as err:  # noqa: BLE001 - the user's builder may raise anything
        raise ConfigError(f"model._target_={target} failed: {one_line(err)}") from err
    if not isinstance(model, keras.Model):
        raise ConfigError(f"model._target_={target} returned {type(model).__name__}, not a keras.Model")
    expected = (None, num_outputs)
    shape = output_shape(model, target, input_shape)
    if shape != expected:
        what = f"{num_outputs} classes" if task == "classification" else f"{num_outputs} regression targets"
        shown = shape if isinstance(shape, str) else f"outputs of shape {shape}"
        raise ConfigError(
            f"model._target_={target} gives {shown} but the data needs {expected} ({what}): "
            f"end the model with Dense(num_outputs)"
        )
    return model


def output_shape(model: Any, target: str, input_shape: tuple[int, ...]) -> tuple[int | None, ...] | str:
    """The shape of what `model` gives for a batch of the data's inputs, batch axis None (the model is called
    on two rows of zeros: a subclassed model has no output_shape before it is called, and a model whose input
    does not take the data is refused here, not in fit())."""
    import numpy as np

    given = (None, *input_shape)
    try:
        out = model(np.zeros((2, *input_shape), dtype=np.float32), training=False)
    except Exception as err:  # noqa: BLE001 - Keras raises ValueError, TensorFlow its own errors
        wanted = _input_shape(model)
        its = f" (it takes {wanted})" if wanted else ""
        raise ConfigError(
            f"model._target_={target} does not take the data's inputs of shape {given}{its}: {_reason(err)}; "
            "build its Input from input_shape"
        ) from err
    if isinstance(out, list | tuple | dict):
        return f"{len(out)} outputs"
    shape = tuple(getattr(out, "shape", ()))
    return (None, *(int(d) for d in shape[1:])) if shape else ()


def _reason(error: BaseException) -> str:
    """The words of a Keras call error that say what did not fit (Keras wraps them in a report with colour
    codes, the arrays it was given and the call's arguments)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split("Arguments received")[0]
    found = re.search(r"(Expected shape .*|Input \d+ .*incompatible.*)", text)
    if found:
        return found.group(1).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception encountered")]
    return lines[0] if lines else type(error).__name__


def _input_shape(model: Any) -> Any:
    try:
        return tuple(model.input_shape)
    except Exception:  # noqa: BLE001 - a subclassed model has none
        return None
