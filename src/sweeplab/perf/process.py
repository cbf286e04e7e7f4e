"""A process's start: the garbage collector paused while it imports; work beside training."""

from __future__ import annotations

import gc
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


def in_background(name: str, work: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
    """Start `work(*args, **kwargs)` on a thread of its own; the future gives its result or raises its error.

    For waiting (a store's commit, a server's round trip) while the main thread trains: an epoch spends most
    of its time in compiled code, which releases Python's lock.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sweeplab-{name}")
    future = executor.submit(work, *args, **kwargs)
    executor.shutdown(wait=False)  # the thread ends with its one task
    return future
