"""Keras Tuner's tuners with every trial an MLflow child run of the search's parent, logged where it trains."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import keras_tuner
import mlflow
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from sweeplab import compat, console
from sweeplab.backend import fresh_start
from sweeplab.callbacks import MlflowEpochLogger, StopOnDivergence, StopOnSignal, epoch_progress
from sweeplab.errors import DivergedError, SweeplabError, TrackingLost
from sweeplab.pruning.callback import pruning_callbacks
from sweeplab.seeds.aggregate import aggregate_metrics
from sweeplab.signals import interrupted, raise_if_interrupted
from sweeplab.tracking import store, tags
from sweeplab.tracking.context import NO_STUDY
from sweeplab.tracking.runs import flat_params, run_name, run_tags, tracked_run
from sweeplab.tuning.hypermodel import ConfiguredHyperModel
from sweeplab.tuning.oracles import BayesianOptimizationOracle, HyperbandOracle, RandomSearchOracle
from sweeplab.tuning.space import tuner_objective


def trial_runs(experiment_id: str, project: str, trial_id: str | None = None) -> list:
    """Trial runs of a search (newest first), optionally of one trial id; also those of earlier versions."""
    found: dict[str, Any] = {}
    for key in (tags.STUDY, "sweeplab.tuner_project"):
        query = f"tags.`{key}` = '{project}' and tags.`{tags.ROLE}` = '{tags.ROLE_TRIAL}'"
        if trial_id is not None:
            query += f" and tags.`{tags.TRIAL}` = '{trial_id}'"
        for run in MlflowClient().search_runs([experiment_id], query, order_by=["attributes.start_time DESC"]):
            found.setdefault(run.info.run_id, run)
    return sorted(found.values(), key=lambda r: r.info.start_time, reverse=True)


class TrackedTrials:
    """Tuner mixin: each trial runs inside an MLflow child run of the search's parent.

    The child run is opened by the process that trains the trial (a distributed worker too), so each
    trial is logged once, where it ran. The parent is `study`, set by search once the parent run is open.
    """

    hypermodel: ConfiguredHyperModel
    oracle: Any
    tuner_id: str

    def _setup_tracking(self, project: str, experiment_id: str) -> None:
        self.project = project
        self.experiment_id = experiment_id
        self._trial_runs: dict[str, str] = {}
        self.trials_run = 0  # in this process: 0 when a resumed search had nothing left to do
        self._clock = console.Clock()  # this process's part of the search, for the time left
        self.study = NO_STUDY  # the search's study: its trials' parent (set once the parent run is open)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        """The trial, tracked; a lost tracking server stops the search (Keras Tuner would fail the trial and go
        on), leaving the trial ongoing in the oracle's state so that the same command reruns it."""
        try:
            return self._tracked_trial(trial, *args, **kwargs)
        except keras_tuner.errors.FailedTrialError:
            raise
        except Exception:
            run_id = self._trial_runs.get(trial.trial_id)
            where = f"trial {trial.trial_id}" + (f" (its run {run_id} stays RUNNING there)" if run_id else "")
            lost = lost_server(f"during {where}", "finished trials are kept and this one runs again")
            if lost is None:
                raise
            raise keras_tuner.errors.FatalError(str(lost)) from lost

    def _tracked_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        raise_if_interrupted()  # one that Python swallowed (it lands in a GC callback at times)
        hp = trial.hyperparameters
        cfg = self.hypermodel.config_of(hp)
        fresh_start(cfg.seed)  # each trial starts from the same seed, whatever ran before it
        earlier = trial_runs(self.experiment_id, self.project, trial_id=trial.trial_id)
        with tracked_run(
            f"trial {trial.trial_id}: {run_name(cfg)}", self._trial_tags(trial, cfg, earlier), self.study
        ) as run:
            self._trial_runs[trial.trial_id] = run.info.run_id
            self.trials_run += 1
            self.hypermodel.start_trial(cfg, self.executions_per_trial, self.study)
            mlflow.log_params(flat_params(cfg))
            mlflow.log_params({f"hp.{k}": v for k, v in hp.values.items()})
            what, left = self._position(trial)
            print(console.started_line(what, run_name(cfg), self._clock.elapsed(), console.SEARCH), flush=True)
            started = time.perf_counter()
            results = self._train(trial, cfg, what, *args, **kwargs)
            score = compat.trial_objective(results, self.oracle.objective)
            seconds = time.perf_counter() - started
            mlflow.log_metrics({"score": score, "trial_time": seconds})
            if self.hypermodel.executed:
                mlflow.log_metrics(aggregate_metrics(self.hypermodel.executed))
            elapsed = self._clock.elapsed()
            result = f"{self.oracle.objective.name}={score:.4f}"
            ahead = console.time_left(elapsed, self.trials_run, left)
            print(console.ended_line(what, "COMPLETED", seconds, result, elapsed, ahead, console.SEARCH), flush=True)
            for earlier_run in earlier:
                MlflowClient().set_tag(earlier_run.info.run_id, tags.SUPERSEDED_BY, run.info.run_id)
        return results

    def _trial_tags(self, trial: Any, cfg: DictConfig, earlier: list) -> dict[str, str]:
        """The trial run's tags: the config's, the search's, its attempt and the trial it continues (Hyperband)."""
        hp_values = trial.hyperparameters.values
        trial_tags = {
            **run_tags(cfg),
            tags.STUDY: self.project,
            tags.ROLE: tags.ROLE_TRIAL,
            tags.TRIAL: trial.trial_id,
            tags.TUNER_ID: self.tuner_id,
        }
        if self.executions_per_trial > 1:  # each execution a nested run; this one holds their aggregate
            trial_tags[tags.SEEDS] = str(self.executions_per_trial)
        trial_tags[tags.ATTEMPT] = str(len(earlier) + 1)
        if "tuner/trial_id" in hp_values:
            past = str(hp_values["tuner/trial_id"])
            trial_tags[tags.CONTINUES_TRIAL] = past
            past_runs = trial_runs(self.experiment_id, self.project, trial_id=past)
            if past_runs:
                trial_tags[tags.CONTINUES_RUN] = past_runs[0].info.run_id
        return trial_tags

    def _train(self, trial: Any, cfg: DictConfig, what: str, *args: Any, **kwargs: Any) -> Any:
        """Keras Tuner's run_trial with our callbacks, epochs headed by `what`; a diverged trial fails (no retry)."""
        # Hyperband keeps its own pruning (its brackets); random and Bayesian searches take the study's.
        pruner = [] if isinstance(self, keras_tuner.Hyperband) else pruning_callbacks(cfg, self.study)
        data = self.hypermodel.data
        with console.labelled(what):
            shown = epoch_progress(cfg.training.verbose, len(data.x_train), cfg.batch_size, cfg.training.fused_steps)
            callbacks = [
                *kwargs.get("callbacks", []),
                StopOnSignal(),
                StopOnDivergence(),
                MlflowEpochLogger(),
                *pruner,
                *shown,
            ]
            kwargs.update(callbacks=callbacks, verbose=0)  # Keras Tuner's display stays
            try:
                return super().run_trial(trial, *args, **kwargs)  # type: ignore[misc]
            except DivergedError as err:
                # A diverged trial is a result of its values, not a crash: fail it without a retry.
                raise keras_tuner.errors.FailedTrialError(str(err)) from err
            except Exception:
                if interrupted():  # Ctrl-C or SIGTERM, disguised by TensorFlow: stop, do not fail
                    raise_if_interrupted()
                raise

    def _position(self, trial: Any) -> tuple[str, int | None]:
        """`trial 2 [3/10]` (Keras Tuner's ids count from 0) and how many trials come after it, when known."""
        total = self.hypermodel.cfg.tuner.max_trials
        if not str(trial.trial_id).isdigit() or not total:
            return f"trial {trial.trial_id}", None
        number = int(trial.trial_id) + 1
        return f"trial {trial.trial_id} [{number}/{total}]", int(total) - number

    def on_search_begin(self) -> None:
        super().on_search_begin()  # type: ignore[misc]
        if role() != "worker":
            # Keras Tuner's trial summaries stay visible even when training.verbose=0 hides Keras's bars.
            self.oracle.verbose = 1

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)  # type: ignore[misc]
        run_id = self._trial_runs.pop(trial.trial_id, None)
        if run_id is None:
            return
        try:
            MlflowClient().set_tag(run_id, tags.TRIAL_STATUS, str(trial.status))
        except Exception:
            lost = lost_server(f"as trial {trial.trial_id} ended (its run {run_id} is kept)", "the search resumes")
            if lost is None:
                raise
            raise lost from None


def lost_server(when: str, then: str) -> TrackingLost | None:
    """The search's lost-server error, naming the server, when it no longer answers (else None: the error at
    hand is another); the search stops on it rather than failing trial after trial."""
    uri = mlflow.get_tracking_uri()
    if store.unreachable(uri) is None:
        return None
    return TrackingLost(
        f"the MLflow tracking server at {store.shown(uri)} stopped answering {when}; rerun the same command once it "
        f"is back: {then}"
    )


class TrackedTuner(TrackedTrials, keras_tuner.Tuner):
    """Random search and Bayesian optimisation: Keras Tuner's Tuner with its oracle."""


class TrackedHyperband(TrackedTrials, keras_tuner.Hyperband):
    """Hyperband's run_trial (epochs from the bracket, weights of the trial it continues), our oracle."""

    def __init__(self, oracle: Any, hypermodel: Any, **kwargs: Any) -> None:
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


@contextlib.contextmanager
def search_errors() -> Iterator[None]:
    """Around Tuner.search: our error that stopped a trial (a lost server) comes out as itself, not as the
    FatalError that carried it through Keras Tuner."""
    try:
        yield
    except keras_tuner.errors.FatalError as err:
        if isinstance(err.__cause__, SweeplabError):
            raise err.__cause__ from None
        raise


def role() -> str:
    """This process in Keras Tuner's distributed mode (its documented KERASTUNER_* variables): single, chief, worker."""
    import os

    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    return "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"


def build_tuner(cfg: DictConfig, hypermodel: ConfiguredHyperModel, project: str, experiment_id: str) -> TrackedTrials:
    t = cfg.tuner
    objective = tuner_objective(cfg)  # in the study's direction, not the one Keras Tuner reads from the name
    common = {
        "objective": keras_tuner.Objective(objective.metric, objective.direction),
        "seed": cfg.seed,
        "max_consecutive_failed_trials": t.max_consecutive_failed_trials,
    }
    tuner_cls: type = TrackedTuner
    if t.kind == "random":
        oracle = RandomSearchOracle(max_trials=t.max_trials, **common)
    elif t.kind == "bayesian":
        oracle = BayesianOptimizationOracle(max_trials=t.max_trials, num_initial_points=t.num_initial_points, **common)
    else:
        oracle = HyperbandOracle(
            max_epochs=t.max_epochs, factor=t.factor, hyperband_iterations=t.hyperband_iterations, **common
        )
        oracle.max_trials = t.max_trials  # the base Oracle stops creating trials there (None: no cap)
        tuner_cls = TrackedHyperband
    tuner = tuner_cls(
        oracle=oracle,
        hypermodel=hypermodel,
        directory=t.directory,
        project_name=project,
        overwrite=bool(cfg.force),
        executions_per_trial=max(int(t.executions_per_trial), int(cfg.seeds)),  # seeds=N: N executions
    )
    tuner._setup_tracking(project, experiment_id)
    return tuner
