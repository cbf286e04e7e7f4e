"""Keras optimizers from the `optimizer` config group, with the run's learning rate."""

from __future__ import annotations

import keras
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from sweeplab.config import learning_rate
from sweeplab.errors import ConfigError


def build_optimizer(cfg: DictConfig) -> keras.optimizers.Optimizer:
    """The configured optimizer; settings Keras refuses are one line naming them (before the run opens)."""
    try:
        return instantiate(cfg.optimizer, learning_rate=learning_rate(cfg))
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ConfigError(f"optimizer {cfg.optimizer.get('name')}: {type(cause).__name__}: {cause}") from err


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
