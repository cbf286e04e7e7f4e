"""The plain tutorial script sweeplab replaces: Keras only, no tracking (the benchmark's reference).

A faithful copy of the classic Fashion-MNIST workflow: float64 inputs (`/ 255.0`), one step per Python
call, SGD(0.01), 30 epochs with validation each epoch, evaluate, predict the first three test images.
It adds only a per-epoch timing line and a final `tutorial: test_accuracy=...` line the bench parses.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        print(f"tutorial: epoch {epoch + 1} time={time.perf_counter() - self.started:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--limit", type=int, default=None, help="training images kept (smoke runs only)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    fashion_mnist = keras.datasets.fashion_mnist
    (X_train_full, y_train_full), (X_test, y_test) = fashion_mnist.load_data()
    X_valid, X_train = X_train_full[:5000] / 255.0, X_train_full[5000:] / 255.0
    y_valid, y_train = y_train_full[:5000], y_train_full[5000:]
    X_test = X_test / 255.0
    if args.limit is not None:
        X_train, y_train = X_train[: args.limit], y_train[: args.limit]

    model = keras.models.Sequential(
        [
            keras.layers.Input(shape=[28, 28]),
            keras.layers.Flatten(),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.SGD(learning_rate=args.lr),
        metrics=["accuracy"],
    )
    history = model.fit(
        X_train,
        y_train,
        epochs=args.epochs,
        validation_data=(X_valid, y_valid),
        callbacks=[EpochTimer()],
        verbose=2,
    )
    test_loss, test_accuracy = model.evaluate(X_test, y_test, verbose=0)
    y_proba = model.predict(X_test[:3], verbose=0)
    print("tutorial: predicted", np.argmax(y_proba, axis=-1), "true", y_test[:3])
    print(f"tutorial: val_accuracy={history.history['val_accuracy'][-1]:.4f}")
    print(f"tutorial: test_accuracy={test_accuracy:.4f} test_loss={test_loss:.4f}", flush=True)


if __name__ == "__main__":
    main()
