"""Every error a user is shown as one line, and the exit status each gets (sweeplab.cli.fail prints them).

Kept free of heavy imports so that the command line starts fast.
"""

from __future__ import annotations


class SweeplabError(Exception):
    """An error reported as one line naming the value, file or server at fault; `exit_status` for the CLI."""

    exit_status = 2  # refused before any work; 1 is for work that started and failed


class ConfigError(SweeplabError, ValueError):
    """A config value that cannot work; the message is one line naming it."""


class DataError(SweeplabError, RuntimeError):
    """A dataset that cannot be read; the message names the file and how to fix it."""


class TrackingError(SweeplabError, RuntimeError):
    """The tracking store cannot be reached; the message names its URI."""


class TrackingLost(TrackingError):
    """The tracking server stopped answering during a run or sweep; the message names its URI."""

    exit_status = 1


class ArtifactWriteError(SweeplabError, RuntimeError):
    """A run's files could not be written (disk full, read-only or blocked artifact location)."""

    exit_status = 1


class CompareError(SweeplabError, RuntimeError):
    """Nothing to compare (no experiment, no runs, unknown param)."""


class PredictError(SweeplabError, RuntimeError):
    """A model or image that cannot be used."""


class DivergedError(SweeplabError, RuntimeError):
    """Training produced NaN or infinity; the run cannot recover (it ends FAILED, the sweep goes on)."""

    exit_status = 1


class LauncherError(SweeplabError, RuntimeError):
    """A cluster that refused or cannot run a study's jobs; the message gives sbatch's or squeue's reason."""

    exit_status = 1


class StudyError(SweeplabError, RuntimeError):
    """A study (sweep or search) whose parent run cannot be created, found or finished."""

    exit_status = 1


def one_line(error: BaseException) -> str:
    """An exception as `Type: first line` (Hydra, Keras and MLflow spread theirs over several)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (its type's name when it has none)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
