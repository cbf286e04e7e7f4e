"""A small CNN for little grayscale images, written as any Keras user would: plain arguments in, a model out.

sweeplab calls it with the keys of conf/model/my_cnn.yaml plus `input_shape` and `num_outputs`; it takes no
`task`, so it is a classifier only (its last layer is softmax).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


def build_small_cnn(
    input_shape: Sequence[int],
    num_outputs: int,
    filters: int = 16,
    kernel_size: int = 3,
    dense: int = 64,
    dropout: float = 0.3,
    batch_norm: bool = False,
    activation: str = "relu",
) -> keras.Model:
    """Two blocks of Conv2D (+ BatchNormalization if `batch_norm`) and MaxPooling, the second with twice the
    filters, then Dropout, Dense(dense) and Dense(num_outputs, softmax). Images (height, width) get a channel
    axis first."""
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout={dropout} must be in [0, 1)")
    shape = tuple(input_shape)
    x = inputs = keras.Input(shape=shape)
    if len(shape) == 2:
        x = keras.layers.Reshape((*shape, 1))(x)
    for block, n in enumerate((filters, 2 * filters), start=1):
        x = keras.layers.Conv2D(n, kernel_size, padding="same", use_bias=not batch_norm, name=f"conv_{block}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"norm_{block}")(x)
        x = keras.layers.Activation(activation)(x)
        x = keras.layers.MaxPooling2D(name=f"pool_{block}")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(dense, activation=activation, name="dense")(x)
    outputs = keras.layers.Dense(num_outputs, activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="small_cnn")
