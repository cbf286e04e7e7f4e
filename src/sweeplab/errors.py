"""Errors the command line reports as one line (kept free of heavy imports so the CLI starts fast)."""


class TrackingError(RuntimeError):
    """The tracking store cannot be reached; the message names its URI."""


class TrackingLost(TrackingError):
    """The tracking server stopped answering during a run or sweep; the message names its URI."""


class ArtifactWriteError(RuntimeError):
    """A run's files could not be written (disk full, read-only or blocked artifact location); one line."""
