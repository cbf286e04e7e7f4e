"""Keras callbacks that record each epoch in MLflow and stop a run that diverged."""

from __future__ import annotations

import math
import time
from concurrent.futures import Future

import keras

from sweeplab.errors import DivergedError
from sweeplab.optimizers import current_learning_rate
from sweeplab.perf.process import in_background


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs an epoch's metrics, learning rate and duration in one call, with step=epoch.

    The call runs on a thread of its own, so the next epoch trains while the store writes (a SQLite commit,
    or a round trip to a server). Each epoch first waits for the previous epoch's call, and the end of
    training for the last: an error of the store fails the run at most one epoch late, and calls never pile
    up. (MLflow's own asynchronous logging, `synchronous=False`, polls its queue each second: ending the
    run waited up to a second for it.)

    mlflow.keras.MlflowCallback is not used: it swallows logging errors (a lost tracking server would go
    unnoticed) and logs every validation pass a second time without a step.
    """

    def __init__(self) -> None:
        super().__init__()
        self._started = 0.0
        self._run_id = ""
        self._pending: Future | None = None  # the previous epoch's call

    def on_train_begin(self, logs: dict | None = None) -> None:
        import mlflow  # imported by the run already; here so that this module does not need it

        self._run_id = mlflow.active_run().info.run_id  # the other thread has no active run of its own

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        metrics["learning_rate"] = current_learning_rate(self.model.optimizer)
        metrics["epoch_time"] = time.perf_counter() - self._started
        import mlflow

        self._wait()
        self._pending = in_background("epoch-metrics", mlflow.log_metrics, metrics, step=epoch, run_id=self._run_id)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._wait()

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()


class StopOnDivergence(keras.callbacks.Callback):
    """Raises DivergedError as soon as the loss is NaN or infinite, naming the epoch."""

    def __init__(self) -> None:
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise DivergedError(
                f"loss became {float(loss)} in epoch {self._epoch + 1}; the run diverged (lower the learning rate)"
            )
