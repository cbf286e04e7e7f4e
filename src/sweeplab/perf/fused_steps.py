"""Fused training steps: several minibatches per compiled call, the same updates as Keras's own loop.

Keras runs one compiled train step per minibatch. Between two steps its TensorFlow trainer goes through a
graph loop, a tf.data iterator and an XLA launch, and its JAX trainer through Python; for a small model
that is a large part of each step. `fuse_steps(model, batch_size, n)` gives a compiled model a train
step that takes n minibatches at once (`fit` is called with `batch_size * n` samples a batch) and runs
Keras's own train step on each of them in order, inside one compiled loop. Keras shuffles samples, not
batches, so the minibatches, their order and the updates are those of `fit(batch_size=batch_size)`; the
last one of an epoch is as short as it would be there. Callbacks see one batch per n minibatches.

The step is set on the model object, not on a subclass: the saved and logged model stays a plain
Keras model that loads without sweeplab. What a train step changes lives in the model's variables (weights,
batch-normalisation statistics, the dropout layers' seed generators), carried from one minibatch to the
next as Keras does (tests/test_steps.py: dropout, batch normalisation, a CNN). A model whose class defines
its own train_step keeps Keras's loop (`why_not_fused`): sweeplab vouches for Keras's step only.
"""

from __future__ import annotations

import types
from typing import Any


def fit_batch_size(batch_size: int, fused_steps: int) -> int:
    """Samples per batch to give fit(): the training batch size times the minibatches per call."""
    return batch_size * max(1, fused_steps)


def why_not_fused(model: Any) -> str | None:
    """Why fused steps would not give `model` Keras's own updates and logs, in a few words; None: they would."""
    import keras

    if type(model).train_step is not keras.Model.train_step:
        # Its step may return logs of its own (the fused TensorFlow step returns the metrics') or assume
        # one minibatch per call: nothing says it keeps Keras's results when fused.
        return f"its class {type(model).__name__} defines its own train_step"
    return None


def fuse_steps(model: Any, batch_size: int, fused_steps: int) -> Any:
    """Give `model` a train step that runs `fused_steps` minibatches of `batch_size` per call, if that keeps
    Keras's updates for it (else one line says why, and it keeps Keras's step). Then train it with
    `fit(batch_size=fit_batch_size(batch_size, fused_steps_of(model)))`."""
    if fused_steps <= 1:
        return model
    reason = why_not_fused(model)
    if reason is not None:
        print(
            f"sweeplab: training.fused_steps={fused_steps} is off for this model: {reason}; "
            "Keras's own step is used (same results, slower)",
            flush=True,
        )
        return model
    import keras

    keras_step = type(model).train_step
    if keras.backend.backend() == "jax":
        step = _jax_step(keras_step, batch_size)
    else:
        step = _tensorflow_step(keras_step, batch_size)
    step.fused_steps = fused_steps  # type: ignore[attr-defined]
    model.train_step = types.MethodType(step, model)
    return model


def fused_steps_of(model: Any) -> int:
    """Minibatches per call of `model`'s train step: what fuse_steps gave it, 1 for Keras's own step."""
    return int(getattr(model.train_step, "fused_steps", 1))


def _split(data: Any, start: Any, size: Any) -> Any:
    from keras import tree

    return tree.map_structure(lambda t: None if t is None else t[start : start + size], data)


def _tensorflow_step(keras_step: Any, batch_size: int) -> Any:
    import tensorflow as tf
    from keras import tree

    def train_step(self: Any, data: Any) -> Any:
        # The batch dimension may be unknown when tracing (the last, shorter batch of an epoch makes Keras
        # retrace with a relaxed shape); XLA still compiles each concrete shape, so this is a static loop.
        count = tf.shape(tree.flatten(data)[0])[0]
        full = count // batch_size

        def minibatch(t: Any, i: Any) -> Any:
            # tf.slice with a constant size: XLA sees a fixed-size slice (t[a:a + n] with a varying `a`
            # becomes a slice of unknown size that XLA pads to the whole batch: 20 times slower).
            begin = tf.concat([[i * batch_size], tf.zeros([tf.rank(t) - 1], tf.int32)], axis=0)
            return tf.slice(t, begin, [batch_size, *[-1] * (len(t.shape) - 1)])

        def body(i: Any) -> Any:
            keras_step(self, tree.map_structure(lambda t: None if t is None else minibatch(t, i), data))
            return i + 1

        tf.while_loop(lambda i: i < full, body, [tf.constant(0)])

        def last() -> Any:
            keras_step(self, _split(data, full * batch_size, count - full * batch_size))
            return tf.constant(True)

        tf.cond(count > full * batch_size, last, lambda: tf.constant(False))
        return self.get_metrics_result()

    return train_step


def _jax_step(keras_step: Any, batch_size: int) -> Any:
    import jax
    from keras import tree

    def train_step(self: Any, state: Any, data: Any) -> Any:
        count = tree.flatten(data)[0].shape[0]  # static: JAX traces each shape
        full, rest = divmod(count, batch_size)
        logs = None
        if full:
            stacked = tree.map_structure(
                lambda t: None if t is None else t[: full * batch_size].reshape((full, batch_size, *t.shape[1:])),
                data,
            )

            def body(carry: Any, minibatch: Any) -> Any:
                step_logs, carry = keras_step(self, carry, minibatch)
                return carry, step_logs

            state, stacked_logs = jax.lax.scan(body, state, stacked)
            logs = tree.map_structure(lambda v: v[-1], stacked_logs)
        if rest:
            logs, state = keras_step(self, state, _split(data, full * batch_size, rest))
        return logs, state

    return train_step
