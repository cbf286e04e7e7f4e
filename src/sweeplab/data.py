"""A dataset as every run trains on it: train, validation and test arrays, scaled, with the task's targets.

The arrays come from a shipped dataset (Keras layout) or from the loader a data config names with
`_target_` (shaped like keras.datasets' load_data()); the validation split, the scaling and the checks
are the same for every source. Raw arrays are read once per process and cached, so jobs that share a
worker process (the joblib launcher reuses them) do not read the same files again.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from sweeplab.builder import locate, takes
from sweeplab.config import DATA_KEYS
from sweeplab.datasets import keras_cache_dir, load_raw
from sweeplab.errors import ConfigError, DataError, SweeplabError, one_line


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
    task: str = "classification"
    features: list[str] | None = None  # a table's column names, in the model's input order
    preprocessing: dict[str, Any] = field(default_factory=dict)  # what raw inputs need: scale, or mean and std

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_outputs(self) -> int:
        """Units of the model's last layer: one per class, or one per regression target."""
        if self.task == "classification":
            return self.num_classes
        return int(self.y_train.shape[1]) if self.y_train.ndim > 1 else 1


def loader_arguments(data: DictConfig) -> dict[str, Any]:
    """What a data config's `_target_` is called with: its keys but those sweeplab reads itself."""
    plain = OmegaConf.to_container(data, resolve=True)
    assert isinstance(plain, dict)
    return {k: v for k, v in plain.items() if k not in DATA_KEYS}


@functools.lru_cache(maxsize=4)
def _call_loader(target: str, arguments: str) -> tuple[tuple[np.ndarray, ...], list[str] | None]:
    loader = locate("data._target_", target)
    try:
        loaded = loader(**json.loads(arguments))
    except SweeplabError:  # a loader's own one line (load_csv's)
        raise
    except Exception as err:  # noqa: BLE001 - the user's loader may raise anything
        raise DataError(f"data._target_={target} failed: {one_line(err)}") from err
    try:
        (x_train, y_train), (x_test, y_test) = loaded
    except (TypeError, ValueError) as err:
        raise DataError(
            f"data._target_={target} returned {type(loaded).__name__}, not ((x_train, y_train), (x_test, y_test))"
        ) from err
    arrays = tuple(np.asarray(a) for a in (x_train, y_train, x_test, y_test))
    for (x_name, x), (y_name, y) in (
        ((f"x_{s}", arrays[i]), (f"y_{s}", arrays[i + 1])) for i, s in ((0, "train"), (2, "test"))
    ):
        if len(x) != len(y):
            raise DataError(f"data._target_={target} returned {x_name} with {len(x)} rows but {y_name} with {len(y)}")
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise DataError(
            f"data._target_={target} returned x_train of shape {arrays[0].shape} but x_test of shape {arrays[2].shape}"
        )
    return arrays, getattr(loaded, "features", None)


def raw_arrays(data: DictConfig) -> tuple[tuple[np.ndarray, ...], list[str] | None]:
    """(x_train, y_train, x_test, y_test) as the source gives them, and a table's feature names."""
    target = data.get("_target_")
    if target is None:
        return load_raw(data.name, data.path), None
    arguments = loader_arguments(data)
    if takes(locate("data._target_", target), "task"):
        arguments["task"] = data.get("task") or "classification"
    return _call_loader(str(target), json.dumps(arguments, sort_keys=True))


def validation_count(data: DictConfig, rows: int) -> int:
    """data.validation_size as rows: a count, or a fraction of the training rows."""
    size = data.validation_size
    return max(1, round(rows * size)) if isinstance(size, float) and size < 1 else int(size)


def check_limit(data: DictConfig, train_rows: int) -> None:
    """data.limit counts training rows left after the validation split."""
    n_valid = validation_count(data, train_rows)
    available = train_rows - n_valid
    if available < 1:
        raise ConfigError(
            f"data.validation_size={data.validation_size} leaves no training rows ({data.name} has {train_rows})"
        )
    if data.limit is not None and data.limit > available:
        raise ConfigError(
            f"data.limit={data.limit} is larger than the data: {data.name} has {available} "
            f"training images after the {n_valid} validation images"
        )


def _classes(data: DictConfig, y_train: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Class indices 0..K-1 and their names: labels 0..K-1 as they are, any other labels by sorted value."""
    names = [str(n) for n in data.get("class_names") or []]
    labels = np.unique(np.concatenate([y_train, y_test]))
    integers = np.issubdtype(y_train.dtype, np.integer) and np.issubdtype(y_test.dtype, np.integer)
    # Integer labels are class indices where names are given or they run 0..K-1 without gaps.
    if integers and labels.min() >= 0 and (names or labels.max() + 1 == len(labels)):
        names = names or [str(c) for c in range(int(labels.max()) + 1)]
        if labels.max() >= len(names):
            raise ConfigError(
                f"data.class_names has {len(names)} names but the labels of {data.name} "
                f"run from {labels.min()} to {labels.max()}"
            )
        return y_train.astype(np.int64), y_test.astype(np.int64), names
    if not np.issubdtype(labels.dtype, np.number):  # strings (or mixed objects): sorted as text
        y_train, y_test = y_train.astype(str), y_test.astype(str)
        labels = np.unique(np.concatenate([y_train, y_test]))
    if names and len(names) != len(labels):
        raise ConfigError(f"data.class_names has {len(names)} names but {data.name} has {len(labels)} label values")
    index = {v: i for i, v in enumerate(labels.tolist())}
    to_index = np.vectorize(index.__getitem__, otypes=[np.int64])
    return to_index(y_train), to_index(y_test), names or [str(v) for v in labels.tolist()]


def _scaler(data: DictConfig, x_train: np.ndarray) -> dict[str, Any]:
    """How inputs are scaled (data.scale): auto divides 8-bit images by 255, standardize uses the training
    rows' mean and std per feature, a number divides by it, none keeps the values."""
    scale = data.get("scale", "auto")
    if scale == "auto":
        return {"scale": 255.0} if x_train.dtype == np.uint8 else {}
    if scale == "standardize":
        mean = x_train.astype(np.float64).mean(axis=0)
        std = x_train.astype(np.float64).std(axis=0)
        return {"mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist()}
    if scale == "none":
        return {}
    return {"scale": float(scale)}


def preprocess(x: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """Raw inputs as the model was trained on them (float32, scaled)."""
    if "scale" in preprocessing:
        return x.astype(np.float32) / np.float32(preprocessing["scale"])
    if "mean" in preprocessing:
        mean = np.asarray(preprocessing["mean"], dtype=np.float32)
        return (x.astype(np.float32) - mean) / np.asarray(preprocessing["std"], dtype=np.float32)
    return x.astype(np.float32)


def load_dataset(data: DictConfig) -> Dataset:
    """Split off the first `validation_size` training rows, keep `limit` of the rest, scale the inputs."""
    (x_train_full, y_train_full, x_test, y_test), features = raw_arrays(data)
    check_limit(data, len(x_train_full))
    n_valid = validation_count(data, len(x_train_full))
    stop = None if data.limit is None else n_valid + data.limit
    task = data.get("task") or "classification"
    if task == "classification":
        y_train_full, y_test, class_names = _classes(data, y_train_full, y_test)
    else:
        y_train_full, y_test, class_names = y_train_full.astype(np.float32), y_test.astype(np.float32), []
    # float32 once, here: Keras would otherwise cast float64 batches on every step.
    preprocessing = _scaler(data, x_train_full[n_valid:stop])
    target = data.get("_target_")
    return Dataset(
        name=data.name,
        source=str(data.get("path") or target or keras_cache_dir(data.name)),
        x_train=preprocess(x_train_full[n_valid:stop], preprocessing),
        y_train=y_train_full[n_valid:stop],
        x_valid=preprocess(x_train_full[:n_valid], preprocessing),
        y_valid=y_train_full[:n_valid],
        x_test=preprocess(x_test, preprocessing),
        y_test=y_test,
        class_names=class_names,
        task=task,
        features=features,
        preprocessing=preprocessing,
    )
