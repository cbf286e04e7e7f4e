"""`backend=tensorflow|jax`: refused when unknown or when the process already runs the other backend; a JAX
run trains, logs its model, and the model predicts through mlflow.pyfunc."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import QUICK, experiment_runs
from sweeplab.backend import select_backend
from sweeplab.config import ConfigError, validate


def test_unknown_backend_is_refused(compose_cfg) -> None:
    cfg = compose_cfg("backend=theano")
    with pytest.raises(ConfigError, match="backend=theano"):
        validate(cfg)


def test_backend_cannot_change_once_keras_is_loaded() -> None:
    import keras

    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    with pytest.raises(ConfigError, match=f"backend={other}: this process already runs Keras"):
        select_backend(other)
    select_backend(keras.backend.backend())  # the loaded one is fine


@pytest.mark.slow
def test_jax_run_logs_a_model_that_predicts(cli, client) -> None:
    pytest.importorskip("jax")
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
