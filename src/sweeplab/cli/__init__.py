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
