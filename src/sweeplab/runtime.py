"""Process-level settings for one job: threads, seeds, a clean Keras state, the garbage collector, a quick exit."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import FrameType
from typing import Any, NoReturn


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that runs end KILLED and `finally` blocks run."""


_terminating = False


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    global _terminating
    _terminating = True
    raise Terminated(f"received signal {signal.Signals(signum).name}")


def raise_if_terminated() -> None:
    """Raise Terminated again if a SIGTERM came in but its exception was lost.

    A signal handler's exception is raised wherever the main thread happens to be; inside a weakref
    callback or __del__ (garbage collection) Python only prints it and goes on.
    """
    if _terminating:
        raise Terminated("received signal SIGTERM")


def handle_sigterm() -> None:
    """Turn SIGTERM into an exception (only the main thread of a process can install handlers)."""
    try:
        signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        pass


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs (e.g. ending a run); they arrive after it."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # no sigmask on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def quiet_tensorflow() -> None:
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
        # Already initialised by an earlier job in this (reused) worker process: keep its setting.
        pass


def pause_gc() -> None:
    """Pause Python's cyclic garbage collector while this process imports its libraries (`resume_gc` ends it).

    Importing TensorFlow, MLflow and what they use leaves some 650,000 objects that live as long as the
    process. While they pile up, the collector scans all of them again and again (seven full collections
    during `import tensorflow` alone) and finds next to nothing to free: about 1.3 s of a process's imports
    here (docs/performance.md), for 3 MB more peak memory.
    """
    gc.disable()


def resume_gc() -> None:
    """End `pause_gc`: freeze what is loaded by now and turn the collector back on; a no-op when it is on.

    Frozen objects still go when nothing refers to them; the collector only stops scanning them, so each
    later full collection (Keras's clear_session runs one per job) takes milliseconds instead of 0.3 s.
    """
    if gc.isenabled():
        return
    gc.freeze()
    gc.enable()


def fresh_start(seed: int) -> None:
    """Clear what an earlier job in this process left behind, then seed Python, NumPy and Keras.

    A job's imports are done by now: the first call ends `pause_gc`.
    """
    import keras

    resume_gc()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def in_background(name: str, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Start `work(*args, **kwargs)` on a thread of its own; the future gives its result or raises what it raised.

    For work that can run while the main thread trains: an epoch spends most of its time in TensorFlow's
    compiled code, which releases Python's lock. Waiting (a store's commit, a server's round trip) hides
    there; CPU work does only where training leaves cores idle, and on 2 cores costs about its own CPU time
    in epoch time (docs/performance.md, "Why 3% of a single run is out of reach here").
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sweeplab-{name}")
    future = executor.submit(work, *args, **kwargs)
    executor.shutdown(wait=False)  # the thread ends with its one task
    return future


def exit_quickly(code: int | str | None) -> NoReturn:
    """End the process as `sys.exit(code)` would, without the interpreter's final teardown.

    A normal exit winds down the other threads (the threading module's exit hooks, which tell executors
    such as joblib's to stop, then a join of every non-daemon thread), runs the atexit handlers (logging's
    flush, MLflow's, multiprocessing's), then frees every module and object one by one: with TensorFlow
    loaded that last part takes about 2 s here and serves nothing once the run is recorded. This does the
    first two, with the same functions the interpreter calls, and skips the third.
    """
    if isinstance(code, str):  # sys.exit("message"): the message on stderr, status 1
        print(code, file=sys.stderr)
        code = 1
    shutdown_threads = getattr(threading, "_shutdown", None)
    if shutdown_threads is None:  # not CPython as we know it: exit the usual way
        sys.exit(code)
    shutdown_threads()  # what the interpreter calls first on exit
    atexit._run_exitfuncs()  # then this; os._exit alone would skip both
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
