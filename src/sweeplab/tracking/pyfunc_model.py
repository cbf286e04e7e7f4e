"""The code of every model sweeplab logs (MLflow's "models from code": this file is copied into the model).

It serves the Keras model saved beside it with plain inference settings, and predicts without progress
output wherever the model is loaded: mlflow.pyfunc, `mlflow models serve`, predict.py. Keras's own predict
draws a progress bar per call (into a server's log, once per request) and MLflow's Keras flavours call it
with its defaults. It runs without sweeplab installed: it imports only Keras, NumPy, pandas and MLflow.

Images go in as the model was trained on them (floats scaled to 0..1) and class probabilities come out.
A table model (its `inputs.json` says so) takes raw rows, a DataFrame with the feature columns by name or a
2-D array in feature order, scales them as training did, and gives the predicted class name with the
class probabilities (columns `predicted`, `p(<class>)`), or the predicted numbers (regression).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

KERAS_MODEL = "keras_model"  # the artifact holding the .keras file
INPUTS = "inputs"  # the artifact holding inputs.json: what the model takes and how raw rows are scaled
BATCH_SIZE = 1000


def scaled(x: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """Raw inputs as the model was trained on them (sweeplab.data.preprocess, which this must equal)."""
    if "scale" in preprocessing:
        return x.astype(np.float32) / np.float32(preprocessing["scale"])
    if "mean" in preprocessing:
        mean = np.asarray(preprocessing["mean"], dtype=np.float32)
        return (x.astype(np.float32) - mean) / np.asarray(preprocessing["std"], dtype=np.float32)
    return x.astype(np.float32)


def table_outputs(outputs: np.ndarray, task: str, class_names: list[str]) -> Any:
    """A table model's answer: the predicted class and p(<class>) columns, or the predicted numbers."""
    if task == "regression":
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs
    frame = pd.DataFrame({"predicted": [class_names[i] for i in outputs.argmax(axis=1)]})
    for i, name in enumerate(class_names):
        frame[f"p({name})"] = outputs[:, i].astype(np.float64)
    return frame


class KerasModel(PythonModel):
    """Predictions, one row per image or table row, from the Keras model in the artifact `keras_model`."""

    def load_context(self, context: Any) -> None:
        self.model = keras.saving.load_model(context.artifacts[KERAS_MODEL], compile=False)
        described = context.artifacts.get(INPUTS)  # models logged before tables had none: images
        self.inputs = json.loads(Path(described).read_text()) if described else {"kind": "images"}

    # model_input: images, or a table's DataFrame (or 2-D array). MLflow reads an ndarray or DataFrame hint as
    # "no schema from hints" (the logged signature checks inputs); other hints it would validate, or warn about.
    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> Any:
        if self.inputs["kind"] != "table":
            images = np.asarray(model_input, dtype=np.float32)
            return keras.ops.convert_to_numpy(self.model.predict(images, batch_size=BATCH_SIZE, verbose=0))
        if isinstance(model_input, pd.DataFrame):
            rows = model_input[self.inputs["features"]].to_numpy(dtype=np.float64)
        else:
            rows = np.asarray(model_input, dtype=np.float64).reshape(-1, len(self.inputs["features"]))
        x = scaled(rows, self.inputs["preprocessing"])
        outputs = keras.ops.convert_to_numpy(self.model.predict(x, batch_size=BATCH_SIZE, verbose=0))
        return table_outputs(outputs, self.inputs["task"], self.inputs["class_names"])


set_model(KerasModel())
