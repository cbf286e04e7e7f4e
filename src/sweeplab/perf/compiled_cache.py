"""A compiled model handed from one job to the next in the same process: same results, no second compile.

Jobs of a learning-rate or seed sweep compile the very same XLA steps (the learning rate is a variable of
the optimizer). A run that ended well leaves its compiled model (`keep`); the next job with the same
model, data shape, loss and optimizer settings (`compile_key`) takes it (`take`), with every variable of the
model set to those of the fresh model its own seed builds (weights, batch-normalisation statistics, the
seed generators of dropout and other random layers) and a fresh optimizer state: its updates are those of
a freshly compiled model, bit for bit (tests/test_compiled.py). A model whose variables do not line up
with the fresh one's is compiled afresh, with one line saying why (`why_not_reusable`). One model is kept,
in the process's one `CACHE`. `training.reuse_compiled` turns it off. TensorFlow only: on JAX a fresh
compile draws one shuffle of the data to build its metrics, so reuse would change the order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeplab.data import Dataset


def compile_key(cfg: DictConfig, data: Dataset) -> str:
    """What the compiled steps depend on: the model section (its builder and all its keys), the data's
    shapes and task, the loss, the optimizer but its learning rate, the batch size and step settings."""
    import keras

    model = OmegaConf.to_container(cfg.model, resolve=True)
    optimizer = OmegaConf.to_container(cfg.optimizer, resolve=True)
    assert isinstance(optimizer, dict)
    optimizer.pop("learning_rate", None)
    key = {
        "backend": keras.backend.backend(),
        "model": model,  # the builder and every key it is called with (resolved: the MLP's root knobs too)
        "input_shape": list(data.input_shape),
        "num_outputs": data.num_outputs,
        "task": data.task,  # the loss and metrics
        "optimizer": optimizer,
        "batch_size": cfg.batch_size,
        "steps": {k: cfg.training[k] for k in ("jit_compile", "fused_steps", "steps_per_execution")},
    }
    return json.dumps(key, sort_keys=True, default=str)


class CompiledCache:
    """The compiled model of the last run that ended well, for the next job in the same process to take."""

    def __init__(self) -> None:
        self._kept: tuple[str, Any] | None = None  # (compile_key, compiled model)
        self.reused = False  # whether the last `take` handed a kept model over

    def take(self, cfg: DictConfig, data: Dataset, build: Callable[[], Any]) -> Any | None:
        """The kept model, reset to how this job's fresh model would start, or None (compile a new one).

        `build()` returns this job's fresh, uncompiled model. Call `take` where the job would build its model:
        after seeding, since the fresh weights and seeds come from the seed.
        """
        self.reused = False
        if not _reusable(cfg) or self._kept is None or self._kept[0] != compile_key(cfg, data):
            return None
        model = self._kept[1]
        self._kept = None  # the job owns it now; a job that fails does not give it back
        fresh = build()
        reason = why_not_reusable(model, fresh)
        if reason is not None:
            from sweeplab.backend import fresh_start

            print(
                f"sweeplab: training.reuse_compiled is off for this model: {reason}; "
                "it is compiled afresh (same results, slower)",
                flush=True,
            )
            fresh_start(cfg.seed)  # the caller builds its fresh model from the seed again
            return None
        _reset(model, fresh, cfg)
        self.reused = True
        return model

    def keep(self, cfg: DictConfig, data: Dataset, model: Any) -> None:
        """Leave `model`, whose run ended well, for the next job in this process."""
        self._kept = (compile_key(cfg, data), model) if _reusable(cfg) else None


# The process's one cache: train.run takes from it and keeps into it, so that the jobs a worker runs one after
# another (a sweep's, a config's seeds) compile once; sweep.job reads `reused` into the job's report.
CACHE = CompiledCache()


def why_not_reusable(kept: Any, fresh: Any) -> str | None:
    """Why the compiled `kept` model cannot be reset to the uncompiled `fresh` one, in a few words; None: it can."""
    if type(kept) is not type(fresh):
        return f"the kept model is a {type(kept).__name__}, this job's a {type(fresh).__name__}"
    ours, theirs = _state(kept), _state(fresh)
    if len(ours) != len(theirs):
        return f"it has {len(theirs)} variables where the kept model has {len(ours)}"
    for old, new in zip(ours, theirs, strict=True):
        if tuple(old.shape) != tuple(new.shape) or old.dtype != new.dtype:
            was, now = f"{old.dtype}{tuple(old.shape)}", f"{new.dtype}{tuple(new.shape)}"
            return f"its variable {new.path} is {now}, the kept model's {was}"
    return None


def _reusable(cfg: DictConfig) -> bool:
    import keras

    return bool(cfg.training.reuse_compiled) and keras.backend.backend() == "tensorflow"


def _state(model: Any) -> list[Any]:
    """Every variable a train step reads or changes: weights, non-trainable statistics, seed generators' states."""
    return list(model.variables)


def _reset(model: Any, fresh: Any, cfg: DictConfig) -> None:
    from sweeplab.optimizers import build_optimizer

    for kept, new in zip(_state(model), _state(fresh), strict=True):
        kept.assign(new)
    optimizer = build_optimizer(cfg)  # this job's learning rate, and the optimizer's initial state
    optimizer.build(model.trainable_variables)
    for kept, new in zip(model.optimizer.variables, optimizer.variables, strict=True):
        kept.assign(new)
