"""The model builder: plain arguments in, an uncompiled Keras model out (no config, no hyperparameters)."""

from __future__ import annotations

from collections.abc import Sequence

import keras


def build_mlp(
    input_shape: Sequence[int], hidden_units: Sequence[int], activation: str, num_classes: int
) -> keras.Model:
    """Flatten, one Dense(activation) per entry of hidden_units, Dense(num_classes, softmax)."""
    layers: list[keras.layers.Layer] = [keras.Input(shape=tuple(input_shape)), keras.layers.Flatten()]
    layers += [
        keras.layers.Dense(units, activation=activation, name=f"hidden_{i + 1}") for i, units in enumerate(hidden_units)
    ]
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="output"))
    return keras.Sequential(layers, name="mlp")
