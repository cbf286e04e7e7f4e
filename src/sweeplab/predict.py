"""Predictions from a logged model: class names or numbers for test rows, image files or the rows of a CSV file.

The model is loaded with mlflow.pyfunc from any MLflow model URI (runs:/<run id>/model, models:/<model id>,
models:/<name>/<version>, models:/<name>/latest, models:/<name>@<alias>); what it was trained on comes from
the run that logged it, which MLflow's own model info names (sweeplab.tracking.models). A table model's
signature names its feature columns: it takes raw rows and scales them itself (tracking/pyfunc_model.py).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from sweeplab.config import CONF_DIR
from sweeplab.errors import PredictError

IMAGE_SIZE = (28, 28)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".npy")


@dataclass
class ModelSource:
    """What the model and its run tell about its data: which dataset, where from, its task and class names;
    for a table model its feature columns (the signature's) and the run's data config."""

    run_id: str | None
    dataset: str | None
    data_path: str | None
    class_names: list[str]
    task: str = "classification"
    features: list[str] = field(default_factory=list)  # empty: the model takes images
    data: DictConfig | None = None  # the run's data config (config.yaml), for a data config with a _target_

    @property
    def is_table(self) -> bool:
        return bool(self.features)

    @property
    def target(self) -> str | None:
        """A table's target column (data.target), shown as `true` where a CSV file has it."""
        return None if self.data is None or self.data.get("target") is None else str(self.data.target)


def model_source(model_uri: str, tracking_uri: str | None = None) -> ModelSource:
    """What the run that logged the model says about its data (nothing for a model logged outside a run)."""
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)  # MLflow's model URIs resolve against the current store
    try:
        info = mlflow.models.get_model_info(model_uri)
        params = MlflowClient(tracking_uri=tracking_uri).get_run(info.run_id).data.params if info.run_id else {}
    except (MlflowException, OSError) as err:
        raise PredictError(f"cannot find the model {model_uri}: {str(err).splitlines()[0]}") from err
    inputs = info.signature.inputs if info.signature is not None else None
    features = list(inputs.input_names()) if inputs is not None and inputs.has_input_names() else []
    # A loader's data (a table, or yours) is rebuilt from the run's config; a search's parent has no data params.
    data = _run_data(info.run_id, tracking_uri) if info.run_id and ("data._target_" in params or features) else None
    names = params.get("data.class_names")
    path = params.get("data.path")
    return ModelSource(
        run_id=info.run_id,
        dataset=params.get("data.name"),
        data_path=None if path in (None, "null") else path,
        class_names=list(ast.literal_eval(names)) if names else [],
        task=(data.get("task") if data is not None else None) or params.get("data.task") or "classification",
        features=features,
        data=data,
    )


def _run_data(run_id: str, tracking_uri: str | None) -> DictConfig | None:
    """The data config the run trained with, from its resolved config.yaml (None if it has none)."""
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="config.yaml", tracking_uri=tracking_uri
        )
    except (MlflowException, OSError):
        return None
    return OmegaConf.load(path).get("data")


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


def test_rows(source: ModelSource, count: int, data_path: str | None = None) -> tuple[Any, np.ndarray, list[str]]:
    """The first `count` test rows of the run's data, rebuilt from its config: raw table rows by feature name
    (or other inputs as the model trained on them), the true classes (names) or numbers, the class names."""
    from sweeplab.data import load_dataset, raw_arrays

    if source.data is None:
        raise PredictError("the model's run has no data config with a _target_: give --csv FILE or --images FILE")
    data = source.data.copy()
    if data_path:
        data.path = data_path
    dataset = load_dataset(data)
    true = dataset.y_test[:count]
    if dataset.class_names:
        true = np.asarray([dataset.class_names[i] for i in true])
    if not source.is_table:
        return dataset.x_test[:count], true, dataset.class_names
    x_test = raw_arrays(data)[0][2][:count]
    return pd.DataFrame(x_test.astype(np.float64), columns=source.features), true, dataset.class_names


def csv_rows(path: Path, source: ModelSource) -> tuple[pd.DataFrame, np.ndarray | None]:
    """A CSV file's rows: the model's feature columns by name (raw values) and its target column, if it has one."""
    if not source.is_table:
        raise PredictError(f"--csv {path}: the model takes images, not table rows; give --images FILE")
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise PredictError(f"cannot read {path} as CSV: {str(err).splitlines()[0]}") from err
    missing = [c for c in source.features if c not in table.columns]
    if missing:
        raise PredictError(f"{path} lacks the model's feature columns {', '.join(missing)}")
    true = table[source.target].to_numpy() if source.target and source.target in table.columns else None
    return table[source.features], true


def predict(model_uri: str, inputs: Any, tracking_uri: str | None = None) -> Any:
    """The logged model's answer: class probabilities (images), or a table model's classes or numbers."""
    import keras
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as err:
        raise PredictError(f"cannot load model {model_uri}: {str(err).splitlines()[0]}") from err
    keras.config.disable_interactive_logging()  # models logged before sweeplab's own model code predict via Keras
    if isinstance(inputs, np.ndarray):
        inputs = inputs.astype(np.float32)
    try:
        return model.predict(inputs)
    except MlflowException as err:
        raise PredictError(f"model {model_uri} refused the input: {str(err).splitlines()[0]}") from err


def as_outputs(answer: Any, class_names: list[str]) -> tuple[np.ndarray, list[str]]:
    """The model's answer as one row of outputs per input and the class names: a table classifier's
    p(<class>) columns name its classes."""
    if isinstance(answer, pd.DataFrame):
        columns = [c for c in answer.columns if c.startswith("p(") and c.endswith(")")]
        return answer[columns].to_numpy(dtype=np.float64), [c[2:-1] for c in columns]
    outputs = np.asarray(answer)
    return outputs.reshape(len(outputs), -1), class_names
