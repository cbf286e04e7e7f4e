"""The entry points (sweep.py, compare.py, predict.py) and the one place that turns an error into a line and status."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from sweeplab import compat
from sweeplab.errors import SweeplabError

PROG = "sweeplab"


def error_line(message: SweeplabError | str, prog: str = PROG) -> None:
    """`prog: error: <one line>` on stderr: how every error is shown, in a job as at the command line."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)


def exit_status(error: BaseException) -> int:
    """2 for input refused before any work, 1 for work that started and failed."""
    return error.exit_status if isinstance(error, SweeplabError) else 1


def fail(error: SweeplabError | str, prog: str = PROG, status: int | None = None) -> NoReturn:
    """Show `error` in one line and exit (a plain message is refused input: status 2)."""
    error_line(error, prog)
    sys.exit(status if status is not None else exit_status(error) if isinstance(error, BaseException) else 2)


def stopped(interrupt: KeyboardInterrupt, prog: str = PROG) -> int:
    """Ctrl-C or SIGTERM, once its runs are ended KILLED: one line instead of a traceback; the status a shell
    gives a process its signal ended (130, 143)."""
    signal_name = "SIGTERM" if "SIGTERM" in str(interrupt) else "Ctrl-C"
    print(
        f"{prog}: stopped by {signal_name}: what was training ended KILLED, its epochs kept; the same command resumes",
        file=sys.stderr,
        flush=True,
    )
    return 143 if signal_name == "SIGTERM" else 130


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
