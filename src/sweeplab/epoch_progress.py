"""The Keras callback that shows training's epochs: Keras's own Progbar in a terminal, a plain line elsewhere.

fit() is called with verbose=0 and this callback instead of Keras's ProgbarLogger, which counts compiled calls
(with `steps_per_execution` it reports the last step a call would have reached, past the epoch's end) and
draws bars with escape codes wherever the system is POSIX. The bar here counts minibatches, as the tutorial's
Keras loop shows them, and never passes its total.
"""

from __future__ import annotations

import math
import time

import keras

from sweeplab import progress


class EpochProgress(keras.callbacks.Callback):
    """An epoch's progress in `mode` (progress.BAR or progress.LINES) for `samples` training images.

    `batch_size` is the training minibatch; `per_step` how many minibatches one of fit's steps holds (fused
    steps), so the bar counts ceil(samples / batch_size) minibatches however fit batches them.
    """

    def __init__(self, mode: str, samples: int, batch_size: int, per_step: int = 1) -> None:
        super().__init__()
        self.mode = mode
        self.minibatches = max(1, math.ceil(samples / batch_size))
        self.per_step = max(1, per_step)
        self._bar: keras.utils.Progbar | None = None
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()
        if self.mode == progress.BAR:
            prefix = f"{progress.label()} " if progress.label() else ""
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
        elif self.mode == progress.LINES:
            seconds = time.perf_counter() - self._started
            print(progress.epoch_line(epoch, self.params["epochs"], logs, seconds), flush=True)


def epoch_progress(verbose: str | int, samples: int, batch_size: int, fused_steps: int) -> list[EpochProgress]:
    """The callback for `training.verbose` (none at 0), to pass to fit() with verbose=0."""
    mode = progress.display_mode(verbose)
    return [] if mode == progress.OFF else [EpochProgress(mode, samples, batch_size, fused_steps)]
