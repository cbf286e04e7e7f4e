"""Which Keras backend runs the job (`backend=tensorflow|jax`): chosen before Keras is first imported."""

from __future__ import annotations

import os
import sys

from sweeplab.config import ConfigError

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
