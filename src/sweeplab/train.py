"""One tracked training run: `run(cfg) -> metrics`."""

from __future__ import annotations

import tempfile
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from omegaconf import DictConfig

from sweeplab.backend import configure_threads, fresh_start
from sweeplab.data import Dataset, load_dataset
from sweeplab.objective import compile_settings
from sweeplab.perf import compiled_cache, xla
from sweeplab.perf.fused_steps import fit_batch_size, fuse_steps, fused_steps_of
from sweeplab.tracking import artifacts, runs, store
from sweeplab.tracking.context import NO_STUDY, StudyContext
from sweeplab.tracking.ui import run_link

# MLflow is imported where it is used, so that bench/untracked.py can use this module without it.

# Batch for validation, test and predict (no effect on training): one size divides the 5,000 validation
# and 10,000 test images, so XLA compiles the test step once, not once per batch shape and call site.
EVAL_BATCH_SIZE = 1000


@dataclass
class RunResult:
    """A recorded run: its id, its final metrics and how it trained."""

    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    history: pd.DataFrame | None = field(default=None, repr=False)  # per epoch, for a run that trained
    seeds: pd.DataFrame | None = field(default=None, repr=False)  # per seed, for a config run with seeds=N
    pruned_at: int | None = None  # the last epoch trained, when the study's pruner stopped the run early


class Fitted(NamedTuple):
    """What fit() gives back: the metrics per epoch, and the last epoch when the study's pruner stopped it."""

    history: pd.DataFrame
    pruned_at: int | None


def build(cfg: DictConfig, data: Dataset) -> Any:
    """The configured model for `data`, uncompiled, from fresh weights (the current seed's)."""
    from sweeplab.builder import build_model

    return build_model(cfg, data.input_shape, data.num_outputs, data.task)


def check_fits(cfg: DictConfig) -> None:
    """Load the data and build the model once, as a run does: a loader or builder that does not fit is refused
    in one line before a run that holds other runs (a config's seeds) is opened. The raw arrays stay cached
    for the runs."""
    build(cfg, load_dataset(cfg.data))


def compile_model(cfg: DictConfig, data: Dataset) -> Any:
    """The configured model, compiled as the run trains it: the task's loss and metrics, sweeplab's optimizer."""
    from sweeplab.optimizers import build_optimizer

    model = build(cfg, data)
    loss, metrics = compile_settings(data.task)
    model.compile(
        optimizer=build_optimizer(cfg),
        loss=loss,
        metrics=metrics,
        jit_compile=xla.jit_compile(cfg.training.jit_compile, model),
        steps_per_execution=cfg.training.steps_per_execution,
    )
    return fuse_steps(model, cfg.batch_size, cfg.training.fused_steps)


def fit(cfg: DictConfig, model: Any, data: Dataset, study: StudyContext, extra_callbacks: list | None = None) -> Fitted:
    """Train with validation each epoch, logging each epoch to the active MLflow run (pruned in `study`)."""
    from sweeplab.callbacks import MlflowEpochLogger, StopOnDivergence, StopOnSignal, epoch_progress
    from sweeplab.pruning.callback import pruning_callbacks

    fused = fused_steps_of(model)  # cfg.training.fused_steps, or 1 where this model keeps Keras's step
    shown = epoch_progress(cfg.training.verbose, len(data.x_train), cfg.batch_size, fused)
    extra_callbacks = [*(extra_callbacks or []), *shown]
    pruners = pruning_callbacks(cfg, study)
    history = model.fit(
        data.x_train,
        data.y_train,
        epochs=cfg.epochs,
        batch_size=fit_batch_size(cfg.batch_size, fused),
        validation_data=(data.x_valid, data.y_valid),
        validation_batch_size=EVAL_BATCH_SIZE,
        callbacks=[StopOnSignal(), StopOnDivergence(), MlflowEpochLogger(), *pruners, *(extra_callbacks or [])],
        verbose=0,  # the epochs are shown by sweeplab.callbacks.EpochProgress
    )
    pruned_at = next((p.pruned.epoch for p in pruners if p.pruned is not None), None)
    return Fitted(pd.DataFrame(history.history), pruned_at)


def test_metrics(model: Any, data: Dataset) -> dict[str, float]:
    """The model's loss and the task's metrics on the test set, as test_loss, test_accuracy, ..."""
    found = model.evaluate(data.x_test, data.y_test, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True)
    return {f"test_{k}": float(v) for k, v in found.items()}


def run(cfg: DictConfig, extra_tags: dict[str, str] | None = None, study: StudyContext = NO_STUDY) -> RunResult:
    """Load data, train, evaluate and record everything in one MLflow run (`cfg` is validated already);
    `extra_tags` go on the run beside its own (a seed's run: its role); `study`: the study it joins, if any."""
    experiment_id = store.configure(cfg.tracking)
    data = load_dataset(cfg.data)
    configure_threads(cfg.training.threads)
    fresh_start(cfg.seed)
    name = runs.run_name(cfg)
    # Built before the run opens: a model that does not fit the data is refused in one line, no run made.
    model = compiled_cache.CACHE.take(cfg, data, lambda: build(cfg, data))
    if model is None:
        model = compile_model(cfg, data)

    with runs.tracked_run(name, {**runs.run_tags(cfg), **(extra_tags or {})}, study) as active:
        run_id = active.info.run_id
        print(f"sweeplab: run '{name}' ({run_id}) in experiment '{cfg.tracking.experiment}'", flush=True)
        final, fitted, samples = _train_and_log(cfg, model, data, study)
    compiled_cache.CACHE.keep(cfg, data, model)  # for the next job in this process, now that this run is recorded

    print(
        samples[[c for c in ("index", "true", "predicted", "probability", "error") if c in samples]].to_string(
            index=False
        )
    )
    shown = " ".join(f"{k}={v:.4f}" for k, v in final.items() if k.startswith("test_"))
    print(f"sweeplab: {shown} in {final['train_time']:.1f} s -> {run_link(experiment_id, run_id)}", flush=True)
    metrics = {**final, **{k: float(v) for k, v in fitted.history.iloc[-1].items()}}
    return RunResult(run_id, experiment_id, metrics, history=fitted.history, pruned_at=fitted.pruned_at)


def _train_and_log(
    cfg: DictConfig, model: Any, data: Dataset, study: StudyContext
) -> tuple[dict[str, float], Fitted, pd.DataFrame]:
    """Inside the active run: its params and dataset, the training, the test metrics, its outputs and model.
    Returns the run's final metrics, what fit gave and the predictions shown."""
    import mlflow

    mlflow.log_params(runs.flat_params(cfg))
    artifacts.log_dataset(data)
    preparing = artifacts.prepare_model_logging() if cfg.tracking.log_model else None
    started = time.perf_counter()
    fitted = fit(cfg, model, data, study)
    train_time = time.perf_counter() - started
    final = {**test_metrics(model, data), "param_count": float(model.count_params()), "train_time": train_time}
    mlflow.log_metrics(final)
    with tempfile.TemporaryDirectory() as tmp:
        samples = artifacts.log_outputs(cfg, model, data, fitted.history, Path(tmp), EVAL_BATCH_SIZE)
    if preparing is not None:
        futures.wait([preparing])  # a failure there is log_model's to report, if it fails again
        artifacts.log_model(model, data.x_test[: max(1, cfg.training.predict_samples)], data)
    return final, fitted, samples
