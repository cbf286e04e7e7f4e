"""The shipped model builders: plain arguments in, an uncompiled Keras model out (no config, no hyperparameters).

A builder gets its model config's keys plus what the data tells: `input_shape`, `num_outputs` (classes, or
regression targets) and, where it takes it, `task`. Its last layer has `num_outputs` units: softmax for
classification, linear for regression. Any function of that shape can be a model (docs/models.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from sweeplab.config import mlp_units


def output_activation(task: str) -> str:
    """The last layer's activation: class probabilities, or plain numbers."""
    return "softmax" if task == "classification" else "linear"


def build_mlp(
    input_shape: Sequence[int],
    num_outputs: int,
    depth: int = 2,
    width: int = 300,
    activation: str = "relu",
    units: Sequence[int] | None = None,
    taper: float = 3.0,
    task: str = "classification",
) -> keras.Model:
    """Flatten, one Dense(activation) per hidden layer (`units`, else width tapered over depth), Dense output."""
    hidden = mlp_units(depth, width, taper, None if units is None else list(units))
    layers: list[keras.layers.Layer] = [keras.Input(shape=tuple(input_shape)), keras.layers.Flatten()]
    layers += [keras.layers.Dense(size, activation=activation, name=f"hidden_{i + 1}") for i, size in enumerate(hidden)]
    layers.append(keras.layers.Dense(num_outputs, activation=output_activation(task), name="output"))
    return keras.Sequential(layers, name="mlp")


def build_cnn(
    input_shape: Sequence[int],
    num_outputs: int,
    filters: int = 32,
    kernel_size: int = 3,
    dense: int = 128,
    dropout: float = 0.3,
    activation: str = "relu",
    task: str = "classification",
) -> keras.Model:
    """Two Conv2D + MaxPooling blocks (filters, then twice as many), Dropout, Dense, Dropout, Dense output.

    Grayscale images (height, width) get a channel axis first.
    """
    shape = tuple(input_shape)
    layers: list[keras.layers.Layer] = [keras.Input(shape=shape)]
    if len(shape) == 2:
        layers.append(keras.layers.Reshape((*shape, 1)))
    for block, n in enumerate((filters, 2 * filters)):
        layers.append(
            keras.layers.Conv2D(n, kernel_size, padding="same", activation=activation, name=f"conv_{block + 1}")
        )
        layers.append(keras.layers.MaxPooling2D(name=f"pool_{block + 1}"))
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(dense, activation=activation, name="dense"),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(num_outputs, activation=output_activation(task), name="output"),
    ]
    return keras.Sequential(layers, name="cnn")
