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


def csv_cfg(path, target: str, **overrides):
    base = {
        "_target_": "sweeplab.datasets.load_csv",
        "name": "table",
        "path": str(path),
        "target": target,
        "task": "classification",
        "test_fraction": 0.2,
        "split_seed": 0,
        "validation_size": 0.2,
        "limit": None,
        "scale": "standardize",
        "class_names": [],
    }
    return OmegaConf.create({**base, **overrides})


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """sklearn's bundled tables as CSV files: a regression (diabetes) and classes named by strings (wine)."""
    from sklearn.datasets import load_diabetes, load_wine

    folder = tmp_path_factory.mktemp("tables")
    load_diabetes(as_frame=True).frame.to_csv(folder / "diabetes.csv", index=False)
    wine = load_wine(as_frame=True).frame
    wine["target"] = wine["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    wine.to_csv(folder / "wine.csv", index=False)
    return folder


def test_csv_regression_split_standardized(tables) -> None:
    data = load_dataset(csv_cfg(tables / "diabetes.csv", "target", task="regression"))
    assert data.task == "regression" and data.num_outputs == 1 and data.class_names == []
    assert len(data.x_test) == round(442 * 0.2) and len(data.x_valid) == round(354 * 0.2)
    assert len(data.x_train) + len(data.x_valid) + len(data.x_test) == 442
    assert data.features == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert data.y_train.dtype == np.float32 and data.x_train.dtype == np.float32
    # Standardized with the training rows' own mean and std (the validation and test rows with the same).
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-4)
    again = load_dataset(csv_cfg(tables / "diabetes.csv", "target", task="regression"))
    assert np.array_equal(again.y_test, data.y_test)  # the seeded split is the same every time
    other = load_dataset(csv_cfg(tables / "diabetes.csv", "target", task="regression", split_seed=1))
    assert not np.array_equal(other.y_test, data.y_test)


def test_csv_classes_from_string_labels(tables) -> None:
    data = load_dataset(csv_cfg(tables / "wine.csv", "target"))
    assert data.class_names == ["barbera", "barolo", "grignolino"]  # the label values, sorted
    assert data.num_outputs == 3 and data.y_train.dtype == np.int64
    assert set(np.unique(np.concatenate([data.y_train, data.y_valid, data.y_test]))) == {0, 1, 2}
    named = load_dataset(csv_cfg(tables / "wine.csv", "target", class_names=["c", "a", "b"]))
    assert named.class_names == ["c", "a", "b"] and np.array_equal(named.y_test, data.y_test)


LOADERS = """
import numpy as np

def images(rows=50, shift=0):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(rows, 4, 4), dtype=np.uint8)
    y = np.arange(rows) % 3 + shift
    return (x[:40], y[:40]), (x[40:], y[40:])

def uneven():
    x = np.zeros((10, 3), np.float32)
    return (x, np.zeros(9)), (x, np.zeros(10))
"""


def test_a_loader_by_target_is_split_and_scaled_as_keras_datasets(tmp_path, monkeypatch) -> None:
    (tmp_path / "myloaders.py").write_text(LOADERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    base = {"_target_": "myloaders.images", "name": "mine", "validation_size": 10, "limit": None, "class_names": []}
    data = load_dataset(OmegaConf.create({**base, "rows": 50}))
    assert (len(data.x_train), len(data.x_valid), len(data.x_test)) == (30, 10, 10)
    assert data.x_train.dtype == np.float32 and data.x_train.max() <= 1.0 and data.preprocessing == {"scale": 255.0}
    assert data.class_names == ["0", "1", "2"] and data.input_shape == (4, 4)
    shifted = load_dataset(OmegaConf.create({**base, "rows": 50, "shift": 5}))  # labels 5..7: named by value
    assert shifted.class_names == ["5", "6", "7"] and set(shifted.y_train) == {0, 1, 2}
    with pytest.raises(DataError, match="returned x_train with 10 rows but y_train with 9"):
        load_dataset(OmegaConf.create({**base, "_target_": "myloaders.uneven"}))
