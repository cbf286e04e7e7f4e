"""The Keras backend of a process (`backend=tensorflow|jax`, chosen before Keras loads), its threads, a fresh seed."""

from __future__ import annotations

import os
import sys

from sweeplab.errors import ConfigError

BACKENDS = ("tensorflow", "jax")


def select_backend(name: str, threads: int | None = None) -> None:
    """Set KERAS_BACKEND for this process; refuse a switch once Keras is loaded (e.g. a reused worker)."""
    if name not in BACKENDS:
        raise ConfigError(f"backend={name} is not allowed: use one of {' '.join(BACKENDS)}")
    if "keras" in sys.modules:
        loaded = sys.modules["keras"].backend.backend()
        if loaded != name:
            raise ConfigError(
                f"backend={name}: this process already runs Keras on {loaded}; one sweep uses one backend"
            )
        return
    if name == "jax":
        try:
            import jax  # noqa: F401
        except ImportError:
            raise ConfigError("backend=jax needs the jax package: pip install 'sweeplab[jax]'") from None
        if threads == 1:
            # XLA's CPU thread pool is fixed when JAX starts; one thread per job in parallel launchers.
            flags = os.environ.get("XLA_FLAGS", "")
            if "intra_op_parallelism_threads" not in flags:
                os.environ["XLA_FLAGS"] = (
                    f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
                )
    os.environ["KERAS_BACKEND"] = name


def quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up lines off (set before TensorFlow is imported; an explicit setting wins)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def configure_threads(threads: int | None) -> None:
    """Limit TensorFlow's thread pools; a no-op when they are already set up in this process."""
    if threads is None:
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # already initialised by an earlier job in this (reused) worker process: keep its setting


def fresh_start(seed: int) -> None:
    """Clear what an earlier job in this process left behind, then seed Python, NumPy and Keras.

    A job's imports are done by now: the first call ends the garbage collector's pause.
    """
    import keras

    from sweeplab.perf.process import resume_gc

    resume_gc()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
