"""Readers of the shipped datasets: the Keras layout (IDX folder, .npz, keras.datasets) and CSV tables.

Each returns raw arrays; sweeplab.data splits, scales and checks them the same way for every source.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np

from sweeplab.errors import DataError

# File names Keras uses for the IDX datasets, in (x_train, y_train, x_test, y_test) order.
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def keras_cache_dir(name: str) -> Path:
    """Where keras.datasets looks for `name` before downloading it."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "datasets" / name.replace("_", "-")


def _read_idx(path: Path, offset: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    except (OSError, EOFError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}; replace it with a good copy") from err


def _load_idx_dir(folder: Path) -> tuple[np.ndarray, ...]:
    missing = [f for f in IDX_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder / missing[0]} is missing: the folder needs the four IDX files {', '.join(IDX_FILES)}")
    arrays = []
    for fname in IDX_FILES:
        is_images = "images" in fname
        flat = _read_idx(folder / fname, 16 if is_images else 8)
        if is_images and flat.size % (28 * 28):
            raise DataError(
                f"cannot read {folder / fname}: not whole 28x28 images (truncated or corrupt); "
                "replace it with a good copy"
            )
        arrays.append(flat.reshape(-1, 28, 28) if is_images else flat)
    if len(arrays[0]) != len(arrays[1]) or len(arrays[2]) != len(arrays[3]):
        raise DataError(f"{folder}: image and label counts differ; the files are corrupt or mismatched")
    return tuple(arrays)


def _load_npz(path: Path) -> tuple[np.ndarray, ...]:
    try:
        with np.load(path) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path} lacks {', '.join(missing)}: an .npz in the Keras layout holds {', '.join(NPZ_KEYS)}"
                )
            return tuple(npz[k] for k in NPZ_KEYS)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err}; give data.path an .npz in the Keras layout") from err


def _load_from_keras(name: str) -> tuple[np.ndarray, ...]:
    import keras

    loader = {"fashion_mnist": keras.datasets.fashion_mnist, "mnist": keras.datasets.mnist}[name]
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as err:  # noqa: BLE001 - Keras raises whatever its download raised
        cache = keras_cache_dir(name)
        raise DataError(
            f"{name} is not in the Keras cache ({cache}) and could not be downloaded ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Offline, copy the dataset files into that "
            f"folder (`make data` does it from ../shared/data) or set data.path=DIR_OR_NPZ"
        ) from err
    return x_train, y_train, x_test, y_test


@functools.lru_cache(maxsize=4)
def load_raw(name: str, path: str | None) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) as uint8, from data.path or through keras.datasets."""
    if path is None:
        return _load_from_keras(name)
    source = Path(path).expanduser()
    if source.is_dir():
        return _load_idx_dir(source)
    if source.is_file():
        return _load_npz(source)
    raise DataError(
        f"data.path={path} does not exist: give a folder with the four IDX .gz files or an .npz in the Keras layout"
    )


class Loaded(tuple):
    """A loader's `((x_train, y_train), (x_test, y_test))`, with the feature columns' names where it has them."""

    features: list[str] | None = None


def load_csv(
    path: str, target: str, task: str = "classification", test_fraction: float = 0.2, split_seed: int = 0
) -> Loaded:
    """A table's numeric feature columns and its target column, shuffled with `split_seed` and split into
    train and test rows (`test_fraction` of them), as keras.datasets' load_data() returns them."""
    import pandas as pd

    source = Path(path).expanduser()
    if not source.is_file():
        raise DataError(f"data.path={path} does not exist: give a CSV file with a header row")
    try:
        table = pd.read_csv(source)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {source} as CSV: {str(err).splitlines()[0]}") from err
    if target not in table.columns:
        raise DataError(
            f"{source} has no column {target!r} (data.target): its columns are {', '.join(map(str, table.columns))}"
        )
    features = table.drop(columns=[target])
    for column in features.columns:
        if not pd.api.types.is_numeric_dtype(features[column]) or pd.api.types.is_bool_dtype(features[column]):
            raise DataError(f"{source}: feature column {column!r} is not numeric; drop it or encode it as numbers")
    y = table[target]
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise DataError(f"{source}: target column {target!r} is not numeric, so it cannot be a regression target")
    if table.isna().any().any():
        column = table.columns[table.isna().any()][0]
        raise DataError(f"{source}: column {column!r} has empty cells; fill or drop them")
    if not 0 < test_fraction < 1:
        raise DataError(f"data.test_fraction={test_fraction} is not allowed: must be between 0 and 1")
    order = np.random.default_rng(split_seed).permutation(len(table))
    n_test = max(1, round(len(table) * test_fraction))
    x = features.to_numpy(dtype=np.float32)[order]
    y_values = (y.to_numpy(dtype=np.float32) if task == "regression" else y.to_numpy())[order]
    loaded = Loaded(((x[n_test:], y_values[n_test:]), (x[:n_test], y_values[:n_test])))
    loaded.features = [str(c) for c in features.columns]
    return loaded
