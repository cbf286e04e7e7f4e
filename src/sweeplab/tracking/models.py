"""Models by name: the run behind any model URI, a new registry version, and the `champion` alias.

Every resolution goes through MLflow's own functions (mlflow.models.get_model_info reads any model URI:
runs:/, models:/<model id>, models:/NAME/VERSION, models:/NAME/latest, models:/NAME@ALIAS), so a URI that
MLflow serves is one that predict.py reads. The champion is the version with the best test accuracy so far:
`models:/NAME@champion` is the stable name of the best model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sweeplab.tracking import tags

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from omegaconf import DictConfig

    from sweeplab.objective import Objective

CHAMPION = "champion"  # the alias of the best version of a registered model
SCORE = "test_accuracy"  # what makes a version the champion (higher is better)


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

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{CHAMPION}"

    def sentence(self) -> str:
        """What happened, e.g. 'version 3 is the champion: test_accuracy 0.8712 beats 0.8650 of version 2'."""
        mine = f"{SCORE} {self.score:.4f}"
        if self.previous_version is None:
            return f"version {self.version} is the champion: the first with {mine}"
        theirs = f"{self.previous_score:.4f} of version {self.previous_version}"
        if self.promoted:
            return f"version {self.version} is the champion: {mine} beats {theirs}"
        stays = f"version {self.previous_version} stays the champion"
        return f"{stays}: {mine} of version {self.version} does not beat {theirs}"


def current_champion(client: MlflowClient, name: str) -> tuple[str, float] | None:
    """(version, test accuracy) of the version holding the champion alias, or None when no version does."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    score = version.tags.get(tags.MODEL_SCORE)
    if score is None and version.run_id:  # registered without the tag: its run's metric
        score = client.get_run(version.run_id).data.metrics.get(SCORE)
    return str(version.version), float(score) if score is not None else math.nan


def registered_name(cfg: DictConfig) -> str | None:
    """The Model Registry name of tuner.registered_model: None, `auto` (data-model: fashion-mnist-cnn) or a name."""
    from sweeplab.config import model_name

    name = cfg.tuner.get("registered_model")
    if name is None:
        return None
    if name == "auto":
        return f"{cfg.data.name}-{model_name(cfg)}".replace("_", "-")
    return str(name)


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
    make it the champion when its score beats the current champion's (or there is none); `objective` says
    which way is better (default: higher)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    labels = {tags.MODEL_SOURCE_RUN: run_id, tags.MODEL_SCORE: repr(float(score))}  # exact: equal does not beat
    version = client.create_model_version(name, source, run_id, tags=labels, model_id=model_id).version
    before = current_champion(client, name)
    maximize = objective is None or objective.maximize
    beats = before is not None and (score > before[1] if maximize else score < before[1])
    promoted = before is None or math.isnan(before[1]) or beats  # a champion without a score loses
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    if before is None:
        return Champion(name, str(version), score, promoted)
    return Champion(name, str(version), score, promoted, before[0], before[1])
