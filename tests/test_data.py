"""Data: the tutorial's split and scaling, the offline MNIST copy, the user's own folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import MNIST_NPZ, require
from sweeplab.data import keras_cache_dir, load_dataset
from sweeplab.errors import ConfigError, DataError


def data_cfg(**overrides):
    base = {"name": "fashion_mnist", "path": None, "limit": None, "validation_size": 5000, "class_names": []}
    return OmegaConf.create({**base, **overrides})


def test_fashion_mnist_split_and_scale() -> None:
    data = load_dataset(data_cfg())
    assert data.x_train.shape == (55_000, 28, 28) and data.x_valid.shape == (5_000, 28, 28)
    assert data.x_test.shape == (10_000, 28, 28)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert data.num_classes == 10


def test_limit_keeps_the_first_training_images() -> None:
    full = load_dataset(data_cfg())
    small = load_dataset(data_cfg(limit=2000))
    assert len(small.x_train) == 2000 and np.array_equal(small.x_train, full.x_train[:2000])
    assert np.array_equal(small.x_valid, full.x_valid)


def test_user_folder_in_keras_layout(tmp_path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(keras_cache_dir("fashion_mnist"), folder)
    data = load_dataset(data_cfg(path=str(folder), limit=100))
    assert len(data.x_train) == 100 and data.source == str(folder)


def test_mnist_npz_through_the_same_path() -> None:
    require(MNIST_NPZ.exists(), f"{MNIST_NPZ} is not here")
    data = load_dataset(
        data_cfg(name="mnist", path=str(MNIST_NPZ), validation_size=1000, class_names=[str(i) for i in range(10)])
    )
    assert data.x_train.shape == (7_000, 28, 28) and data.x_test.shape == (2_000, 28, 28)
    with pytest.raises(ConfigError, match="data.limit=7001 is larger than the data"):
        load_dataset(data_cfg(name="mnist", path=str(MNIST_NPZ), validation_size=1000, limit=7001))


def test_missing_path_names_it(tmp_path) -> None:
    with pytest.raises(DataError, match="does-not-exist"):
        load_dataset(data_cfg(path=str(tmp_path / "does-not-exist")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is missing"):
        load_dataset(data_cfg(path=str(tmp_path / "empty")))
