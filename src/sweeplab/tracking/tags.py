"""The one vocabulary of tags sweeplab writes to and reads from MLflow.

Older stores used other names for some of them; `LEGACY_*` lists what is still read, so they resume and
compare as before.
"""

from __future__ import annotations

from enum import StrEnum

PARENT = "mlflow.parentRunId"  # MLflow's own: folds a child under its parent in the UI
RUN_NAME = "mlflow.runName"
NOTE = "mlflow.note.content"  # shown as the run's description in the MLflow UI
ERROR = "sweeplab.error"  # why a run or study ended FAILED or KILLED ("" once it no longer does)
CONFIG_HASH = "sweeplab.config_hash"  # the identity of a run's config (sweeplab.config.config_hash)
CONFIG_GROUP = "sweeplab.config_group"  # the identity without the seed: runs that differ only by their seed
STUDY_RUN = "sweeplab.study_run"  # on every run inside a study (jobs, trials, seeds): the study's parent run id
SEEDS = "sweeplab.seeds"  # on a run that aggregates its nested seed runs (seeds=N > 1): N
DATASET = "sweeplab.dataset"

ROLE = "sweeplab.role"  # "study" (a parent), "job" (a sweep's child), "trial" (a search's child), "seed"
STUDY = "sweeplab.study"  # a study's key: the same study command finds and resumes the same parent
STUDY_KIND = "sweeplab.study_kind"  # "grid" (Hydra's basic sweeper), "sweeper" (any other), "tuner"
STUDY_NAME = "sweeplab.study_name"  # e.g. "sweep lr", "optuna lr optimizer", "random search"
BEST_RUN = "sweeplab.best_run_id"  # the best child's run id
BEST = "sweeplab.best_job"  # what the best child is: its swept values, or its trial id and config
MAX_TRIALS = "sweeplab.max_trials"
CHAMPION = "sweeplab.champion"  # on a search's parent: how its registered model compared with the champion

MODEL_SOURCE_RUN = "sweeplab.search_run"  # on a registered model version: the run that logged it
MODEL_SCORE = "sweeplab.test_accuracy"  # on a registered model version ranked by test_accuracy: its value
MODEL_METRIC = "sweeplab.score_metric"  # on a registered model version: the metric that ranks it (test_loss, ...)
MODEL_DIRECTION = "sweeplab.score_direction"  # ... and its direction: max or min
MODEL_VALUE = "sweeplab.score"  # ... and its value, which the champion alias goes by

TRIAL = "sweeplab.trial_id"
TRIAL_STATUS = "sweeplab.trial_status"
STUDY_PARAMS = "sweeplab.study_params"  # hydra/sweeper=sweeplab: a job's sampled values (JSON), given back on resume
TUNER_ID = "sweeplab.tuner_id"
ATTEMPT = "sweeplab.attempt"  # >1 when a trial was started again (interrupted search, retry)
SUPERSEDED_BY = "sweeplab.superseded_by"
CONTINUES_TRIAL = "sweeplab.continues_trial"  # Hyperband: the trial whose weights this trial trains on
CONTINUES_RUN = "sweeplab.continues_run"
REGISTERED_MODEL = "sweeplab.registered_model"
PRUNED = "sweeplab.pruned"  # the last epoch a pruned run trained (it stopped early, and ended FINISHED)
PRUNED_REASON = "sweeplab.pruned_reason"  # the decision: its value against the siblings' line


class Role(StrEnum):
    """The value of ROLE: what a run is in a study."""

    STUDY = "study"  # a study's parent run
    JOB = "job"  # a sweep's child
    TRIAL = "trial"  # a search's child
    SEED = "seed"  # one seed's run (or one Keras Tuner execution), nested under its config's aggregate run


class StudyKind(StrEnum):
    """The value of STUDY_KIND: what runs the study."""

    GRID = "grid"  # Hydra's basic sweeper
    SWEEPER = "sweeper"  # any other sweeper (Optuna, ...)
    TUNER = "tuner"  # a Keras Tuner search


class Status(StrEnum):
    """MLflow's run statuses as sweeplab writes, searches and reports them (a job's outcome, a run's end)."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


ROLE_STUDY, ROLE_JOB, ROLE_TRIAL, ROLE_SEED = Role.STUDY, Role.JOB, Role.TRIAL, Role.SEED  # the names code uses

# Written by earlier versions, still read: a grid sweep's key, a search's key and its parent's role.
LEGACY_STUDY_KEYS = ("sweeplab.sweep_hash", "sweeplab.tuner_project")
LEGACY_ROLE_STUDY = "search"
