"""What a run records besides its metrics: dataset, figures, tables, config, and the model itself."""

from __future__ import annotations

import json
import tempfile
import warnings
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweeplab import compat
from sweeplab.data import Dataset
from sweeplab.perf.process import in_background
from sweeplab.predictions import is_table, model_inputs, predictions_table, raw_rows
from sweeplab.tracking.runs import run_name

# MLflow and matplotlib are imported where they are used: this module is imported before a run starts.

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")  # the logged model's code (MLflow's models from code)
KERAS_ARTIFACT = "keras_model"  # the logged model's .keras file, as pyfunc_model.py loads it
INPUTS_ARTIFACT = "inputs"  # the logged model's inputs.json (what it takes, how it scales raw rows), as it loads it
INPUTS_FILE = "inputs.json"


def numpy_digest(*arrays: Any) -> str:
    """MLflow's own digest of a NumPy dataset, without copying the arrays (tests/test_train.py compares them)."""
    return compat.numpy_dataset_digest(arrays)


def model_requirements() -> list[str]:
    """The logged model's pip requirements, given: inferring them starts a subprocess that loads the model."""
    import keras
    import mlflow

    requirements = [f"keras=={keras.__version__}", f"mlflow=={mlflow.__version__}"]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        requirements.append(f"tensorflow=={tf.__version__}")
    return requirements


def prepare_model_logging() -> Future:
    """Run MLflow's requirements check (log_model's first step) on a thread while the model trains.

    It gains where training leaves a core idle (docs/performance.md has the measurements).
    """
    return in_background("model-logging", compat.check_model_requirements, model_requirements())


def inference_copy(model: Any) -> Any:
    """The model's layers and weights, uncompiled: no optimizer state, no compiled or fused training steps."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def log_model(model: Any, example: np.ndarray, data: Dataset | None = None) -> None:
    """Log the model, with signature and input example, as the code in tracking/pyfunc_model.py serving an
    inference copy of the Keras model: it loads with mlflow.pyfunc.load_model (and `mlflow models serve`)
    on any Keras backend and predicts without progress output.

    `example` is a few inputs as the model trains on them. With `data`, the model also carries what it takes
    (inputs.json): a table model takes raw rows by column name (its signature names the features), scales
    them itself and answers with class names or numbers; images keep their contract (scaled 0..1 in, class
    probabilities out). Without `data`, it is an image model."""
    import keras
    import mlflow
    from mlflow.models import infer_signature

    # A direct call, not predict(): predict would compile a step for this batch shape only for this.
    outputs = keras.ops.convert_to_numpy(model(example, training=False))
    described = model_inputs(data) if data is not None else None
    inputs: Any = example
    answers: Any = outputs
    if data is not None and is_table(data):
        inputs = pd.DataFrame(raw_rows(example, data.preprocessing), columns=described["features"])
        answers = model_answers(outputs, data)
    signature = infer_signature(inputs, answers)
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "model.keras"
        inference_copy(model).save(saved)
        files = {KERAS_ARTIFACT: str(saved)}
        if described is not None:
            (Path(tmp) / INPUTS_FILE).write_text(json.dumps(described, indent=2))
            files[INPUTS_ARTIFACT] = str(Path(tmp) / INPUTS_FILE)
        mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts=files,
            signature=signature,
            input_example=inputs,
            pip_requirements=model_requirements(),
        )


def model_answers(outputs: np.ndarray, data: Dataset) -> Any:
    """What the logged table model answers for these outputs (tracking/pyfunc_model.py's table_outputs, which
    runs without sweeplab): the predicted class and p(<class>) columns, or the predicted numbers."""
    if data.task == "regression":
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs
    frame = pd.DataFrame({"predicted": [data.class_names[i] for i in outputs.argmax(axis=1)]})
    for i, name in enumerate(data.class_names):
        frame[f"p({name})"] = outputs[:, i].astype(np.float64)
    return frame


def log_outputs(
    cfg: DictConfig, model: Any, data: Dataset, history: pd.DataFrame, folder: Path, eval_batch_size: int
) -> pd.DataFrame:
    """history.csv, curves, confusion matrix (classification), sample predictions, model summary, resolved
    config, and what the model takes (inputs.json: a table's features and the scaling the logged model applies)."""
    import mlflow

    from sweeplab.plots import confusion_matrix, plot_confusion_matrix, plot_learning_curves

    history.index.name = "epoch"
    history.to_csv(folder / "history.csv")
    title = run_name(cfg)
    plot_learning_curves(history, folder / "learning_curves.png", title)

    outputs = model.predict(data.x_test, batch_size=eval_batch_size, verbose=0)
    if data.task == "classification":
        matrix = confusion_matrix(data.y_test, outputs.argmax(axis=1), data.num_classes)
        pd.DataFrame(matrix, index=data.class_names, columns=data.class_names).to_csv(folder / "confusion_matrix.csv")
        plot_confusion_matrix(matrix, data.class_names, folder / "confusion_matrix.png")

    shown = outputs[: cfg.training.predict_samples]
    samples = predictions_table(shown, data.task, data.class_names, true=data.y_test[: len(shown)])
    samples.to_csv(folder / "predictions.csv", index=False)

    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    (folder / "model_summary.txt").write_text("\n".join(lines) + "\n")
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (folder / INPUTS_FILE).write_text(json.dumps(model_inputs(data), indent=2))
    mlflow.log_artifacts(str(folder))
    hydra_dir = _hydra_output_dir()
    if hydra_dir is not None and (hydra_dir / ".hydra").is_dir():
        mlflow.log_artifacts(str(hydra_dir / ".hydra"), artifact_path="hydra")
    return samples


def _hydra_output_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir)


def log_dataset(data: Dataset) -> None:
    import mlflow

    with warnings.catch_warnings():
        # A local path "can be interpreted in multiple ways" by MLflow's source registry: all of them local.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_numpy(
            data.x_train,
            targets=data.y_train,
            source=data.source,
            name=data.name,
            digest=numpy_digest(data.x_train, data.y_train),
        )
    for attempt in range(3):
        try:
            mlflow.log_input(dataset, context="training")
            return
        except mlflow.exceptions.MlflowException as err:
            # Jobs that start together on one SQL store can each find the dataset missing and insert it: all
            # but one fail on the store's unique key. The dataset is stored now; logging again links it.
            if "unique constraint" not in str(err).lower() or attempt == 2:
                raise
