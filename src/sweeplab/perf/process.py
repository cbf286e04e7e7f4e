"""A process's start and end: malloc's cache fixed, the garbage collector paused while it imports, work beside
training, a quick exit."""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NoReturn

from sweeplab import compat

# glibc's mallopt parameter, and the size it is set to: glibc's own starting value (128 KiB).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def fix_malloc_threshold() -> bool:
    """Keep glibc's malloc from holding freed batches: blocks of 128 KiB or more stay mmap'ed, freed at once.

    glibc raises its mmap threshold each time a large mmap'ed block is freed (up to 32 MiB); blocks below it
    then come from its per-thread arenas and stay cached there once freed. With fused steps TensorFlow's
    threads allocate and free batches of 1,024 images (3.2 MB) all through training, and a tracked run's
    memory grew by about 450 MB over 30 epochs (docs/performance.md, "Peak memory of a tracked run"). A fixed
    threshold turns that adjustment off. Call it before the libraries load; MALLOC_MMAP_THRESHOLD_ set by the
    user wins, and other C libraries (macOS, musl) are left alone. True when the threshold was set.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or not _glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # a name this system does not know, or no confstr at all
        return False


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


def exit_quickly(code: int | str | None) -> NoReturn:
    """End the process as `sys.exit(code)` would, without the interpreter's final teardown.

    Threads are wound down and atexit handlers run as on a normal exit; freeing every module one by one,
    seconds with TensorFlow loaded, is skipped.
    """
    if isinstance(code, str):  # sys.exit("message"): the message on stderr, status 1
        print(code, file=sys.stderr)
        code = 1
    if not compat.run_exit_hooks():  # not CPython as we know it: exit the usual way
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
