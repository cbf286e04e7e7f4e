"""A compiled model handed from one job to the next in the same process: same results, no second compile.

Jobs of a learning-rate or seed sweep compile the very same XLA steps (the learning rate is a variable of
the optimizer). A run that ended well leaves its compiled model (`keep`); the next job with the same
model and optimizer settings (`compile_key`) takes it (`take`), reset to the weights its own fresh model
would start from and a fresh optimizer state: its updates are those of a freshly compiled model, bit for
bit (tests/test_compiled.py). One model is kept. `training.reuse_compiled` turns it off. TensorFlow only:
on JAX a fresh compile draws one shuffle of the data to build its metrics, so reuse would change the order.
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeplab.builder import builder_arguments
from sweeplab.data import Dataset

_kept: tuple[str, Any] | None = None  # (compile_key, compiled model) of the last run that ended well
_reused = False  # whether the last `take` handed a kept model over


def compile_key(cfg: DictConfig, data: Dataset) -> str:
    """What the compiled steps depend on: the model, the optimizer but its learning rate, the step settings."""
    import keras

    optimizer = OmegaConf.to_container(cfg.optimizer, resolve=True)
    assert isinstance(optimizer, dict)
    optimizer.pop("learning_rate", None)
    key = {
        "backend": keras.backend.backend(),
        "input_shape": list(data.input_shape),
        "num_outputs": data.num_outputs,
        "task": data.task,
        "model": [str(cfg.model.get("_target_")), builder_arguments(cfg)],
        "optimizer": optimizer,
        "batch_size": cfg.batch_size,
        "steps": {k: cfg.training[k] for k in ("jit_compile", "fused_steps", "steps_per_execution")},
    }
    return json.dumps(key, sort_keys=True, default=str)


def take(cfg: DictConfig, data: Dataset) -> Any | None:
    """The kept model, reset to how this job's fresh model would start, or None (compile a new one).

    Call it where the job would build its model: after seeding, since the fresh weights come from the seed.
    """
    global _kept, _reused
    _reused = False
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
    _reused = True
    return model


def last_take_reused() -> bool:
    """Whether this process's last run took the compiled model of the run before it."""
    return _reused


def keep(cfg: DictConfig, data: Dataset, model: Any) -> None:
    """Leave `model`, whose run ended well, for the next job in this process."""
    global _kept
    _kept = (compile_key(cfg, data), model) if _reusable(cfg) else None


def _reusable(cfg: DictConfig) -> bool:
    import keras

    return bool(cfg.training.reuse_compiled) and keras.backend.backend() == "tensorflow"


def _reset(model: Any, cfg: DictConfig, data: Dataset) -> None:
    from sweeplab.builder import build_model
    from sweeplab.optimizers import build_optimizer

    fresh = build_model(cfg, data.input_shape, data.num_outputs, data.task)
    model.set_weights(fresh.get_weights())
    optimizer = build_optimizer(cfg)  # this job's learning rate, and the optimizer's initial state
    optimizer.build(model.trainable_variables)
    for kept, new in zip(model.optimizer.variables, optimizer.variables, strict=True):
        kept.assign(new)
