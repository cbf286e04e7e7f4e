"""Ctrl-C and SIGTERM: both end a run KILLED, so SIGTERM is raised like Ctrl-C and never lost."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that runs end KILLED and `finally` blocks run."""


_received: list[int] = []  # every SIGINT and SIGTERM this process got, in order


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Terminated(f"received signal {signal.Signals(signum).name}")


def raise_if_interrupted() -> None:
    """Raise again a SIGINT or SIGTERM whose exception was lost.

    A signal handler's exception is raised wherever the main thread happens to be: inside a weakref callback
    or __del__ (garbage collection) Python only prints it, and inside TensorFlow's Python code it can come
    out as another exception (a TypeError from a tensor conversion).
    """
    if _received:
        raise Terminated(f"received signal {signal.Signals(_received[-1]).name}")


def interrupted() -> bool:
    """Whether a SIGINT or SIGTERM has come in (once `handle_signals` is installed)."""
    return bool(_received)


def handle_signals() -> None:
    """SIGTERM raises Terminated; both it and Ctrl-C are remembered for `raise_if_interrupted`.

    Only the main thread of a process can install handlers; elsewhere this does nothing.
    """
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, _raise_terminated)
        previous = signal.getsignal(signal.SIGINT)
        if callable(previous) and not getattr(previous, "sweeplab_noted", False):

            def on_sigint(signum: int, frame: Any, previous: Any = previous) -> None:
                _received.append(signum)
                previous(signum, frame)

            on_sigint.sweeplab_noted = True  # type: ignore[attr-defined]
            signal.signal(signal.SIGINT, on_sigint)


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
