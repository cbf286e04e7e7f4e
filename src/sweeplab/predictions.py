"""What a model's predictions look like to people, and what a logged model takes as input.

One predictions table serves the predictions.csv a run logs and the table predict.py prints: the predicted
class name, its probability and p(<class>) columns (classification) or the predicted numbers (regression),
with the true values where they are known. Pure NumPy and pandas: imported before any run starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sweeplab.data import Dataset
from sweeplab.errors import PredictError


def is_table(data: Dataset) -> bool:
    """Whether the model takes table rows (one vector per row) rather than images or other arrays."""
    return len(data.input_shape) == 1


def feature_names(data: Dataset) -> list[str]:
    """A table's columns in the model's input order: the loader's names, else x0, x1, ..."""
    return list(data.features or [f"x{i}" for i in range(data.input_shape[0])])


def model_inputs(data: Dataset) -> dict[str, Any]:
    """What the logged model takes (inputs.json, read by tracking/pyfunc_model.py): images scaled as in
    training, or a table's raw rows with the scaling the model applies to them; its task and class names."""
    described: dict[str, Any] = {
        "kind": "table" if is_table(data) else "images",
        "task": data.task,
        "class_names": list(data.class_names),
        "preprocessing": data.preprocessing,
    }
    if is_table(data):
        described["features"] = feature_names(data)
    return described


def raw_rows(x: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """Scaled inputs back as raw values (sweeplab.data.preprocess undone), e.g. a logged model's input example."""
    if "scale" in preprocessing:
        return x.astype(np.float64) * float(preprocessing["scale"])
    if "mean" in preprocessing:
        return x.astype(np.float64) * np.asarray(preprocessing["std"]) + np.asarray(preprocessing["mean"])
    return x.astype(np.float64)


def _labels(values: Sequence[Any] | np.ndarray, class_names: list[str]) -> list[str]:
    """True classes as names: integer labels index the class names, any other label is its own name."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.integer) and len(class_names) > int(values.max(initial=0)):
        return [class_names[i] for i in values]
    return [str(v) for v in values]


def predictions_table(
    outputs: np.ndarray,
    task: str,
    class_names: list[str],
    true: Sequence[Any] | np.ndarray | None = None,
    names: list[str] | None = None,
    name_column: str = "image",
) -> pd.DataFrame:
    """index (and `name_column`: an image file), true (where known), then: predicted class name, its
    probability and p(<class>) columns; or for regression predicted and error, per target when several."""
    outputs = np.asarray(outputs)
    table = pd.DataFrame({"index": np.arange(len(outputs))})
    if names is not None:
        table[name_column] = names
    if task == "regression":
        values = outputs.reshape(len(outputs), -1).astype(np.float64)
        known = None if true is None else np.asarray(true, dtype=np.float64).reshape(len(outputs), -1)
        for i in range(values.shape[1]):
            suffix = "" if values.shape[1] == 1 else f"_{i}"
            if known is not None:
                table[f"true{suffix}"] = known[:, i].round(4)
            table[f"predicted{suffix}"] = values[:, i].round(4)
            if known is not None:
                table[f"error{suffix}"] = (values[:, i] - known[:, i]).round(4)
        return table
    names_ = class_names or [str(i) for i in range(outputs.shape[1])]
    if len(names_) != outputs.shape[1]:
        raise PredictError(f"the model gives {outputs.shape[1]} classes but there are {len(names_)} names")
    if true is not None:
        table["true"] = _labels(true, names_)
    table["predicted"] = [names_[i] for i in outputs.argmax(axis=1)]
    table["probability"] = outputs.max(axis=1).round(4)
    per_class = pd.DataFrame(outputs.round(4), columns=[f"p({c})" for c in names_])
    return pd.concat([table, per_class], axis=1)


# What a terminal shows of the table: the rest (p(<class>) columns) stays in the file.
SHOWN = ("index", "image", "row", "true", "predicted", "probability", "error")


def shown_columns(table: pd.DataFrame) -> list[str]:
    """The columns worth a terminal line: all but the per-class probabilities."""
    return [c for c in table.columns if c.split("_")[0] in SHOWN or c in SHOWN]
