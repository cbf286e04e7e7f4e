"""Keras callbacks: record each epoch in MLflow, stop a run that diverged or was stopped, show the epochs."""

from __future__ import annotations

import math
import time
from concurrent.futures import Future

import keras

from sweeplab import console
from sweeplab.errors import DivergedError
from sweeplab.optimizers import current_learning_rate
from sweeplab.perf.process import in_background
from sweeplab.signals import raise_if_interrupted


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


class StopOnSignal(keras.callbacks.Callback):
    """Raises again, at the next step, a Ctrl-C or SIGTERM whose exception was lost inside TensorFlow or a
    `__del__`: a cancelled job ends KILLED at once instead of training on to its last epoch."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        raise_if_interrupted()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        raise_if_interrupted()


class EpochProgress(keras.callbacks.Callback):
    """An epoch's progress in `mode` (console.BAR or console.LINES) for `samples` training images, headed by
    `label`: Keras's own Progbar in a terminal, a plain line elsewhere.

    fit() is called with verbose=0 and this callback instead of Keras's ProgbarLogger, which counts compiled
    calls (with `steps_per_execution` it reports the last step a call would have reached, past the epoch's end)
    and draws bars with escape codes wherever the system is POSIX. The bar here counts minibatches, as the
    tutorial's Keras loop shows them, and never passes its total: `batch_size` is the training minibatch,
    `per_step` how many minibatches one of fit's steps holds (fused steps).
    """

    def __init__(self, mode: str, samples: int, batch_size: int, per_step: int = 1, label: str = "") -> None:
        super().__init__()
        self.mode = mode
        self.label = label
        self.minibatches = max(1, math.ceil(samples / batch_size))
        self.per_step = max(1, per_step)
        self._bar: keras.utils.Progbar | None = None
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()
        if self.mode == console.BAR:
            prefix = f"{self.label} " if self.label else ""
            print(f"{prefix}Epoch {epoch + 1}/{self.params['epochs']}", flush=True)
            self._bar = keras.utils.Progbar(self.minibatches, stateless_metrics=set(), unit_name="step")

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._bar is not None:
            # `batch` is the last step of the call (past the end for the epoch's last call): clamp it.
            done = min(self.minibatches, (batch + 1) * self.per_step)
            self._bar.update(done, list((logs or {}).items()), finalize=False)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self._bar is not None:
            self._bar.update(self.minibatches, list(logs.items()), finalize=True)
            self._bar = None
        elif self.mode == console.LINES:
            seconds = time.perf_counter() - self._started
            print(console.epoch_line(epoch, self.params["epochs"], logs, seconds, self.label), flush=True)


def epoch_progress(verbose: str | int, samples: int, batch_size: int, fused_steps: int) -> list[EpochProgress]:
    """The callback for `training.verbose` (none at 0) under the current console heading, for fit(verbose=0)."""
    heading = console.heading()
    mode = console.display_mode(verbose, heading.lines_only)
    return [] if mode == console.OFF else [EpochProgress(mode, samples, batch_size, fused_steps, heading.label)]
