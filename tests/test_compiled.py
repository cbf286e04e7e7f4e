"""A job that takes the compiled model of an earlier job in its process (sweeplab.perf.compiled_cache) trains exactly as
a freshly compiled model would.

Each case runs `train.run` six times in one fresh process (the backend is fixed per process) on a real MLflow
store. B takes A's compiled model (another learning rate and seed), D takes C's (SGD with momentum, whose
slots C left full); "B fresh" and "D fresh" compile their own, since the job before them had other steps. On
TensorFlow the reused runs must give the fresh runs' numbers, bit for bit. On JAX nothing is reused (a fresh
model's first fit draws an extra shuffle there), and the numbers still repeat.
"""

from __future__ import annotations

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
from sweeplab.perf.compiled_cache import last_take_reused
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
        "run_id": result.run_id, "reused": last_take_reused(), "test_loss": result.metrics["test_loss"]
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
