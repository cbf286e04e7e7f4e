"""What a full disk under the MLflow store (its SQLite file or its artifacts) kept from being written, told from
the errors MLflow raises, and the one line that says so."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

from sweeplab.tracking.store import shown

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SQLITE_FULL = "database or disk is full"
# What a failed statement was writing, as MLflow's SQL store words it; first match wins.
SQL_WRITES = (
    ("UPDATE runs SET status", "a run's status"),
    ("INSERT INTO runs", "a new run"),
    ("logged_models", "a model's record"),
    ("INSERT INTO metrics", "a metric"),
    ("latest_metrics", "a metric"),
    ("INSERT INTO params", "a param"),
    ("INSERT INTO tags", "a tag"),
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and the exceptions it was raised from or while handling, outermost first."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__]


def full_disk(error: BaseException) -> bool:
    """Whether `error` comes from a full disk (or quota): an OSError ENOSPC, or SQLite's "database or disk is full"
    however MLflow and SQLAlchemy wrapped it."""
    return any((isinstance(e, OSError) and e.errno in FULL_ERRNOS) or SQLITE_FULL in str(e) for e in _chain(error))


def _full_file(error: BaseException) -> str | None:
    """The file a full disk kept from being written, where `error` names one."""
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS and (e.filename2 or e.filename):
            return str(e.filename2 or e.filename)
    return None


def unwritten(error: BaseException) -> str:
    """What the full disk kept from being written, as far as `error` tells: a file, or a record of the store."""
    file = _full_file(error)
    if file is not None:
        return f"the file {file}"
    text = " ".join(str(e) for e in _chain(error))
    return next((what for statement, what in SQL_WRITES if statement in text), "a record of the store")


def store_folder(uri: str) -> str:
    """Where a store keeps its data, as messages name it: a SQLite store's folder, else its URI."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri.removeprefix("sqlite:///").split("?", 1)[0]).parent)
    return shown(uri)


def full_disk_line(uri: str, error: BaseException, running: list[str], resumes: bool = True) -> str:
    """One line for a sweep (`resumes`) or a single run stopped by a full disk: the disk, what was not written, what
    stays RUNNING, what next."""
    folder, file = store_folder(uri), _full_file(error)
    inside = file is None or Path(file).is_relative_to(folder)
    disk = f"the MLflow store {folder}" if inside else "the MLflow store's artifacts"
    stays = (
        f"; {', '.join(running)} {'stays' if len(running) == 1 else 'stay'} RUNNING there"
        + (" until then" if resumes else " (a new run replaces it)")
        if running
        else "; no run was left RUNNING"
    )
    return f"the disk under {disk} is full: {unwritten(error)} could not be written{stays}; free space there and " + (
        "rerun the same command, it resumes where it stopped" if resumes else "run the same command again"
    )
