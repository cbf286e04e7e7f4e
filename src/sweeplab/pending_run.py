"""A run's MLflow side, done in a background thread while the model trains.

Importing MLflow, opening the store, creating the run and logging its params and dataset take about
3 s, as long as two epochs of the baseline. A training step runs in TensorFlow's or XLA's threads without
the GIL and leaves part of the CPU idle, so that work happens there instead of before the first epoch:

    pending = PendingRun(cfg, name, data)   # starts the thread
    ... fit(..., log_epoch=pending.log_epoch) ...
    run_id = pending.wait()                 # then tracking.tracked_run(..., run_id=run_id) reopens it

Epoch metrics go through a queue and are written in one call each, in order, once the run exists. An
error in the thread (a store that cannot be written, a server gone) stops training at the next epoch.
The thread also imports what the end of the run needs (the model flavour, matplotlib).
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from sweeplab import tracking

if TYPE_CHECKING:
    from sweeplab.data import Dataset

_DONE = None  # the queue's last item


class PendingRun:
    """The run of `cfg`, created in a thread named sweeplab-tracking; see the module docstring."""

    def __init__(self, cfg: DictConfig, name: str, data: Dataset) -> None:
        self.cfg, self.name, self.data = cfg, name, data
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.error: BaseException | None = None
        self._epochs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="sweeplab-tracking", daemon=True)
        self._thread.start()

    # -- the training thread ---------------------------------------------------------------------------
    def log_epoch(self, metrics: dict[str, float], step: int) -> None:
        """Queue an epoch's metrics (MlflowEpochLogger's `log`); raises the thread's error, if any."""
        if self.error is not None:
            raise self.error
        self._epochs.put((metrics, step, int(time.time() * 1000)))

    def wait(self) -> str:
        """Once every queued epoch is written: the run id. Raises the thread's error if no run was made.

        A Ctrl-C while waiting is kept and raised after the thread is done, so that the run can be ended.
        """
        self._epochs.put(_DONE)
        interrupted: BaseException | None = None
        while self._thread.is_alive():
            try:
                self._thread.join(0.2)
            except KeyboardInterrupt as exc:  # also SIGTERM (runtime.Terminated)
                interrupted = interrupted or exc
        if self.run_id is None:
            assert self.error is not None
            raise self.error
        if interrupted is not None:
            self.error = self.error or interrupted
        return self.run_id

    # -- the tracking thread ---------------------------------------------------------------------------
    def _work(self) -> None:
        import mlflow

        try:
            self.experiment_id = tracking.configure(self.cfg.tracking)
            active = mlflow.start_run(
                run_name=self.name, tags=tracking.run_tags(self.cfg), parent_run_id=tracking.parent_run_id()
            )
            self.run_id = active.info.run_id
            mlflow.log_params(tracking.flat_params(self.cfg))
            _log_dataset(self.data)
            _prepare_run_end(bool(self.cfg.tracking.log_model))
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread
            self.error = exc
        while (item := self._epochs.get()) is not _DONE:
            if self.error is None:
                metrics, step, timestamp = item
                try:
                    mlflow.log_metrics(metrics, step=step, timestamp=timestamp)
                except BaseException as exc:  # noqa: BLE001
                    self.error = exc


def _log_dataset(data: Dataset) -> None:
    import mlflow

    with warnings.catch_warnings():
        # A local path "can be interpreted in multiple ways" by MLflow's source registry: all of them local.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_numpy(data.x_train, targets=data.y_train, source=data.source, name=data.name)
    mlflow.log_input(dataset, context="training")


def _prepare_run_end(log_model: bool) -> None:
    """Import what logging the outputs and the model needs, so that the end of the run does not wait."""
    import keras
    import mlflow.models  # noqa: F401

    import sweeplab.plots  # noqa: F401 (matplotlib)

    if not log_model:
        return
    if keras.backend.backend() == "tensorflow":
        import mlflow.tensorflow  # noqa: F401
    else:
        import mlflow.keras  # noqa: F401
    from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

    from sweeplab.train import model_requirements

    # The check log_model makes first maps every installed distribution to its modules (0.5 s), then
    # caches the map.
    warn_dependency_requirement_mismatches(model_requirements())
