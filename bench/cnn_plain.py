"""The CNN trained with a plain `model.fit`, no sweeplab around it: the yardstick of its epoch time.

Fashion-MNIST from keras.datasets, sweeplab.model.build_cnn (the same network as `sweep.py model=cnn`),
SGD 0.01, batch 32, validation on the first 5,000 training images, Keras's own defaults otherwise. Prints
each epoch's seconds. `python bench/cnn_plain.py [--epochs 3] [--limit N]` (N: training images after the
validation split, as sweep.py's data.limit).
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from sweeplab.model import build_cnn


class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        print(f"epoch {epoch + 1}: {seconds:.2f} s val_accuracy={logs['val_accuracy']:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()

    (x_train, y_train), _ = keras.datasets.fashion_mnist.load_data()
    x_train = x_train.astype(np.float32) / 255.0
    x_valid, y_valid = x_train[:5000], y_train[:5000]
    stop = None if args.limit is None else 5000 + args.limit
    x_train, y_train = x_train[5000:stop], y_train[5000:stop]

    keras.utils.set_random_seed(42)
    model = build_cnn((28, 28), 10)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=32,
        validation_data=(x_valid, y_valid),
        callbacks=[EpochTimes()],
        verbose=0,
    )


if __name__ == "__main__":
    main()
