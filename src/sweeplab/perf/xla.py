"""Whether a model's train step is XLA-compiled: `training.jit_compile=auto` picks what is faster for it.

XLA makes sweeplab's dense models several times faster on a CPU (fused steps in one compiled loop), but
TensorFlow's XLA convolutions on a CPU are slower than its own kernels (docs/performance.md: a CNN's epoch
4-12x slower), so auto leaves XLA off for a model with convolutions on a machine without a GPU, as Keras's
own `jit_compile="auto"` does for every model there. On JAX everything is compiled with XLA anyway.
"""

from __future__ import annotations

from typing import Any


def has_convolutions(model: Any) -> bool:
    """Whether any layer of `model`, nested models included, is a convolution (Conv1D/2D/3D, transposed,
    separable, depthwise)."""
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        if "Conv" in type(layer).__name__:
            return True
        stack.extend(getattr(layer, "layers", []))
    return False


def jit_compile(setting: Any, model: Any) -> bool:
    """The jit_compile a model is compiled with: true or false as set, auto as the model runs fastest."""
    if str(setting).lower() != "auto":
        return bool(setting)
    import keras

    if keras.backend.backend() != "tensorflow" or not has_convolutions(model):
        return True
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return True
    print(
        "sweeplab: training.jit_compile=auto: XLA is off for this model (convolutions on a CPU train faster "
        "without it; training.jit_compile=true forces it)",
        flush=True,
    )
    return False
