"""The entry points (sweep.py, compare.py, predict.py) and the one place that turns an error into a line and status."""

from __future__ import annotations

import sys
from typing import NoReturn

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
