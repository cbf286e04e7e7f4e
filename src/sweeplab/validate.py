"""The checks that run before any work starts: `validate` refuses a value that cannot train, in one line.

Only what a type cannot say: wrong types and choices outside their enum (backend, training.verbose,
tuner.kind, pruner.kind) are refused by Hydra at composition (sweeplab.schema), a search's own settings by
sweeplab.tuning.space.validate_tuner. Nothing here imports TensorFlow or a feature package, so a bad
override is refused at once; a CSV table (data=csv) is read here too, so that a missing column or a text
feature is refused before any run.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig

from sweeplab.builder import check_importable
from sweeplab.config import DATASET_TRAIN_SIZES, KERAS_ACTIVATIONS, TASKS, is_mlp, optimizer_names
from sweeplab.data import check_limit, raw_arrays
from sweeplab.errors import ConfigError
from sweeplab.objective import epoch_metrics, task_of, validate_objective

CSV_LOADER = "sweeplab.datasets.load_csv"

# Optimizer settings that are fractions in [0, 1).
_FRACTION_PARAMS = ("momentum", "rho", "beta_1", "beta_2")
MAX_SEEDS = 100  # seeds per config: each is a full training run


def _positive(name: str, value: Any, allowed: str = "a number > 0") -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}={value!r} is not allowed: must be {allowed}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value} is not allowed: must be {allowed}")


def _validate_optimizer(opt: DictConfig) -> None:
    if opt is None or "_target_" not in opt:
        raise ConfigError(f"optimizer is not set: choose one of optimizer={'|'.join(optimizer_names())}")
    for key, value in opt.items():
        if key in ("_target_", "name") or isinstance(value, bool) or value is None:
            continue
        if key == "learning_rate":
            _positive("optimizer.learning_rate", value)
        elif key in _FRACTION_PARAMS:
            if not isinstance(value, int | float) or not 0 <= value < 1:
                raise ConfigError(f"optimizer.{key}={value} is not allowed: must be in [0, 1)")
        elif isinstance(value, int | float):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"optimizer.{key}={value} is not allowed: must be a number >= 0")


def validate(cfg: DictConfig) -> None:
    """Refuse values that cannot train, with one line naming the first bad one."""
    if cfg.lr is not None:
        _positive("lr", cfg.lr)
    _validate_optimizer(cfg.optimizer)
    _validate_model(cfg)
    for key in ("epochs", "batch_size"):
        if cfg[key] < 1:
            raise ConfigError(f"{key}={cfg[key]} is not allowed: must be an integer >= 1")
    if cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed} is not allowed: must be an integer >= 0")
    if not 1 <= cfg.seeds <= MAX_SEEDS:
        raise ConfigError(f"seeds={cfg.seeds} is not allowed: must be an integer from 1 to {MAX_SEEDS}")
    _validate_data(cfg.data)
    validate_objective(cfg)
    _validate_training(cfg.training)
    if cfg.get("pruner") is not None:
        _validate_pruner(cfg.pruner, epoch_metrics(task_of(cfg)))


def _validate_model(cfg: DictConfig) -> None:
    """The MLP's sizes; any model's builder importable and its activation a Keras one."""
    model = cfg.model
    if model is None or "_target_" not in model:
        raise ConfigError("model is not set: choose model=mlp|cnn or a config of yours with a _target_ builder")
    check_importable("model._target_", model._target_)
    activation = model.get("activation")
    if activation is not None and activation not in KERAS_ACTIVATIONS:
        raise ConfigError(
            f"activation={activation} is not a Keras activation: use one of " + " ".join(KERAS_ACTIVATIONS)
        )
    if not is_mlp(cfg):
        return
    if model.units is not None:
        if len(model.units) == 0:
            raise ConfigError("model.units=[] is not allowed: give at least one hidden layer size")
        for i, units in enumerate(model.units):
            if not isinstance(units, int) or isinstance(units, bool) or units < 1:
                raise ConfigError(f"model.units[{i}]={units} is not allowed: must be an integer >= 1")
    else:
        for key in ("depth", "width"):
            value = model[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key}={value} is not allowed: must be an integer >= 1")
        _positive("model.taper", model.taper)


def _validate_data(data: DictConfig) -> None:
    task = data.get("task") or "classification"
    if task not in TASKS:
        raise ConfigError(f"data.task={task} is not allowed: use {' or '.join(TASKS)}")
    target = data.get("_target_")
    if target is not None:
        check_importable("data._target_", target)
        if target == CSV_LOADER:
            if not data.get("path") or not data.get("target"):
                raise ConfigError("data=csv needs data.path=FILE.csv and data.target=COLUMN (the column to predict)")
            # The table read and checked now, before TensorFlow loads: a missing column or a text feature is
            # refused at once (what was read stays cached for the run in this process).
            raw_arrays(data)
    elif data.path is None and data.name not in DATASET_TRAIN_SIZES:
        raise ConfigError(
            f"data.name={data.name} is not a known dataset: use one of "
            f"{' '.join(DATASET_TRAIN_SIZES)}, give data.path=DIR_OR_NPZ, or a loader with data._target_"
        )
    size = data.validation_size
    if (
        isinstance(size, bool)
        or not isinstance(size, int | float)
        or size <= 0
        or (isinstance(size, float) and size >= 1)
    ):
        raise ConfigError(
            f"data.validation_size={size} is not allowed: give a number of rows >= 1 or a fraction between 0 and 1"
        )
    if data.limit is not None:
        if data.limit < 1:
            raise ConfigError(
                f"data.limit={data.limit} is not allowed: must be an integer >= 1 (or null for all training images)"
            )
        if target is None and data.path is None:
            check_limit(data, DATASET_TRAIN_SIZES[data.name])


def _validate_training(training: DictConfig) -> None:
    if not isinstance(training.jit_compile, bool) and str(training.jit_compile).lower() != "auto":
        raise ConfigError(f"training.jit_compile={training.jit_compile} is not allowed: use auto, true or false")
    for key in ("fused_steps", "steps_per_execution"):
        if training[key] < 1:
            raise ConfigError(f"training.{key}={training[key]} is not allowed: must be an integer >= 1")
    if training.threads is not None and training.threads < 1:
        raise ConfigError(f"training.threads={training.threads} is not allowed: must be >= 1 or null")
    if training.predict_samples < 0:
        raise ConfigError(f"training.predict_samples={training.predict_samples} is not allowed: must be >= 0")


def _validate_pruner(pruner: DictConfig, per_epoch: list[str]) -> None:
    """The pruner's values (its kind and types are checked at composition: sweeplab.schema.PrunerConfig)."""
    for key, minimum in (("warmup_epochs", 0), ("min_runs", 1)):
        value = pruner[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"pruner.{key}={value} is not allowed: must be an integer >= {minimum}")
    if pruner.objective not in per_epoch:
        raise ConfigError(
            f"pruner.objective={pruner.objective} is not allowed: pruning compares a per-epoch metric, "
            f"one of {' '.join(per_epoch)}"
        )
    percentile = pruner.percentile
    if isinstance(percentile, bool) or not isinstance(percentile, int | float) or not 0 <= percentile <= 100:
        raise ConfigError(f"pruner.percentile={percentile} is not allowed: must be a number from 0 to 100")
