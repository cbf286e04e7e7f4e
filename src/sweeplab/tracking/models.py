"""Models by name: the run behind any model URI, a new registry version, and the `champion` alias.

Every resolution goes through MLflow's own functions (mlflow.models.get_model_info reads any model URI:
runs:/, models:/<model id>, models:/NAME/VERSION, models:/NAME/latest, models:/NAME@ALIAS), so a URI that
MLflow serves is one that predict.py reads. The champion is the version with the best value so far of the
study objective's test metric (test_accuracy by default, test_loss for `objective.metric=val_loss`, in the
objective's direction): `models:/NAME@champion` is the stable name of the best model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweeplab.config import model_name
from sweeplab.objective import Objective
from sweeplab.tracking import tags

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

CHAMPION = "champion"  # the alias of the best version of a registered model
SCORE = Objective().test_metric  # what makes a version the champion unless the study says otherwise
AUTO = "auto"  # tuner.registered_model: named after the data and the model


def registered_name(cfg: Any) -> str | None:
    """The registered model's name from `tuner.registered_model`: auto (the default) is `<data>-<model>` with
    hyphens for underscores (fashion_mnist and the MLP: 'fashion-mnist-mlp'), null registers nothing (the model
    is only logged), any other name is used as it is."""
    tuner = cfg.get("tuner")
    name = tuner.get("registered_model", AUTO) if tuner is not None else AUTO
    if name is None:
        return None
    if str(name) == AUTO:
        return f"{cfg.data.name}-{model_name(cfg)}".replace("_", "-")
    return str(name)


def source_run_id(model_uri: str) -> str | None:
    """The run that logged the model behind `model_uri` (None for a model logged outside a run)."""
    import mlflow

    return mlflow.models.get_model_info(model_uri).run_id


@dataclass
class Champion:
    """The outcome of comparing a new version with the registered model's champion."""

    name: str
    version: str
    score: float
    promoted: bool
    previous_version: str | None = None
    previous_score: float = math.nan
    metric: str = SCORE  # the objective's test metric, which both scores are values of

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{CHAMPION}"

    def sentence(self) -> str:
        """What happened, e.g. 'version 3 is the champion: test_accuracy 0.8712 beats 0.8650 of version 2' or
        'version 3 is the champion: test_loss 2900.1 beats 3100.2 of version 2'."""
        mine = f"{self.metric} {_number(self.score)}"
        if self.previous_version is None:
            return f"version {self.version} is the champion: the first with {mine}"
        theirs = f"{_number(self.previous_score)} of version {self.previous_version}"
        if self.promoted:
            return f"version {self.version} is the champion: {mine} beats {theirs}"
        stays = f"version {self.previous_version} stays the champion"
        return f"{stays}: {mine} of version {self.version} does not beat {theirs}"


def _number(value: float) -> str:
    """4 decimals for scores like accuracies and small losses, 1 for large ones (a regression's squared error)."""
    return f"{value:.4f}" if abs(value) < 100 or not math.isfinite(value) else f"{value:.1f}"


def version_score(client: MlflowClient, version: Any, objective: Objective) -> float:
    """A registered version's value of the objective's test metric: its tags if it was ranked by that metric
    (registries written before the objective existed have `sweeplab.test_accuracy`), else its run's metric."""
    metric = objective.test_metric
    score = version.tags.get(tags.MODEL_VALUE) if version.tags.get(tags.MODEL_METRIC) == metric else None
    if score is None and metric == SCORE:
        score = version.tags.get(tags.MODEL_SCORE)
    if score is None and version.run_id:  # ranked by another metric, or registered without tags: its run's
        score = client.get_run(version.run_id).data.metrics.get(metric)
    return float(score) if score is not None else math.nan


def current_champion(client: MlflowClient, name: str, objective: Objective | None = None) -> tuple[str, float] | None:
    """(version, value of the objective's test metric) of the version holding the champion alias, or None
    when no version does."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    return str(version.version), version_score(client, version, objective or Objective())


def register(
    client: MlflowClient,
    name: str,
    source: str,
    run_id: str,
    score: float,
    model_id: str | None = None,
    objective: Objective | None = None,
) -> Champion:
    """Register `source` (a logged model `model_id`'s URI, or any model URI) as a new version of `name`, and
    make it the champion when its score, the value of the objective's test metric (default test_accuracy,
    higher is better), beats the current champion's in the objective's direction (or there is none)."""
    from mlflow.exceptions import MlflowException

    objective = objective or Objective()
    metric = objective.test_metric
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    version_tags = {
        tags.MODEL_SOURCE_RUN: run_id,
        tags.MODEL_METRIC: metric,
        tags.MODEL_DIRECTION: objective.direction,
        tags.MODEL_VALUE: repr(float(score)),  # exact: equal does not beat
    }
    if metric == SCORE:
        version_tags[tags.MODEL_SCORE] = repr(float(score))  # as registries before the objective have it
    version = client.create_model_version(name, source, run_id, tags=version_tags, model_id=model_id).version
    before = current_champion(client, name, objective)
    # A champion without a score (NaN) loses to any version.
    promoted = before is None or math.isnan(before[1]) or objective.better(score, before[1])
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    if before is None:
        return Champion(name, str(version), score, promoted, metric=metric)
    return Champion(name, str(version), score, promoted, before[0], before[1], metric=metric)
