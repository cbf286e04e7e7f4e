"""An experiment of many finished runs with 30-epoch histories, written through MLflow's own API.

Each run is one create_run, one log_batch (params, tags and every epoch's metrics) and one
set_terminated, so 1,000 runs take seconds, not the hours of training them.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "nadam", "adagrad")
LEARNING_RATES = (0.001, 0.003, 0.01, 0.03, 0.1)


def make_experiment(uri: str, name: str, runs: int, epochs: int = 30, seed: int = 0) -> str:
    """Create experiment `name` in the store at `uri` with `runs` FINISHED runs; returns its id."""
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(name)
    rng = np.random.default_rng(seed)
    grid = itertools.cycle(itertools.product(OPTIMIZERS, LEARNING_RATES))
    now = int(time.time() * 1000)
    for i in range(runs):
        optimizer, lr = next(grid)
        run = client.create_run(experiment_id, run_name=f"mlp 300-100 relu {optimizer} lr={lr:g} seed={i}")
        # A plausible learning curve: accuracy rises towards a ceiling that depends on the optimizer.
        ceiling = 0.86 + 0.03 * rng.random()
        curve = ceiling - (ceiling - 0.7) * np.exp(-np.arange(1, epochs + 1) / (3 + 5 * rng.random()))
        metrics = []
        for step, acc in enumerate(curve):
            ts = now + step
            metrics += [
                Metric("accuracy", float(acc + 0.01), ts, step),
                Metric("val_accuracy", float(acc), ts, step),
                Metric("loss", float(1.6 * (1 - acc)), ts, step),
                Metric("val_loss", float(1.7 * (1 - acc)), ts, step),
                Metric("epoch_time", float(1.5 + 0.1 * rng.random()), ts, step),
            ]
        metrics += [
            Metric("test_accuracy", float(curve[-1] - 0.005), now, 0),
            Metric("test_loss", float(1.7 * (1 - curve[-1])), now, 0),
        ]
        params = [
            Param("optimizer.name", optimizer),
            Param("lr", str(lr)),
            Param("seed", str(i)),
            Param("epochs", str(epochs)),
            Param("batch_size", "32"),
        ]
        tags = [RunTag("sweeplab.dataset", "fashion_mnist"), RunTag("sweeplab.bench", "fake")]
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        client.set_terminated(run.info.run_id, "FINISHED")
    return experiment_id
