"""Config schemas (typed, registered with Hydra) and the checks that run before any work starts.

Types are enforced by Hydra at composition (`lr=fast` fails there); values are checked by `validate`,
which raises `ConfigError` with one line naming the bad value. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

# keras.activations' public functions (checked against Keras by tests/test_config.py), listed here so
# that a typo is refused without importing TensorFlow. `threshold` is left out: it needs arguments.
KERAS_ACTIVATIONS = (
    "celu elu exponential gelu glu hard_shrink hard_sigmoid hard_silu hard_swish hard_tanh leaky_relu "
    "linear log_sigmoid log_softmax mish relu relu6 selu sigmoid silu soft_shrink softmax softplus "
    "softsign sparse_plus sparse_sigmoid sparsemax squareplus swish tanh tanh_shrink"
).split()

# Training images each built-in dataset ships (Keras layout), to refuse a too-large data.limit early.
DATASET_TRAIN_SIZES = {"fashion_mnist": 60_000, "mnist": 60_000}

# Optimizer settings that are fractions in [0, 1).
_FRACTION_PARAMS = ("momentum", "rho", "beta_1", "beta_2")


class ConfigError(ValueError):
    """A config value that cannot work; the message is one line naming it."""


@dataclass
class DataConfig:
    name: str = "fashion_mnist"
    path: str | None = None
    limit: int | None = None
    validation_size: int = 5000
    class_names: list[str] = field(default_factory=list)


@dataclass
class ModelConfig:
    units: list[int] | None = None
    taper: float = 3.0


@dataclass
class TrainingConfig:
    jit_compile: bool = True
    fused_steps: int = 32
    steps_per_execution: int = 32
    reuse_compiled: bool = True
    threads: int | None = None
    verbose: str = "auto"
    predict_samples: int = 3


@dataclass
class TrackingConfig:
    uri: str | None = None
    experiment: str = "fashion_mnist"
    log_model: bool = True
    retries: int = 2
    timeout: float = 10.0


@dataclass
class SweeplabConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: Any = None
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    tuner: Any = None
    sweeps: Any = None
    backend: str = "tensorflow"
    lr: float | None = None
    activation: str = "relu"
    depth: int = 2
    width: int = 300
    epochs: int = 30
    batch_size: int = 32
    seed: int = 42
    force: bool = False


def register_configs() -> None:
    ConfigStore.instance().store(name="base_config", node=SweeplabConfig)


def hidden_units(cfg: DictConfig) -> list[int]:
    """Hidden layer sizes: model.units if given, else width tapered by model.taper over depth layers."""
    if cfg.model.units is not None:
        return [int(u) for u in cfg.model.units]
    return [max(1, round(cfg.width / cfg.model.taper**i)) for i in range(cfg.depth)]


def learning_rate(cfg: DictConfig) -> float:
    """The learning rate a run uses: the root `lr` if set, else the optimizer's usual one."""
    return float(cfg.lr if cfg.lr is not None else cfg.optimizer.learning_rate)


def optimizer_name(cfg: DictConfig) -> str:
    return str(cfg.optimizer.name)


def _positive(name: str, value: Any, allowed: str = "a number > 0") -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}={value!r} is not allowed: must be {allowed}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value} is not allowed: must be {allowed}")


def _validate_optimizer(opt: DictConfig) -> None:
    if opt is None or "_target_" not in opt:
        raise ConfigError(
            "optimizer is not set: choose one of optimizer=sgd|momentum|nesterov|rmsprop|adam|adamw|nadam|adagrad"
        )
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
    if cfg.model.units is not None:
        if len(cfg.model.units) == 0:
            raise ConfigError("model.units=[] is not allowed: give at least one hidden layer size")
        for i, units in enumerate(cfg.model.units):
            if not isinstance(units, int) or isinstance(units, bool) or units < 1:
                raise ConfigError(f"model.units[{i}]={units} is not allowed: must be an integer >= 1")
    else:
        for key in ("depth", "width"):
            if cfg[key] < 1:
                raise ConfigError(f"{key}={cfg[key]} is not allowed: must be an integer >= 1")
        _positive("model.taper", cfg.model.taper)
    for key in ("epochs", "batch_size"):
        if cfg[key] < 1:
            raise ConfigError(f"{key}={cfg[key]} is not allowed: must be an integer >= 1")
    if cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed} is not allowed: must be an integer >= 0")
    if cfg.activation not in KERAS_ACTIVATIONS:
        raise ConfigError(
            f"activation={cfg.activation} is not a Keras activation: use one of " + " ".join(KERAS_ACTIVATIONS)
        )
    if cfg.backend not in ("tensorflow", "jax"):
        raise ConfigError(f"backend={cfg.backend} is not allowed: use tensorflow or jax")
    _validate_data(cfg.data)
    _validate_training(cfg.training)
    if cfg.tuner is not None:
        from sweeplab.search_space import validate_tuner  # here, not above: it imports this module

        validate_tuner(cfg)


def _validate_data(data: DictConfig) -> None:
    if data.path is None and data.name not in DATASET_TRAIN_SIZES:
        raise ConfigError(
            f"data.name={data.name} is not a known dataset: use one of "
            f"{' '.join(DATASET_TRAIN_SIZES)}, or give data.path=DIR_OR_NPZ"
        )
    if data.validation_size < 1:
        raise ConfigError(f"data.validation_size={data.validation_size} is not allowed: must be >= 1")
    if data.limit is not None:
        if data.limit < 1:
            raise ConfigError(
                f"data.limit={data.limit} is not allowed: must be an integer >= 1 (or null for all training images)"
            )
        if data.path is None:
            check_limit(data, DATASET_TRAIN_SIZES[data.name])


def check_limit(data: DictConfig, train_images: int) -> None:
    """data.limit counts training images left after the validation split."""
    available = train_images - data.validation_size
    if available < 1:
        raise ConfigError(
            f"data.validation_size={data.validation_size} leaves no training images ({data.name} has {train_images})"
        )
    if data.limit is not None and data.limit > available:
        raise ConfigError(
            f"data.limit={data.limit} is larger than the data: {data.name} has {available} "
            f"training images after the {data.validation_size} validation images"
        )


def _validate_training(training: DictConfig) -> None:
    for key in ("fused_steps", "steps_per_execution"):
        if training[key] < 1:
            raise ConfigError(f"training.{key}={training[key]} is not allowed: must be an integer >= 1")
    if training.threads is not None and training.threads < 1:
        raise ConfigError(f"training.threads={training.threads} is not allowed: must be >= 1 or null")
    if training.predict_samples < 0:
        raise ConfigError(f"training.predict_samples={training.predict_samples} is not allowed: must be >= 0")
    if str(training.verbose) not in ("auto", "0", "1", "2"):
        raise ConfigError(f"training.verbose={training.verbose} is not allowed: use auto, 0, 1 or 2")


# Keys that change how or where a run is recorded, not what it computes.
_NOT_IDENTITY = ("tracking", "force", "sweeps", "tuner", "hydra")
# fused_steps and reuse_compiled give the same updates (tests/test_steps.py, tests/test_compiled.py): runs with
# and without them are the same job.
_NOT_IDENTITY_TRAINING = ("threads", "verbose", "fused_steps", "reuse_compiled")


def identity(cfg: DictConfig) -> dict[str, Any]:
    """The part of the resolved config that determines a run's result."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    for key in _NOT_IDENTITY:
        plain.pop(key, None)
    for key in _NOT_IDENTITY_TRAINING:
        plain.get("training", {}).pop(key, None)
    plain["lr"] = learning_rate(cfg)
    plain["optimizer"]["learning_rate"] = plain["lr"]
    plain["model"]["units"] = hidden_units(cfg)
    return plain


def config_hash(cfg: DictConfig) -> str:
    """A stable hash of `identity(cfg)`: the same job gets the same hash, whatever its folder or time."""
    text = json.dumps(identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
