"""Datasets in the Keras layout, split and scaled the way the baseline tutorial does it.

Raw arrays are decoded once per process and cached, so jobs that share a worker process (the joblib
launcher reuses them) do not decode the same files again.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from sweeplab.errors import ConfigError, DataError
from sweeplab.validate import check_limit

# File names Keras uses for the IDX datasets, in (x_train, y_train, x_test, y_test) order.
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Dataset:
    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


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


def load_dataset(data: DictConfig) -> Dataset:
    """Split off the first `validation_size` training images, keep `limit` of the rest, scale to 0..1."""
    x_train_full, y_train_full, x_test, y_test = load_raw(data.name, data.path)
    check_limit(data, len(x_train_full))
    n_valid = data.validation_size
    stop = None if data.limit is None else n_valid + data.limit
    class_names = list(data.class_names) or [str(c) for c in range(int(y_train_full.max()) + 1)]
    labels = np.unique(np.concatenate([y_train_full, y_test]))
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise ConfigError(
            f"data.class_names has {len(class_names)} names but the labels of {data.name} "
            f"run from {labels.min()} to {labels.max()}"
        )
    # float32 once, here: Keras would otherwise cast float64 batches on every step.
    scale = np.float32(255)
    return Dataset(
        name=data.name,
        source=str(data.path or keras_cache_dir(data.name)),
        x_train=x_train_full[n_valid:stop].astype(np.float32) / scale,
        y_train=y_train_full[n_valid:stop].astype(np.int64),
        x_valid=x_train_full[:n_valid].astype(np.float32) / scale,
        y_valid=y_train_full[:n_valid].astype(np.int64),
        x_test=x_test.astype(np.float32) / scale,
        y_test=y_test.astype(np.int64),
        class_names=class_names,
    )
