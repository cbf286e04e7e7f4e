"""A job that takes the compiled model of an earlier job in its process (sweeplab.perf.compiled_cache) trains exactly as
a freshly compiled model would.

Each case runs `train.run` six times in one fresh process (the backend is fixed per process) on a real MLflow
store. B takes A's compiled model (another learning rate and seed), D takes C's (SGD with momentum, whose
slots C left full); "B fresh" and "D fresh" compile their own, since the job before them had other steps. On
TensorFlow the reused runs must give the fresh runs' numbers, bit for bit. On JAX nothing is reused (a fresh
model's first fit draws an extra shuffle there), and the numbers still repeat.
"""

from __future__ import annotations

import re

import pytest
from mlflow.tracking import MlflowClient

from conftest import require_module, run_child
from sweeplab.config import config_hash

CHILD = """
import json, sys
from omegaconf import OmegaConf
from sweeplab.backend import select_backend

base = OmegaConf.create(sys.stdin.read())
select_backend(base.backend)
from sweeplab.perf.compiled_cache import CACHE
from sweeplab.train import run

sgd, momentum = {"momentum": 0.0}, {"momentum": 0.5}
jobs = {
    "A": {"lr": 0.05, "seed": 1, "optimizer": sgd},
    "B": {"lr": 0.2, "seed": 2, "optimizer": sgd},
    "C": {"lr": 0.05, "seed": 1, "optimizer": momentum},
    "D": {"lr": 0.2, "seed": 2, "optimizer": momentum},
    "B fresh": {"lr": 0.2, "seed": 2, "optimizer": sgd},
    "D fresh": {"lr": 0.2, "seed": 2, "optimizer": momentum},
}
results = {}
for name, change in jobs.items():
    result = run(OmegaConf.merge(base, change))
    results[name] = {
        "run_id": result.run_id, "reused": CACHE.reused, "test_loss": result.metrics["test_loss"]
    }
print("RESULT " + json.dumps(results))
"""
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_reused_compiled_model_trains_as_a_fresh_one(compose_cfg, store: str, backend: str) -> None:
    if backend == "jax":
        require_module("jax")
    cfg = compose_cfg(
        f"backend={backend}", "data.limit=2024", "data.validation_size=1000", "epochs=2", "training.verbose=0",
        "tracking.log_model=false",
    )  # fmt: skip
    jobs = run_child(CHILD, cfg)

    reused = backend == "tensorflow"
    assert {name: job["reused"] for name, job in jobs.items()} == {
        "A": False, "B": reused, "C": False, "D": reused, "B fresh": False, "D fresh": False,
    }  # fmt: skip
    client = MlflowClient(tracking_uri=store)

    def history(name: str) -> dict[str, list[float]]:
        run_id = jobs[name]["run_id"]
        return {m: [x.value for x in client.get_metric_history(run_id, m)] for m in METRICS}

    for name in ("B", "D"):
        assert history(name) == history(f"{name} fresh"), name  # exactly: the same updates
        assert jobs[name]["test_loss"] == jobs[f"{name} fresh"]["test_loss"], name
    assert history("B") != history("D")  # the momentum did change the training
    assert history("B")["loss"][1] < history("B")["loss"][0]


def test_reuse_does_not_change_what_a_run_is(compose_cfg) -> None:
    """A finished run is found again (and skipped in a sweep) whether or not it reused compiled steps."""
    assert config_hash(compose_cfg("training.reuse_compiled=false")) == config_hash(compose_cfg())


# Models with more state than weights: dropout's seed generator and batch normalisation's moving statistics
# must start B where a fresh model starts, or B's updates differ from B fresh's (which compiles its own: no
# reuse). C's builder gives another layout under B's model config: it is compiled afresh, with one line.
MODELS_CHILD = """
import contextlib, io, json, sys
import numpy as np
from omegaconf import OmegaConf
from sweeplab.backend import select_backend

base = OmegaConf.create(sys.stdin.read())
select_backend(base.backend)
import keras
from sweeplab.backend import fresh_start
from sweeplab.data import load_dataset
from sweeplab.optimizers import build_optimizer
from sweeplab.perf import compiled_cache
from sweeplab.perf.fused_steps import fit_batch_size, fuse_steps, fused_steps_of

def build(kind, units=16):
    extra = {"dropout": [keras.layers.Dropout(0.5)], "batchnorm": [keras.layers.BatchNormalization()]}[kind]
    return keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(units, activation="relu"), *extra,
         keras.layers.Dense(10, activation="softmax")]
    )

def job(cfg, make):
    fresh_start(cfg.seed)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model = compiled_cache.CACHE.take(cfg, data, make)
    reused = model is not None
    if model is None:
        model = make()
        model.compile(
            optimizer=build_optimizer(cfg), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
            jit_compile=cfg.training.jit_compile, steps_per_execution=cfg.training.steps_per_execution,
        )
        fuse_steps(model, cfg.batch_size, cfg.training.fused_steps)
    history = model.fit(
        data.x_train, data.y_train, epochs=cfg.epochs, verbose=0,
        batch_size=fit_batch_size(cfg.batch_size, fused_steps_of(model)),
    )
    compiled_cache.CACHE.keep(cfg, data, model)
    return {
        "reused": reused, "printed": printed.getvalue(),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "variables": {v.path: np.asarray(v).tolist() for v in model.variables},
    }

data = load_dataset(base.data)
results = {}
for kind in ("dropout", "batchnorm"):
    cfg = OmegaConf.merge(base, {"model": {"kind": kind}})
    fresh = OmegaConf.merge(cfg, {"lr": 0.2, "seed": 2, "training": {"reuse_compiled": False}})
    results[f"{kind} B fresh"] = job(fresh, lambda: build(kind))
    results[f"{kind} A"] = job(OmegaConf.merge(cfg, {"lr": 0.05, "seed": 1}), lambda: build(kind))
    results[f"{kind} B"] = job(OmegaConf.merge(cfg, {"lr": 0.2, "seed": 2}), lambda: build(kind))
results["C"] = job(OmegaConf.merge(cfg, {"lr": 0.2, "seed": 2}), lambda: build("batchnorm", units=8))
print("RESULT " + json.dumps(results))
"""


def test_reused_dropout_and_batchnorm_models_train_as_fresh_ones(compose_cfg) -> None:
    cfg = compose_cfg("data.limit=360", "data.validation_size=100", "epochs=2", "training.fused_steps=4")
    jobs = run_child(MODELS_CHILD, cfg)

    assert {name: job["reused"] for name, job in jobs.items()} == {
        "dropout B fresh": False, "dropout A": False, "dropout B": True,
        "batchnorm B fresh": False, "batchnorm A": False, "batchnorm B": True, "C": False,
    }  # fmt: skip
    for kind in ("dropout", "batchnorm"):
        reused, fresh = jobs[f"{kind} B"], jobs[f"{kind} B fresh"]
        assert reused["history"] == fresh["history"], kind  # exactly: the same updates
        assert reused["variables"] == fresh["variables"], kind  # weights, statistics, seed generators' states
        assert reused["history"]["loss"][1] < reused["history"]["loss"][0], kind
        assert reused["printed"] == "", kind
    statistics = [p for p in jobs["batchnorm B"]["variables"] if p.endswith(("moving_mean", "moving_variance"))]
    assert len(statistics) == 2  # compared above with the fresh model's
    assert any("seed_generator" in p for p in jobs["dropout B"]["variables"])
    assert re.fullmatch(
        r"sweeplab: training.reuse_compiled is off for this model: its variable \S+/kernel is float32\(784, 8\), "
        r"the kept model's float32\(784, 16\); it is compiled afresh \(same results, slower\)\n",
        jobs["C"]["printed"],
    ), jobs["C"]["printed"]
