"""Errors the command line reports as one line (kept free of heavy imports so the CLI starts fast)."""


class TrackingError(RuntimeError):
    """The tracking store cannot be reached; the message names its URI."""
