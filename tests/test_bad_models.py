"""The user's own model and data gone wrong: each refused in one line (`sweeplab: error: ...`, exit status 2)
before any training, no run left in the store. The user's code is a small package written into the test's
folder, found through PYTHONPATH, its configs through hydra.searchpath, as docs/models.md tells users to."""

from __future__ import annotations

import os
import sqlite3
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli

MODELS = """
import keras


def good(input_shape, num_outputs, task="classification"):
    activation = "softmax" if task == "classification" else "linear"
    return keras.Sequential([keras.Input(shape=tuple(input_shape)), keras.layers.Flatten(),
                             keras.layers.Dense(num_outputs, activation=activation)])


def not_a_model(input_shape, num_outputs):
    return {"layers": [64, num_outputs]}


def wrong_outputs(input_shape, num_outputs, dropout=0.1):
    return keras.Sequential([keras.Input(shape=tuple(input_shape)), keras.layers.Dropout(dropout),
                             keras.layers.Dense(num_outputs + 3, activation="softmax")])
"""

LOADERS = """
import numpy as np


def tiny(rows=60):
    x = np.random.default_rng(0).normal(size=(rows, 4)).astype("float32")
    y = np.arange(rows) % 3
    return (x, y), (x[:20], y[:20])


def uneven(rows=60):
    (x, y), test = tiny(rows)
    return (x, y[:-7]), test
"""

DATA = """
_target_: badpkg.loaders.{loader}
name: {loader}
task: classification
validation_size: 0.2
limit: null
scale: standardize
class_names: []
"""

# A table with a text column beside its numbers.
TABLE = "size,colour,price\n" + "".join(f"{i},{'red' if i % 2 else 'blue'},{3 * i + 1}\n" for i in range(40))


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's folder: package badpkg (builders, loaders), its conf/ (model/*.yaml, data/*.yaml), a CSV."""
    root = tmp_path_factory.mktemp("user")
    (root / "badpkg").mkdir()
    (root / "badpkg" / "__init__.py").write_text("")
    (root / "badpkg" / "models.py").write_text(textwrap.dedent(MODELS))
    (root / "badpkg" / "loaders.py").write_text(LOADERS)
    for group in ("model", "data"):
        (root / "conf" / group).mkdir(parents=True)
    for name in ("good", "not_a_model"):
        (root / "conf" / "model" / f"{name}.yaml").write_text(f"_target_: badpkg.models.{name}\n")
    (root / "conf" / "model" / "wrong_outputs.yaml").write_text("_target_: badpkg.models.wrong_outputs\ndropout: 0.1\n")
    (root / "conf" / "model" / "missing.yaml").write_text("_target_: no_such_pkg.nets.build\n")
    for loader in ("tiny", "uneven"):
        (root / "conf" / "data" / f"{loader}.yaml").write_text(DATA.format(loader=loader))
    (root / "houses.csv").write_text(TABLE)
    return root


def sweep(user: Path, tmp_path: Path, *args: str):
    """sweep.py with the user's package on PYTHONPATH and its conf/ on Hydra's search path."""
    path = os.pathsep.join(p for p in (str(user), os.environ.get("PYTHONPATH")) if p)
    return run_cli(
        [*args, f"hydra.searchpath=[file://{user / 'conf'}]", "epochs=1", "training.verbose=0"],
        cwd=tmp_path,
        env={"PYTHONPATH": path},
        timeout=300,
    )


def runs_in(store: str) -> list[tuple[str, str]]:
    """(name, status) of every run in the SQLite store; none where the store was never opened."""
    db = Path(store.removeprefix("sqlite:///"))
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        return connection.execute("select name, status from runs").fetchall()


# (args, words the one line must hold, refused before TensorFlow and the store: True; or after the data is
# loaded and the model built, which needs Keras: False)
BAD = {
    "model _target_ not importable": (["model=missing"], ["no_such_pkg.nets", "cannot import module"], True),
    "builder returns no keras.Model": (["model=not_a_model", "data=tiny"], ["returned dict, not a keras.Model"], False),
    "output does not fit the data": (["model=wrong_outputs", "data=tiny"], ["(None, 6)", "(None, 3)"], False),
    "loader's arrays disagree": (["model=good", "data=uneven"], ["x_train with 60 rows but y_train with 53"], False),
    "CSV without the target column": (
        ["data=csv", "data.path=houses.csv", "data.target=value"],
        ["has no column 'value'", "size, colour, price"],
        True,
    ),
    "CSV with a text feature": (
        ["data=csv", "data.path=houses.csv", "data.target=price", "data.task=regression", "objective.metric=val_loss"],
        ["feature column 'colour' is not numeric"],
        True,
    ),
    "objective no run logs": (
        ["objective.metric=val_f1"],
        ["objective.metric=val_f1", "val_loss val_accuracy", "test_accuracy"],
        True,
    ),
    "sweeper direction against the objective": (
        [
            "-m",
            "hydra/sweeper=optuna",
            "hydra.sweeper.direction=maximize",
            "objective.metric=val_loss",
            "lr=interval(0.001,0.1)",
            "hydra.sweeper.n_trials=2",
        ],
        ["hydra.sweeper.direction=maximize", "val_loss (lower is better)", "hydra.sweeper.direction=minimize"],
        True,
    ),  # fmt: skip
    "data=csv without path": (["data=csv"], ["data=csv needs data.path=FILE.csv and data.target=COLUMN"], True),
    "data=csv without target": (["data=csv", "data.path=houses.csv"], ["data.target=COLUMN"], True),
    "task typo": (
        ["data=csv", "data.path=houses.csv", "data.target=price", "data.task=regresion"],
        ["data.task=regresion", "classification or regression"],
        True,
    ),
}


@pytest.mark.parametrize(("args", "named", "early"), BAD.values(), ids=BAD.keys())
def test_bad_model_or_data_is_refused_in_one_line_with_no_run(user, tmp_path, store, args, named, early) -> None:
    if "houses.csv" in " ".join(args):
        (tmp_path / "houses.csv").write_text(TABLE)
    proc = sweep(user, tmp_path, *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweeplab: error: "), proc.stderr[-3000:]
    for words in named:
        assert words in lines[0], lines[0]
    assert "Epoch" not in proc.stdout and "sweeplab: run " not in proc.stdout  # nothing trained
    assert runs_in(store) == []
    if early:  # refused before the store was opened (and TensorFlow loaded)
        assert not Path(store.removeprefix("sqlite:///")).exists()


def test_a_grid_of_a_model_that_does_not_fit_fails_each_job_in_one_line(user, tmp_path, store) -> None:
    proc = sweep(user, tmp_path, "-m", "model=wrong_outputs", "data=tiny", "model.dropout=0.1,0.2")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sweeplab: error: ")]
    assert [e.split(":")[2].strip() for e in errors] == ["job 1/2", "job 2/2"], proc.stderr
    assert all("(None, 6)" in e and "(None, 3)" in e for e in errors)
    # No job's run was opened: the one run is the sweep's parent, ended FAILED.
    assert [status for _, status in runs_in(store)] == ["FAILED"]


def subclassed(input_shape, num_outputs):
    """A subclassed model: it has no output_shape until it is first called."""
    import keras

    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.out = keras.layers.Dense(num_outputs, activation="softmax")

        def call(self, x):
            return self.out(x)

    return Net()


def narrow(input_shape, num_outputs):
    """A model whose Input ignores input_shape."""
    import keras

    return keras.Sequential([keras.Input(shape=(17,)), keras.layers.Dense(num_outputs)])


def test_a_subclassed_model_is_taken_and_an_input_that_does_not_fit_is_named() -> None:
    import keras
    from omegaconf import OmegaConf

    from sweeplab.builder import build_model
    from sweeplab.errors import ConfigError

    def build(function: str, shape: tuple[int, ...]):
        return build_model(OmegaConf.create({"model": {"_target_": f"{__name__}.{function}"}}), shape, 3, "regression")

    assert isinstance(build("subclassed", (4,)), keras.Model)
    with pytest.raises(ConfigError) as err:
        build("narrow", (28, 28))
    line = str(err.value)
    assert "(None, 28, 28)" in line and "(None, 17)" in line and "\n" not in line
