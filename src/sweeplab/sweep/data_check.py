"""The sweep's dataset checked once, in the launching process, before any job is launched or submitted: data
that cannot be read fails the study in one line (exit 2) instead of failing every job in turn."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from sweeplab.datasets import IDX_FILES, keras_cache_dir, load_raw
from sweeplab.errors import DataError, first_line

KERAS_FILES = {"fashion_mnist": IDX_FILES, "mnist": ("mnist.npz",)}  # what keras.datasets reads from its cache


def cache_files(name: str) -> list[Path]:
    """The files keras.datasets reads for dataset `name` from the Keras cache (KERAS_HOME)."""
    folder = keras_cache_dir(name) if name == "fashion_mnist" else keras_cache_dir(name).parent
    return [folder / file for file in KERAS_FILES[name]]


def check_data(config: DictConfig) -> None:
    """Fail (DataError naming the file and the fix) when the sweep's dataset cannot be read.

    data.path is read here (NumPy, no TensorFlow). A shipped dataset must be in the Keras cache, or is loaded
    once here (Keras downloads it where it can) so that its jobs find it. A loader of the user's
    (data._target_) is left to the jobs.
    """
    data = config.data
    if data.get("_target_") is not None:
        return
    if data.path is not None:
        load_raw(data.name, data.path)  # NumPy only; cached for the jobs this process runs
        return
    if data.name not in KERAS_FILES:
        return
    missing = [file for file in cache_files(data.name) if not file.is_file()]
    if not missing:
        return
    from sweeplab.backend import select_backend

    try:
        select_backend(config.backend)  # before Keras loads: jobs in this process use the same backend
        load_raw(data.name, None)
    except DataError as err:
        cause = f" ({first_line(err.__cause__)})" if err.__cause__ is not None else ""
        raise DataError(
            f"{missing[0]} is missing from the Keras cache and {data.name} could not be downloaded{cause}: copy "
            f"the dataset's files into {missing[0].parent} (`make data` does it from ../shared/data), or set "
            "data.path=DIR_OR_NPZ"
        ) from None
