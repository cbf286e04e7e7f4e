"""One tracked training run: `run(cfg) -> metrics`."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweeplab import tracking
from sweeplab.config import hidden_units, validate
from sweeplab.data import Dataset, load_dataset
from sweeplab.runtime import configure_threads, fresh_start, in_background
from sweeplab.steps import fit_batch_size, fuse_steps

# MLflow and matplotlib are imported where they are used, so that bench/untracked.py can use this module.

# Batch for validation, test and predict (no effect on training): one size divides the 5,000 validation
# and 10,000 test images, so XLA compiles the test step once, not once per batch shape and call site.
EVAL_BATCH_SIZE = 1000


@dataclass
class RunResult:
    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    history: pd.DataFrame = field(repr=False)
    reused_compiled: bool = False  # the compiled model of an earlier job in this process (sweeplab.compiled)


def compile_model(cfg: DictConfig, data: Dataset) -> Any:
    """The configured MLP, compiled as the run trains it."""
    from sweeplab.model import build_mlp
    from sweeplab.optimizers import build_optimizer

    model = build_mlp(data.input_shape, hidden_units(cfg), cfg.activation, data.num_classes)
    model.compile(
        optimizer=build_optimizer(cfg),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=cfg.training.jit_compile,
        steps_per_execution=cfg.training.steps_per_execution,
    )
    return fuse_steps(model, cfg.batch_size, cfg.training.fused_steps)


def _verbose(cfg: DictConfig) -> str | int:
    return "auto" if str(cfg.training.verbose) == "auto" else int(cfg.training.verbose)


def fit(cfg: DictConfig, model: Any, data: Dataset, extra_callbacks: list | None = None) -> pd.DataFrame:
    """Train with validation each epoch, logging each epoch to the active MLflow run."""
    from sweeplab.callbacks import MlflowEpochLogger, StopOnDivergence

    history = model.fit(
        data.x_train,
        data.y_train,
        epochs=cfg.epochs,
        batch_size=fit_batch_size(cfg.batch_size, cfg.training.fused_steps),
        validation_data=(data.x_valid, data.y_valid),
        validation_batch_size=EVAL_BATCH_SIZE,
        callbacks=[StopOnDivergence(), MlflowEpochLogger(), *(extra_callbacks or [])],
        verbose=_verbose(cfg),
    )
    return pd.DataFrame(history.history)


def predictions_table(probabilities: np.ndarray, data: Dataset) -> pd.DataFrame:
    """Class names and probabilities for the first test images (the tutorial's predict step)."""
    predicted = probabilities.argmax(axis=1)
    table = pd.DataFrame(
        {
            "index": np.arange(len(probabilities)),
            "true": [data.class_names[i] for i in data.y_test[: len(probabilities)]],
            "predicted": [data.class_names[i] for i in predicted],
            "probability": probabilities.max(axis=1).round(4),
        }
    )
    per_class = pd.DataFrame(probabilities.round(4), columns=[f"p({c})" for c in data.class_names])
    return pd.concat([table, per_class], axis=1)


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
    """Do ahead, on another thread while the model trains, what MLflow's log_model would do first.

    Before it saves a model, MLflow checks its requirements against the installed packages, for which it
    maps every installed distribution to its modules once per process (0.25 s here, all Python). Training
    leaves Python's lock free most of the time, so the map is built beside it, by MLflow's own check. On
    2 cores that is a wash (training is that much slower); it gains where training leaves a core idle.
    """
    from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

    return in_background("model-logging", warn_dependency_requirement_mismatches, model_requirements())


def log_model(model: Any, example: np.ndarray) -> None:
    """Log the Keras model with signature and input example, loadable by mlflow.pyfunc.load_model.

    On the TensorFlow backend this is mlflow.tensorflow (MLflow 3's Keras-3 aware flavour); mlflow.keras
    is used for other backends, without the input example, which its save_model writes into a folder it
    has not created yet (MLflow 3.17).
    """
    import keras
    from mlflow.models import infer_signature

    # A direct call, not predict(): predict would compile a step for this batch shape only for this.
    signature = infer_signature(example, keras.ops.convert_to_numpy(model(example, training=False)))
    # MLflow checks the input example by predicting through Keras, which would draw a progress bar; with
    # interactive logging off Keras sends it to absl's logger at INFO instead, which Hydra's logging prints.
    keras.config.disable_interactive_logging()
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.WARNING)
    requirements = model_requirements()
    try:
        if keras.backend.backend() == "tensorflow":
            from mlflow import tensorflow as mlflow_tensorflow

            mlflow_tensorflow.log_model(
                model, name="model", signature=signature, input_example=example, pip_requirements=requirements
            )
        else:
            from mlflow import keras as mlflow_keras

            mlflow_keras.log_model(model, name="model", signature=signature, pip_requirements=requirements)
    finally:
        keras.config.enable_interactive_logging()
        absl_logger.setLevel(level)


def log_outputs(cfg: DictConfig, model: Any, data: Dataset, history: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """history.csv, curves, confusion matrix, sample predictions, model summary, resolved config."""
    import mlflow

    from sweeplab.plots import confusion_matrix, plot_confusion_matrix, plot_learning_curves

    history.index.name = "epoch"
    history.to_csv(folder / "history.csv")
    title = tracking.run_name(cfg)
    plot_learning_curves(history, folder / "learning_curves.png", title)

    probabilities = model.predict(data.x_test, batch_size=EVAL_BATCH_SIZE, verbose=0)
    matrix = confusion_matrix(data.y_test, probabilities.argmax(axis=1), data.num_classes)
    pd.DataFrame(matrix, index=data.class_names, columns=data.class_names).to_csv(folder / "confusion_matrix.csv")
    plot_confusion_matrix(matrix, data.class_names, folder / "confusion_matrix.png")

    samples = predictions_table(probabilities[: cfg.training.predict_samples], data)
    samples.to_csv(folder / "predictions.csv", index=False)

    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    (folder / "model_summary.txt").write_text("\n".join(lines) + "\n")
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
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
            digest=tracking.numpy_digest(data.x_train, data.y_train),
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


def run(cfg: DictConfig) -> RunResult:
    """Validate, load data, train, evaluate and record everything in one MLflow run."""
    import mlflow

    from sweeplab import compiled

    validate(cfg)
    experiment_id = tracking.configure(cfg.tracking)
    data = load_dataset(cfg.data)
    configure_threads(cfg.training.threads)
    fresh_start(cfg.seed)
    name = tracking.run_name(cfg)

    with tracking.tracked_run(name, tracking.run_tags(cfg)) as active:
        run_id = active.info.run_id
        print(f"sweeplab: run '{name}' ({run_id}) in experiment '{cfg.tracking.experiment}'", flush=True)
        mlflow.log_params(tracking.flat_params(cfg))
        log_dataset(data)
        model = compiled.take(cfg, data)
        reused = model is not None
        if model is None:
            model = compile_model(cfg, data)

        preparing = prepare_model_logging() if cfg.tracking.log_model else None
        started = time.perf_counter()
        history = fit(cfg, model, data)
        train_time = time.perf_counter() - started

        test = model.evaluate(data.x_test, data.y_test, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True)
        metrics = {
            "test_loss": float(test["loss"]),
            "test_accuracy": float(test["accuracy"]),
            "param_count": float(model.count_params()),
            "train_time": train_time,
            **{k: float(v) for k, v in history.iloc[-1].items()},
        }
        mlflow.log_metrics({k: metrics[k] for k in ("test_loss", "test_accuracy", "param_count", "train_time")})
        with tempfile.TemporaryDirectory() as tmp:
            samples = log_outputs(cfg, model, data, history, Path(tmp))
        if preparing is not None:
            futures.wait([preparing])  # a failure there is log_model's to report, if it fails again
            log_model(model, data.x_test[: max(1, cfg.training.predict_samples)])
    compiled.keep(cfg, data, model)  # for the next job in this process, now that this run is recorded

    print(samples[["index", "true", "predicted", "probability"]].to_string(index=False))
    print(
        f"sweeplab: test_accuracy={metrics['test_accuracy']:.4f} test_loss={metrics['test_loss']:.4f} "
        f"in {train_time:.1f} s -> {tracking.ui_url(experiment_id, run_id)} (make ui)",
        flush=True,
    )
    return RunResult(run_id, experiment_id, metrics, history, reused_compiled=reused)
