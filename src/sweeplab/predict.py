"""Predictions from a logged model: class names and probabilities for test images or image files.

The model is loaded with mlflow.pyfunc from any MLflow model URI (runs:/<run id>/model, models:/<model id>,
models:/<name>/<version>, models:/<name>/latest, models:/<name>@<alias>); class names come from the run that
logged it, which MLflow's own model info names (sweeplab.tracking.models).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from sweeplab.config import CONF_DIR
from sweeplab.errors import PredictError
from sweeplab.tracking.models import source_run_id

IMAGE_SIZE = (28, 28)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy")


@dataclass
class ModelSource:
    """What the model's run tells about its data: which dataset, where from, its class names."""

    run_id: str | None
    dataset: str | None
    data_path: str | None
    class_names: list[str]


def model_source(model_uri: str, tracking_uri: str | None = None) -> ModelSource:
    """What the run that logged the model says about its data (nothing for a model logged outside a run)."""
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)  # MLflow's model URIs resolve against the current store
    try:
        run_id = source_run_id(model_uri)
        params = MlflowClient(tracking_uri=tracking_uri).get_run(run_id).data.params if run_id else {}
    except (MlflowException, OSError) as err:
        raise PredictError(f"cannot find the model {model_uri}: {str(err).splitlines()[0]}") from err
    names = params.get("data.class_names")
    path = params.get("data.path")
    return ModelSource(
        run_id=run_id,
        dataset=params.get("data.name"),
        data_path=None if path in (None, "null") else path,
        class_names=list(ast.literal_eval(names)) if names else [],
    )


def default_class_names(dataset: str) -> list[str]:
    """The class names conf/data/<dataset>.yaml gives (the runs' own names are preferred)."""
    path = CONF_DIR / "data" / f"{dataset}.yaml"
    return list(OmegaConf.load(path).class_names) if path.is_file() else []


def read_image(path: Path, invert: bool = False) -> np.ndarray:
    """A 28x28 grayscale image scaled to 0..1, as the model was trained on (light object, dark background).

    PNG/JPG/... are converted to grayscale and resized; .npy holds one 28x28 array or a stack (N, 28, 28),
    either 0..255 or 0..1. `invert` turns a dark-on-white picture into the training data's look.
    """
    if not path.is_file():
        raise PredictError(f"image {path} does not exist")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise PredictError(f"image {path}: use one of {', '.join(IMAGE_SUFFIXES)}")
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path).astype(np.float32)
        else:
            from PIL import Image

            with Image.open(path) as img:
                array = np.asarray(img.convert("L").resize(IMAGE_SIZE), dtype=np.float32)
    except (OSError, ValueError) as err:
        raise PredictError(f"cannot read image {path}: {err}") from err
    if array.shape[-2:] != IMAGE_SIZE or array.ndim not in (2, 3):
        raise PredictError(f"image {path} has shape {array.shape}; expected 28x28 or (N, 28, 28)")
    if array.max() > 1.0:
        array = array / 255.0
    if invert:
        array = 1.0 - array
    return array.reshape(-1, *IMAGE_SIZE)


def test_images(dataset: str, data_path: str | None, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` test images and labels, scaled as in training."""
    from sweeplab.data import load_raw

    _, _, x_test, y_test = load_raw(dataset, data_path)
    return x_test[:count].astype(np.float32) / np.float32(255), y_test[:count].astype(np.int64)


def predict(model_uri: str, images: np.ndarray, tracking_uri: str | None = None) -> np.ndarray:
    """Class probabilities, one row per image."""
    import keras
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as err:
        raise PredictError(f"cannot load model {model_uri}: {str(err).splitlines()[0]}") from err
    keras.config.disable_interactive_logging()  # models logged before sweeplab's own model code predict via Keras
    return np.asarray(model.predict(images.astype(np.float32)))


def predictions_table(
    probabilities: np.ndarray,
    class_names: list[str],
    labels: np.ndarray | None = None,
    names: list[str] | None = None,
) -> pd.DataFrame:
    """index (or image file), true class (test images), predicted class, its probability, p(class) columns."""
    names_ = class_names or [str(i) for i in range(probabilities.shape[1])]
    if len(names_) != probabilities.shape[1]:
        raise PredictError(f"the model gives {probabilities.shape[1]} classes but there are {len(names_)} names")
    table = pd.DataFrame({"index": np.arange(len(probabilities))})
    if names is not None:
        table["image"] = names
    if labels is not None:
        table["true"] = [names_[i] for i in labels]
    table["predicted"] = [names_[i] for i in probabilities.argmax(axis=1)]
    table["probability"] = probabilities.max(axis=1).round(4)
    per_class = pd.DataFrame(probabilities.round(4), columns=[f"p({c})" for c in names_])
    return pd.concat([table, per_class], axis=1)
