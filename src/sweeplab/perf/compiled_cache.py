"""A compiled model handed from one job to the next in the same process: same results, no second compile.

A joblib worker runs job after job. Each job used to build and compile its model again, and XLA compiled
its train, test and predict steps in the first epoch: about 2.5 s a job with both cores busy, while an
epoch takes about 1.1 s. Jobs of a learning-rate or seed sweep compile the very same steps every time
(the learning rate is a variable of the optimizer, not a constant of the step).

Here a run that ended well leaves its compiled model behind (`keep`). The next job whose model and
optimizer settings are the same (`compile_key`: any learning rate, seed, epochs or data size) takes it
(`take`): with the weights its own fresh model would start from, built under its seed, and the state a
fresh optimizer starts with. Its updates are then those of a freshly compiled model, bit for bit
(tests/test_compiled.py). One model is kept, so memory stays that of one job. `training.reuse_compiled`
turns it off.

TensorFlow only. On JAX, Keras's first fit of a newly compiled model draws one shuffle of the data to build
its metrics, so a reused model would see the epochs in another order than a fresh one: the same training in
distribution, not the same numbers. JAX jobs compile their own steps (and JAX compiles faster).
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeplab.config import hidden_units
from sweeplab.data import Dataset

_kept: tuple[str, Any] | None = None  # (compile_key, compiled model) of the last run that ended well


def compile_key(cfg: DictConfig, data: Dataset) -> str:
    """What the compiled steps depend on: the model, the optimizer but its learning rate, the step settings."""
    import keras

    optimizer = OmegaConf.to_container(cfg.optimizer, resolve=True)
    assert isinstance(optimizer, dict)
    optimizer.pop("learning_rate", None)
    key = {
        "backend": keras.backend.backend(),
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "units": hidden_units(cfg),
        "activation": cfg.activation,
        "optimizer": optimizer,
        "batch_size": cfg.batch_size,
        "steps": {k: cfg.training[k] for k in ("jit_compile", "fused_steps", "steps_per_execution")},
    }
    return json.dumps(key, sort_keys=True, default=str)


def take(cfg: DictConfig, data: Dataset) -> Any | None:
    """The kept model, reset to how this job's fresh model would start, or None (compile a new one).

    Call it where the job would build its model: after seeding, since the fresh weights come from the seed.
    """
    global _kept
    if not _reusable(cfg) or _kept is None or _kept[0] != compile_key(cfg, data):
        return None
    model = _kept[1]
    _kept = None  # the job owns it now; a job that fails does not give it back
    try:
        _reset(model, cfg, data)
    except (ValueError, TypeError):  # a layout this module does not know: compile afresh, from the seed again
        from sweeplab.backend import fresh_start

        fresh_start(cfg.seed)
        return None
    return model


def keep(cfg: DictConfig, data: Dataset, model: Any) -> None:
    """Leave `model`, whose run ended well, for the next job in this process."""
    global _kept
    _kept = (compile_key(cfg, data), model) if _reusable(cfg) else None


def _reusable(cfg: DictConfig) -> bool:
    import keras

    return bool(cfg.training.reuse_compiled) and keras.backend.backend() == "tensorflow"


def _reset(model: Any, cfg: DictConfig, data: Dataset) -> None:
    from sweeplab.model import build_mlp
    from sweeplab.optimizers import build_optimizer

    fresh = build_mlp(data.input_shape, hidden_units(cfg), cfg.activation, data.num_classes)
    model.set_weights(fresh.get_weights())
    optimizer = build_optimizer(cfg)  # this job's learning rate, and the optimizer's initial state
    optimizer.build(model.trainable_variables)
    for kept, new in zip(model.optimizer.variables, optimizer.variables, strict=True):
        kept.assign(new)
