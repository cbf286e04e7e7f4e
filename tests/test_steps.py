"""Fused training steps (`training.fused_steps`) train exactly as Keras's own step does, on both backends.

Each case trains the configured model twice in one fresh process (the backend is fixed per process), from
the same seed: once with Keras's step (fused_steps=1) and once with 8 minibatches per compiled call. 2,024
images make a short last call (7 minibatches) whose last minibatch is short too (8 images), as an epoch of
the full data ends (55,000 = 1,718 x 32 + 24).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_module, run_child
from sweeplab.config import config_hash

CHILD = """
import json, sys
import numpy as np
from omegaconf import OmegaConf
from sweeplab.backend import select_backend

cfg = OmegaConf.create(sys.stdin.read())
select_backend(cfg.backend)
from sweeplab.data import load_dataset
from sweeplab.backend import fresh_start
from sweeplab.perf.fused_steps import fit_batch_size
from sweeplab.train import compile_model

data = load_dataset(cfg.data)
results = {}
for fused in (1, 8):
    cfg.training.fused_steps = fused
    fresh_start(cfg.seed)
    model = compile_model(cfg, data)
    history = model.fit(
        data.x_train, data.y_train, epochs=cfg.epochs, verbose=0,
        batch_size=fit_batch_size(cfg.batch_size, fused), validation_data=(data.x_valid, data.y_valid),
    )
    results[fused] = {
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "iterations": int(np.asarray(model.optimizer.iterations)),
        "weights": [w.tolist() for w in model.get_weights()],
        "class": type(model).__name__,
    }
print("RESULT " + json.dumps(results))
"""


@pytest.mark.parametrize(
    "backend, jit",
    [("tensorflow", True), ("tensorflow", False), ("jax", True)],
    ids=["tensorflow-xla", "tensorflow-graph", "jax"],
)
def test_fused_steps_give_the_same_training_as_keras_steps(compose_cfg, backend: str, jit: bool) -> None:
    if backend == "jax":
        require_module("jax")
    cfg = compose_cfg(
        f"backend={backend}", f"training.jit_compile={jit}", "data.limit=2024", "data.validation_size=500", "epochs=2"
    )
    keras_step, fused = run_child(CHILD, cfg).values()

    steps_per_epoch = -(-2024 // 32)  # 64: 63 full minibatches and one of 8 images
    assert keras_step["iterations"] == fused["iterations"] == 2 * steps_per_epoch
    assert fused["class"] == keras_step["class"] == "Sequential"  # a plain Keras model is saved and logged
    for name, values in keras_step["history"].items():
        assert fused["history"][name] == pytest.approx(values, rel=1e-5, abs=1e-6), name
    assert keras_step["history"]["loss"][1] < keras_step["history"]["loss"][0]  # it did train
    for ours, theirs in zip(fused["weights"], keras_step["weights"], strict=True):
        np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-5, atol=1e-6)


def test_fused_steps_do_not_change_what_a_run_is(compose_cfg) -> None:
    """A finished run is found again (and skipped in a sweep) whatever fused_steps it ran with."""
    assert config_hash(compose_cfg("training.fused_steps=1")) == config_hash(compose_cfg())
