"""A Keras Tuner search around the baseline as a study: every trial a child run of one MLflow parent run.

`search(cfg)` builds the tuner from `cfg.tuner` (random, hyperband or bayesian), runs the baseline as
trial 0, logs each trial where it runs (also on distributed workers), then records the search on the
parent (tuning.summary). Keras Tuner keeps its state in `<tuner.directory>/<kind>-<hash of the search
config>`: the same config resumes there, any change of the search starts a new project.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from sweeplab.backend import configure_threads, fresh_start
from sweeplab.config import config_hash
from sweeplab.data import load_dataset
from sweeplab.perf.fused_steps import fit_batch_size
from sweeplab.signals import handle_signals
from sweeplab.tracking import store, studies, tags
from sweeplab.tracking.context import NO_STUDY, StudyContext
from sweeplab.tracking.runs import flat_params, run_name, run_tags
from sweeplab.tracking.studies import Study
from sweeplab.tracking.ui import run_link
from sweeplab.train import EVAL_BATCH_SIZE
from sweeplab.tuning.hypermodel import ConfiguredHyperModel
from sweeplab.tuning.space import SearchSpace, search_space
from sweeplab.tuning.summary import SearchResult, early_stopping, finish_search, trials_table
from sweeplab.tuning.trials import TrackedTrials, build_tuner, role, search_errors

PARENT_WAIT_S = 300  # how long a distributed worker waits for the chief's parent run


def project_name(cfg: DictConfig) -> str:
    """`<kind>-<hash>` of what decides the search's trials: the baseline's config_hash and the tuner
    config, less what only says how far to go (max_trials: raising it continues a search) or where."""
    tuner = OmegaConf.to_container(cfg.tuner, resolve=True)
    assert isinstance(tuner, dict)
    for key in ("max_trials", "registered_model", "directory"):
        tuner.pop(key, None)
    text = json.dumps({"baseline": config_hash(cfg), "tuner": tuner}, sort_keys=True, default=str)
    return f"{cfg.tuner.kind}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def open_search(
    cfg: DictConfig, project: str, space: SearchSpace, resuming: bool, who: str, within: StudyContext
) -> Study:
    """The search's study: the chief's (or a single process's) parent, created or reopened; a worker waits for it.
    `within`: the study this search runs in as a job, if any."""
    client = MlflowClient()
    if who == "worker":
        exp_id = store.experiment_id(client, cfg.tracking.experiment)
        hint = "start the chief (KERASTUNER_TUNER_ID=chief) with the same config"
        return studies.wait_for_study(client, exp_id, project, PARENT_WAIT_S, hint)
    params = flat_params(cfg)
    params.pop("tuner.max_trials", None)  # may grow when a search is continued; a tag holds it
    labels = {**run_tags(cfg), tags.RUN_NAME: f"search {cfg.tuner.kind}: around {run_name(cfg)}"}
    spec = studies.StudySpec(cfg.tracking.experiment, project, "tuner", f"{cfg.tuner.kind} search", params, labels)
    study = studies.open_study(client, spec, within=within, resume=resuming)
    if not study.resumed:
        client.log_text(study.run_id, json.dumps(space.describe(), indent=2), "search_space.json")
    client.set_tag(study.run_id, tags.MAX_TRIALS, str(cfg.tuner.max_trials))
    return study


def _verbose(cfg: DictConfig) -> str | int:
    return "auto" if str(cfg.training.verbose) == "auto" else int(cfg.training.verbose)


def search(cfg: DictConfig, within: StudyContext = NO_STUDY) -> SearchResult | None:
    """Search and summarise (`cfg` is validated) inside the study `within`, if any (a search as a sweep's job).
    Returns None on a distributed worker (the chief summarises)."""
    handle_signals()
    space = search_space(cfg)
    experiment_id = store.configure(cfg.tracking)
    data = load_dataset(cfg.data)
    configure_threads(cfg.training.threads)
    fresh_start(cfg.seed)
    project = project_name(cfg)
    who = role()
    resuming = (Path(cfg.tuner.directory) / project / "oracle.json").exists() and not cfg.force

    tuner = build_tuner(cfg, ConfiguredHyperModel(cfg, space, data), project, experiment_id)
    study = open_search(cfg, project, space, resuming, who, within)
    tuner.study = study.context  # every trial's run (and its executions') a child of the search's parent
    print(
        f"sweeplab: {'resuming' if resuming else 'starting'} {cfg.tuner.kind} search {project} ({who}), "
        f"parent run {study.run_id}",  # its link comes with its result
        flush=True,
    )
    # The chief or single process owns the parent: it ends FINISHED, FAILED or KILLED with the search.
    with study.owned() if who != "worker" else contextlib.nullcontext(), search_errors():
        tuner.search(
            data.x_train,
            data.y_train,
            validation_data=(data.x_valid, data.y_valid),
            validation_batch_size=EVAL_BATCH_SIZE,  # as train.fit: one compiled test step for validation and test
            epochs=cfg.tuner.max_epochs,
            batch_size=fit_batch_size(cfg.batch_size, cfg.training.fused_steps),
            callbacks=early_stopping(cfg),
            verbose=1 if who == "chief" else _verbose(cfg),  # the chief only shows the trials
        )
        if who == "worker":
            return None
        if study.previous_status == studies.FINISHED and tuner.trials_run == 0 and who == "single":
            return already_finished(study, project, tuner)  # keeps its summary and registered version
        return finish_search(cfg, tuner, data, study)


def already_finished(study: Study, project: str, tuner: TrackedTrials) -> SearchResult:
    """A finished search that had no trial left to run: what its parent already records, and a line saying so."""
    metrics = study.client.get_run(study.run_id).data.metrics
    print(
        f"sweeplab: search {project} already finished, no trial left to run "
        "(raise tuner.max_trials to continue it, or force=true to start again) -> "
        f"{run_link(study.experiment_id, study.run_id, study.client.tracking_uri)}",
        flush=True,
    )
    nan = float("nan")
    best, base = metrics.get("best_score", nan), metrics.get("baseline_score", nan)
    return SearchResult(study.run_id, study.experiment_id, best, base, trials_table(tuner), metrics)
