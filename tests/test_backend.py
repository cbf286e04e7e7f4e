"""`backend=tensorflow|jax`: refused when unknown or when the process already runs the other backend; a JAX
run trains, logs its model, and the model predicts through mlflow.pyfunc; a Keras Tuner search on JAX
continues and registers its best model."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException

from conftest import QUICK, experiment_runs, require_module
from sweeplab.backend import select_backend
from sweeplab.errors import ConfigError


def test_unknown_backend_is_refused(compose_cfg) -> None:
    with pytest.raises(ConfigCompositionException, match="backend=theano"):
        compose_cfg("backend=theano")  # sweeplab.schema.Backend


def test_backend_cannot_change_once_keras_is_loaded() -> None:
    import keras

    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    with pytest.raises(ConfigError, match=f"backend={other}: this process already runs Keras"):
        select_backend(other)
    select_backend(keras.backend.backend())  # the loaded one is fine


@pytest.mark.slow
def test_jax_run_logs_a_model_that_predicts(cli, client) -> None:
    require_module("jax")
    done = cli(*QUICK, "epochs=1", "backend=jax")
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = experiment_runs(client)
    assert run.info.status == "FINISHED"
    assert run.data.tags["keras.backend"] == "jax"
    assert run.data.metrics["test_accuracy"] > 0.3

    import mlflow

    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    probabilities = np.asarray(model.predict(np.zeros((2, 28, 28), np.float32)))
    assert probabilities.shape == (2, 10)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)


@pytest.mark.slow
def test_jax_search_continues_and_registers_a_model_that_predicts(cli, client) -> None:
    """Keras Tuner on the JAX backend: every trial an MLflow run on JAX, a larger budget continues the same
    search (only the new trial runs), and the registered best model predicts through mlflow.pyfunc."""
    require_module("jax")
    search = [
        "tuner=random",
        "backend=jax",
        "data.limit=500",
        "data.validation_size=1000",
        "epochs=2",
        "tuner.max_epochs=2",
        "training.verbose=0",
        "tuner.registered_model=jax-mlp",
    ]
    first = cli(*search, "tuner.max_trials=1")
    assert first.returncode == 0, first.stderr[-2000:]
    again = cli(*search, "tuner.max_trials=2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming random search" in again.stdout

    runs = experiment_runs(client)
    parents = [r for r in runs if r.data.tags.get("sweeplab.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("sweeplab.role") == "trial"]
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert sorted(r.data.tags["sweeplab.trial_id"] for r in trials) == ["0", "1"]  # each trial once
    assert {(r.info.status, r.data.tags["keras.backend"]) for r in [*parents, *trials]} == {("FINISHED", "jax")}

    import mlflow

    version = max(int(v.version) for v in client.search_model_versions("name = 'jax-mlp'"))
    model = mlflow.pyfunc.load_model(f"models:/jax-mlp/{version}")
    probabilities = np.asarray(model.predict(np.zeros((3, 28, 28), np.float32)))
    assert probabilities.shape == (3, 10)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
