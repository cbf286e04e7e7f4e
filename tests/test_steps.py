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
from sweeplab.perf.fused_steps import fit_batch_size

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


# Models whose step carries more than weights from one minibatch to the next: dropout's seed generator,
# batch normalisation's moving statistics, a CNN with both kinds of layers. Built and compiled here as
# sweeplab compiles a run's model; each trains with Keras's step, then fused, from the same seed.
MODELS_CHILD = """
import json, sys
import numpy as np
from omegaconf import OmegaConf
from sweeplab.backend import select_backend

cfg = OmegaConf.create(sys.stdin.read())
select_backend(cfg.backend)
import keras
from sweeplab.backend import fresh_start
from sweeplab.data import load_dataset
from sweeplab.optimizers import build_optimizer
from sweeplab.perf.fused_steps import fit_batch_size, fuse_steps, fused_steps_of

def build(kind):
    layers = [keras.Input((28, 28)), keras.layers.Reshape((28, 28, 1))]
    if kind == "cnn":
        layers += [keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.MaxPooling2D(), keras.layers.Dropout(0.3)]
    layers += [keras.layers.Flatten(), keras.layers.Dense(16, activation="relu")]
    layers += {"dropout": [keras.layers.Dropout(0.5)], "batchnorm": [keras.layers.BatchNormalization()]}.get(kind, [])
    return keras.Sequential([*layers, keras.layers.Dense(10, activation="softmax")])

data = load_dataset(cfg.data)
results = {}
for kind in ("dropout", "batchnorm", "cnn"):
    for fused in (1, 8):
        fresh_start(cfg.seed)
        model = build(kind)
        model.compile(
            optimizer=build_optimizer(cfg), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
            jit_compile=cfg.training.jit_compile, steps_per_execution=cfg.training.steps_per_execution,
        )
        fuse_steps(model, cfg.batch_size, fused)
        history = model.fit(
            data.x_train, data.y_train, epochs=cfg.epochs, verbose=0,
            batch_size=fit_batch_size(cfg.batch_size, fused_steps_of(model)),
        )
        results[f"{kind} {fused}"] = {
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "fused_steps": fused_steps_of(model),
            "iterations": int(np.asarray(model.optimizer.iterations)),
            # every variable: weights, moving statistics, seed generators' states
            "variables": {v.path: np.asarray(v).tolist() for v in model.variables},
        }
print("RESULT " + json.dumps(results))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_fused_steps_keep_dropout_batchnorm_and_cnn_training(compose_cfg, backend: str) -> None:
    """As a run trains (XLA), without validation: the variables after training are compared, every one."""
    if backend == "jax":
        require_module("jax")
    # 360 images: a full call of 8 minibatches, then a short one of 3 and a minibatch of 8 images
    cfg = compose_cfg(f"backend={backend}", "data.limit=360", "data.validation_size=100", "epochs=2")
    results = run_child(MODELS_CHILD, cfg)

    for kind in ("dropout", "batchnorm", "cnn"):
        keras_step, fused = results[f"{kind} 1"], results[f"{kind} 8"]
        assert (keras_step["fused_steps"], fused["fused_steps"]) == (1, 8), kind
        assert keras_step["iterations"] == fused["iterations"] == 2 * 12, kind  # 11 full minibatches, one of 8
        for name, values in keras_step["history"].items():
            assert fused["history"][name] == pytest.approx(values, rel=1e-5, abs=1e-6), (kind, name)
        assert keras_step["history"]["loss"][1] < keras_step["history"]["loss"][0], kind  # it did train
        assert fused["variables"].keys() == keras_step["variables"].keys(), kind
        for path, values in keras_step["variables"].items():
            np.testing.assert_allclose(fused["variables"][path], values, rtol=1e-5, atol=1e-6, err_msg=f"{kind} {path}")
    statistics = [p for p in results["batchnorm 1"]["variables"] if p.endswith(("moving_mean", "moving_variance"))]
    assert len(statistics) == 2
    for path in statistics:  # they moved during training, and the same way with fused steps (checked above)
        assert not np.allclose(results["batchnorm 1"]["variables"][path], 0.0 if path.endswith("mean") else 1.0)
    seeds = [p for p in results["dropout 1"]["variables"] if "seed_generator" in p]
    assert len(seeds) == 1 and results["dropout 8"]["variables"][seeds[0]][1] == 2 * 12  # one draw per minibatch


def test_a_model_with_its_own_train_step_keeps_keras_step(capsys) -> None:
    """Fused, the logs its step adds would be lost (the fused TensorFlow step returns the metrics' results):
    fuse_steps leaves it Keras's step, says so in one line, and fit's batch is one minibatch."""
    import keras

    from sweeplab.perf.fused_steps import fuse_steps, fused_steps_of, why_not_fused

    class Counting(keras.Model):
        def train_step(self, data):  # type: ignore[no-untyped-def]
            return {**super().train_step(data), "steps": 1.0}

    inputs = keras.Input((4,))
    model = Counting(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert why_not_fused(keras.Sequential([inputs, keras.layers.Dense(2)])) is None
    assert fuse_steps(model, 32, 8) is model
    assert capsys.readouterr().out == (
        "sweeplab: training.fused_steps=8 is off for this model: its class Counting defines its own train_step; "
        "Keras's own step is used (same results, slower)\n"
    )
    assert fused_steps_of(model) == 1
    if keras.backend.backend() == "tensorflow":
        x, y = np.zeros((40, 4), "float32"), np.zeros(40, "int64")
        history = model.fit(x, y, batch_size=fit_batch_size(32, fused_steps_of(model)), epochs=1, verbose=0)
        assert history.history["steps"] == [1.0] and int(model.optimizer.iterations) == 2  # 32 + 8 images
