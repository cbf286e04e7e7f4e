"""The Keras backend of a process (`backend=tensorflow|jax`, chosen before Keras loads), its threads, a fresh seed."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings

from sweeplab.errors import ConfigError
from sweeplab.schema import Backend

BACKENDS = tuple(Backend)  # the schema's choices, for callers that pass a name of their own


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
    load_keras()


DEBUG_ENV = "SWEEPLAB_DEBUG"  # =1: the libraries' start-up lines and INFO logs, for debugging


def quiet_start() -> None:
    """No start-up noise from the libraries: set before TensorFlow, absl, XLA, MLflow or matplotlib is imported.

    TensorFlow's C++ lines (oneDNN, CUDA probing on a CPU machine) are filtered by TF_CPP_MIN_LOG_LEVEL, those
    it writes while it loads by `load_keras`; MLflow logs warnings only, without its artifact download bars
    and its own links to a run (sweeplab prints one, to the UI of the store the run went to); matplotlib's
    font cache, JAX's and absl's INFO messages stay out of the logs. Python's warnings still show, except Optuna's
    deprecations met by Hydra's Optuna sweeper. A variable set by the user wins; SWEEPLAB_DEBUG=1 sets none of them.
    """
    if _debugging():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ errors reach Python as exceptions
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("absl", "jax", "matplotlib"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Hydra's Optuna sweeper (1.3.0, written for Optuna 2) on Optuna 5: its distributions and TPE settings are
    # deprecated there (FutureWarning at every trial), and still work.
    warnings.filterwarnings(
        "ignore", category=FutureWarning, module=r"(optuna|hydra_plugins\.hydra_optuna_sweeper)(\.|$)"
    )


def quiet_optuna() -> None:
    """Optuna's INFO lines (a study created, each trial's value) left out: sweeplab prints each job's own.

    Optuna sets its logger's level when it first logs, so this imports it: called where a sampled study starts.
    """
    if _debugging() or importlib.util.find_spec("optuna") is None:
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


# A line of absl's C++ logging (severity, date, time, thread, file:line), and its notice before InitializeLog.
_CPP_LOG_LINE = re.compile(
    r"^([IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl::InitializeLog\(\))"
)


def load_keras() -> None:
    """Import Keras and its backend (TensorFlow, JAX) in this process, without their C++ start-up lines.

    TensorFlow's shared libraries log while they load, before TF_CPP_MIN_LOG_LEVEL is read (tensorflow issue
    100442, abseil-cpp PR 1957): the stderr of the import goes to a file, and what is not such a line (a
    Python warning, say) is written to stderr afterwards. SWEEPLAB_DEBUG=1 leaves stderr alone.
    """
    if "keras" in sys.modules or _debugging():
        import keras  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras

            if keras.backend.backend() != "tensorflow" and importlib.util.find_spec("tensorflow"):
                import tensorflow  # noqa: F401 (keras.utils.set_random_seed imports it on every backend)
            if "tensorflow" in sys.modules:  # its device probe (cuInit on a machine without a GPU) logs here too
                sys.modules["tensorflow"].config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _CPP_LOG_LINE.match(line)))
            sys.stderr.flush()


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
