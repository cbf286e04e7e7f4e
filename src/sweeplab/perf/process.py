"""A process's start: the garbage collector paused while it imports; work beside training."""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def pause_gc() -> None:
    """Pause Python's cyclic garbage collector while this process imports its libraries (`resume_gc` ends it).

    TensorFlow, MLflow and what they use leave hundreds of thousands of objects that live as long as the
    process; while they pile up the collector scans them again and again and frees next to nothing.
    """
    gc.disable()


def resume_gc() -> None:
    """End `pause_gc`: freeze what is loaded by now and turn the collector back on; a no-op when it is on.

    Frozen objects still go when nothing refers to them; the collector only stops scanning them.
    """
    if gc.isenabled():
        return
    gc.freeze()
    gc.enable()


ARENA_MAX_ENV = "MALLOC_ARENA_MAX"
_M_ARENA_MAX = -8  # glibc's mallopt parameter


def steady_malloc() -> None:
    """Keep malloc to one arena per core, in this process and the processes it starts, so that its memory
    stops growing through training.

    glibc gives threads up to eight arenas per core; TensorFlow allocates and frees a fused step's batch
    (1,024 images, 3.2 MB) on several threads, each arena keeps what is freed in it, and a tracked run's
    memory grew epoch after epoch (docs/performance.md, "Peak memory of a tracked run"). A value set by the
    user wins; a C library without glibc's mallopt is left alone.
    """
    if os.environ.get(ARENA_MAX_ENV):
        return
    arenas = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2)
    os.environ[ARENA_MAX_ENV] = str(arenas)  # read by glibc when a process starts
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return
    mallopt(_M_ARENA_MAX, arenas)


def in_background(name: str, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Start `work(*args, **kwargs)` on a thread of its own; the future gives its result or raises its error.

    For waiting (a store's commit, a server's round trip) while the main thread trains: an epoch spends most
    of its time in compiled code, which releases Python's lock.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sweeplab-{name}")
    future = executor.submit(work, *args, **kwargs)
    executor.shutdown(wait=False)  # the thread ends with its one task
    return future
