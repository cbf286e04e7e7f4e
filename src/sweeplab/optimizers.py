"""Keras optimizers from the `optimizer` config group, with the run's learning rate."""

from __future__ import annotations

import keras
from hydra.utils import instantiate
from omegaconf import DictConfig

from sweeplab.config import learning_rate


def build_optimizer(cfg: DictConfig) -> keras.optimizers.Optimizer:
    return instantiate(cfg.optimizer, learning_rate=learning_rate(cfg))


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
