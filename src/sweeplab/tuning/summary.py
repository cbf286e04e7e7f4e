"""A finished search on its parent run (finish_search): the trials table and best values, then the best config
trained again, logged and registered."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from sweeplab.backend import fresh_start
from sweeplab.config import hidden_units, is_mlp
from sweeplab.console import markdown
from sweeplab.data import Dataset
from sweeplab.objective import Objective, objective_of
from sweeplab.plots import plot_search
from sweeplab.tracking import models, studies, tags
from sweeplab.tracking.artifacts import log_model, log_outputs
from sweeplab.tracking.context import NO_STUDY
from sweeplab.tracking.runs import run_name
from sweeplab.tracking.studies import Study
from sweeplab.tracking.ui import run_link
from sweeplab.train import EVAL_BATCH_SIZE, Fitted, compile_model, fit, test_metrics
from sweeplab.tuning.space import tuner_objective
from sweeplab.tuning.trials import trial_runs


@dataclass
class SearchResult:
    parent_run_id: str
    experiment_id: str
    best_score: float
    baseline_score: float
    trials: pd.DataFrame = field(repr=False)
    metrics: dict[str, float] = field(default_factory=dict)


def early_stopping(cfg: DictConfig, restore: bool = False) -> list:
    """Keras's early stopping on the search's objective, in its direction, when tuner.patience is set."""
    if cfg.tuner.patience is None:
        return []
    objective = tuner_objective(cfg)
    return [
        keras.callbacks.EarlyStopping(
            monitor=objective.metric,
            mode=objective.direction,
            patience=cfg.tuner.patience,
            restore_best_weights=restore,
        )
    ]


def trials_table(tuner: Any) -> pd.DataFrame:
    """One row per trial: id, status, score, hyperparameters, its MLflow run; best first."""
    runs = {}
    for run in reversed(trial_runs(tuner.experiment_id, tuner.project)):  # oldest first, so the latest attempt wins
        runs[run.data.tags[tags.TRIAL]] = run
    rows = []
    for trial_id, trial in tuner.oracle.trials.items():
        values = dict(trial.hyperparameters.values)
        rows.append(
            {
                "trial_id": trial_id,
                "status": str(trial.status),
                "score": np.nan if trial.score is None else float(trial.score),
                "best_step": trial.best_step,
                **_hidden_units(values),
                **{k: v for k, v in values.items() if not k.startswith("units_")},
                "pruned": runs[trial_id].data.tags.get(tags.PRUNED) if trial_id in runs else None,
                "run_id": runs[trial_id].info.run_id if trial_id in runs else None,
            }
        )
    table = pd.DataFrame(rows)
    ascending = tuner.oracle.objective.direction == "min"
    return table.sort_values("score", ascending=ascending, na_position="last", kind="stable")


def _hidden_units(values: dict[str, Any]) -> dict[str, str]:
    """The MLP's hidden sizes as one column (300-100); nothing for other models."""
    if "depth" not in values:
        return {}
    return {"hidden_units": "-".join(str(values[f"units_{i + 1}"]) for i in range(int(values["depth"])))}


def _same_values(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def strip(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if not k.startswith("tuner/")}

    return strip(a) == strip(b)


def baseline_score(tuner: Any) -> float:
    """The best score of the baseline's values: trial 0 and, under Hyperband, the trials continuing it."""
    trials = tuner.oracle.trials
    first = trials[tuner.oracle.start_order[0]]
    scores = [
        t.score
        for t in trials.values()
        if t.score is not None and _same_values(t.hyperparameters.values, first.hyperparameters.values)
    ]
    if not scores:
        return float("nan")
    return float(max(scores) if tuner.oracle.objective.direction == "max" else min(scores))


@dataclass
class SearchRecord:
    """What the trials found: the table, the best trial with its config (set up for retraining) and scores."""

    table: pd.DataFrame
    best_trial: Any
    best_cfg: DictConfig
    best: float
    baseline: float

    @property
    def counts(self) -> dict[str, float]:
        """trials_completed, trials_failed, trials_pruned."""
        completed = (self.table.status == "COMPLETED").sum()
        return {
            "trials_completed": float(completed),
            "trials_failed": float(len(self.table) - completed),
            "trials_pruned": float(self.table["pruned"].notna().sum()),
        }


def best_of(cfg: DictConfig, tuner: Any) -> SearchRecord:
    """The trials table and the best trial, its config set up for retraining; RuntimeError when none completed."""
    table = trials_table(tuner)
    if (table.status != "COMPLETED").all():
        raise RuntimeError("no trial of the search completed; see the FAILED trial runs for the reasons")
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_cfg = tuner.hypermodel.config_of(best_trial.hyperparameters)
    with open_dict(best_cfg):
        best_cfg.tuner = cfg.tuner  # early stopping settings for the retraining
        best_cfg.epochs = int(cfg.tuner.max_epochs)
    return SearchRecord(table, best_trial, best_cfg, float(best_trial.score), baseline_score(tuner))


def finish_search(cfg: DictConfig, tuner: Any, data: Dataset, study: Study) -> SearchResult:
    """The search's end on its parent run: the trials recorded (log_trials), then the best config trained
    again, logged and registered (retrain_and_register_best); printed with the trials."""
    record = best_of(cfg, tuner)
    with study.active():
        log_trials(cfg, record, maximize=tuner.oracle.objective.direction == "max")
        metrics, note = retrain_and_register_best(cfg, record, data, study.run_id)
    print(record.table.drop(columns=["run_id"]).head(10).to_string(index=False))
    print(f"sweeplab: {note} -> {run_link(study.experiment_id, study.run_id, study.client.tracking_uri)}", flush=True)
    return SearchResult(study.run_id, study.experiment_id, record.best, record.baseline, record.table, metrics)


def log_trials(cfg: DictConfig, record: SearchRecord, maximize: bool) -> None:
    """On the active parent: the search's files (search/) and the best trial's tags."""
    with tempfile.TemporaryDirectory() as tmp:
        _write_trials(cfg, record, maximize, Path(tmp))
        mlflow.log_artifacts(tmp, artifact_path="search")
    label = f"trial {record.best_trial.trial_id}: {run_name(record.best_cfg)}"
    mlflow.set_tags(studies.best_labels(str(record.table.iloc[0].run_id), label))


def _write_trials(cfg: DictConfig, record: SearchRecord, maximize: bool, folder: Path) -> None:
    """The search's files: trials.csv, trials.md, trials.png, best_hyperparameters.json, tuner.yaml."""
    table = record.table
    table.to_csv(folder / "trials.csv", index=False)
    (folder / "trials.md").write_text(markdown(table))
    in_order = table.rename(columns={"score": cfg.tuner.objective})
    in_order["trial"] = pd.to_numeric(in_order["trial_id"], errors="coerce") + 1
    title = f"{cfg.tuner.kind} search: {cfg.tuner.objective} of each trial"
    plot_search(in_order, cfg.tuner.objective, folder / "trials.png", title, maximize=maximize)
    best_values = dict(record.best_trial.hyperparameters.values)
    if is_mlp(record.best_cfg):
        best_values["hidden_units"] = hidden_units(record.best_cfg)
    (folder / "best_hyperparameters.json").write_text(json.dumps(best_values, indent=2, default=str))
    (folder / "tuner.yaml").write_text(OmegaConf.to_yaml(cfg.tuner, resolve=True))


def retrain_best(cfg: DictConfig, data: Dataset) -> tuple[Any, Fitted]:
    """Train the best trial's config from scratch, keeping the weights of its best epoch."""
    fresh_start(cfg.seed)
    model = compile_model(cfg, data)
    # On its own, not in the search's study: the best config is not pruned against its own trials.
    return model, fit(cfg, model, data, NO_STUDY, extra_callbacks=early_stopping(cfg, restore=True))


def retrain_and_register_best(
    cfg: DictConfig, record: SearchRecord, data: Dataset, parent_run_id: str
) -> tuple[dict[str, float], str]:
    """On the active parent: the best trial's config trained again, its metrics, outputs and model, the model
    registered when tuner.registered_model names it, and the search's note. Returns the metrics and the note."""
    best_cfg, best, base = record.best_cfg, record.best, record.baseline
    print(f"sweeplab: the best trial's config trains again, from scratch: {run_name(best_cfg)}", flush=True)
    model, fitted = retrain_best(best_cfg, data)
    test = test_metrics(model, data)  # test_loss and the task's: test_accuracy, or test_mae and test_rmse
    metrics = {"best_score": best, "baseline_score": base, "gain_over_baseline": best - base, **record.counts}
    metrics.update({**test, "param_count": float(model.count_params())})
    mlflow.log_metrics(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        log_outputs(best_cfg, model, data, fitted.history, Path(tmp), EVAL_BATCH_SIZE)
    if cfg.tracking.log_model:
        log_model(model, data.x_test[: max(1, cfg.training.predict_samples)], data)
        name = models.registered_name(cfg)
        if name:
            register_best(name, parent_run_id, metrics, objective_of(cfg))
    tested = " ".join(f"{k}={v:.4f}" for k, v in test.items())
    note = (
        f"{cfg.tuner.kind} search: best {cfg.tuner.objective}={best:.4f} (trial {record.best_trial.trial_id}, "
        f"{run_name(best_cfg)}) vs baseline {base:.4f}: gain {best - base:+.4f}; {tested}"
    )
    mlflow.set_tag(tags.NOTE, note)
    return metrics, note


def register_best(name: str, run_id: str, metrics: dict[str, float], objective: Objective) -> None:
    """The model just logged on the parent, as a new version of `name` in the Model Registry; it becomes the
    champion (alias) when its test score (the objective's test metric: test_accuracy for val_accuracy) beats the
    champion's. The parent records how they compared."""
    logged = mlflow.last_logged_model()
    source = f"models:/{logged.model_id}" if logged is not None else f"runs:/{run_id}/model"
    model_id = logged.model_id if logged is not None else None
    score = metrics.get(objective.test_metric, math.nan)
    client = mlflow.MlflowClient()
    champion = models.register(client, name, source, run_id, score, model_id, objective=objective)
    mlflow.set_tags({tags.REGISTERED_MODEL: f"{name}/{champion.version}", tags.CHAMPION: champion.sentence()})
    if not math.isnan(champion.previous_score):
        mlflow.log_metric(f"previous_champion_{objective.test_metric}", champion.previous_score)
    print(
        f"sweeplab: registered the best model as '{name}' version {champion.version}; {champion.sentence()} "
        f"(predict.py --model {champion.uri})",
        flush=True,
    )
