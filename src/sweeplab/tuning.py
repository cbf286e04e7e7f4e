"""A Keras Tuner search around the baseline, every trial a child run of one MLflow parent run.

`search(cfg)` builds the tuner from `cfg.tuner` (random, hyperband or bayesian), runs the baseline as
trial 0, logs each trial where it runs (also on distributed workers), then on the parent: the space, the
trials table, the best hyperparameters, the best model retrained, evaluated, logged and registered, and
the gain over the baseline.

Keras Tuner keeps its state in `<tuner.directory>/<kind>-<hash of the search config>`: the same config
resumes there, any change of the search starts a new project.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import mlflow
import numpy as np
import pandas as pd
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import tuner_utils
from mlflow.entities import Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from omegaconf import DictConfig, OmegaConf, open_dict

from sweeplab import tracking
from sweeplab.callbacks import DivergedError, MlflowEpochLogger, StopOnDivergence
from sweeplab.config import config_hash, hidden_units, validate
from sweeplab.data import Dataset, load_dataset
from sweeplab.hypermodel import MlpHyperModel
from sweeplab.runtime import Terminated, configure_threads, fresh_start
from sweeplab.search_space import SearchSpace, search_space
from sweeplab.steps import fit_batch_size
from sweeplab.train import EVAL_BATCH_SIZE

TAG_PROJECT = "sweeplab.tuner_project"  # Keras Tuner project of a search: its parent and its trials
TAG_ROLE = "sweeplab.role"  # "search" (parent) or "trial" (child)
TAG_TRIAL = "sweeplab.trial_id"
TAG_TRIAL_STATUS = "sweeplab.trial_status"
TAG_ATTEMPT = "sweeplab.attempt"  # >1 when a trial was started again (interrupted search, retry)
TAG_CONTINUES = "sweeplab.continues_trial"  # Hyperband: the trial whose weights this trial trains on
TAG_CONTINUES_RUN = "sweeplab.continues_run"
PARENT_WAIT_S = 300  # how long a distributed worker waits for the chief's parent run


@dataclass
class SearchResult:
    parent_run_id: str
    experiment_id: str
    best_score: float
    baseline_score: float
    trials: pd.DataFrame = field(repr=False)
    metrics: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- oracles: the baseline is trial 0


class BaselineFirst:
    """Oracle mixin: the first values drawn are every hyperparameter's default, i.e. the baseline.

    All three oracles draw their first trials through `_random_values` (Hyperband for each bracket's
    first round, Bayesian for its initial points), so this one override covers them all.
    """

    def _random_values(self) -> dict[str, Any] | None:
        if self._tried_so_far:  # type: ignore[attr-defined]
            return super()._random_values()  # type: ignore[misc]
        values = keras_tuner.HyperParameters()
        for hp in self.hyperparameters.space:  # type: ignore[attr-defined]
            values.merge([hp])
            if values.is_active(hp):
                values.values[hp.name] = hp.default
        return values.values


class RandomSearchOracle(BaselineFirst, keras_tuner.oracles.RandomSearchOracle):
    pass


class HyperbandOracle(BaselineFirst, keras_tuner.oracles.HyperbandOracle):
    pass


class BayesianOptimizationOracle(BaselineFirst, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


# ---------------------------------------------------------------- tuners: each trial an MLflow run

_signals_received: list[int] = []


def note_interrupts() -> None:
    """Remember SIGINT and SIGTERM before their handlers raise.

    Raised while TensorFlow runs Python code, the exception can come out as another one (a TypeError
    from a tensor conversion), which Keras Tuner would record as a failed trial and go on searching.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if not callable(previous) or getattr(previous, "sweeplab_noted", False):
            continue

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            _signals_received.append(signum)
            previous(signum, frame)

        handler.sweeplab_noted = True  # type: ignore[attr-defined]
        with contextlib.suppress(ValueError):  # only the main thread can install handlers
            signal.signal(sig, handler)


class TrackedTrials:
    """Tuner mixin: each trial runs inside an MLflow child run of the search's parent.

    The child run is opened by the process that trains the trial (a distributed worker too), so each
    trial is logged once, where it ran. The parent comes through SWEEPLAB_PARENT_RUN_ID, as for Hydra
    sweeps.
    """

    hypermodel: MlpHyperModel
    oracle: Any
    tuner_id: str

    def _setup_tracking(self, project: str) -> None:
        self.project = project
        self._trial_runs: dict[str, str] = {}
        self.trials_run = 0  # in this process: 0 when a resumed search had nothing left to do

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        if _signals_received:  # one that Python swallowed (it lands in a GC callback at times)
            raise Terminated(f"received signal {signal.Signals(_signals_received[-1]).name}")
        hp = trial.hyperparameters
        cfg = self.hypermodel.config_of(hp)
        fresh_start(cfg.seed)  # each trial starts from the same seed, whatever ran before it
        tags = {
            **tracking.run_tags(cfg),
            TAG_PROJECT: self.project,
            TAG_ROLE: "trial",
            TAG_TRIAL: trial.trial_id,
            "sweeplab.tuner_id": self.tuner_id,
        }
        earlier = trial_runs(self.project, trial_id=trial.trial_id)
        tags[TAG_ATTEMPT] = str(len(earlier) + 1)
        if "tuner/trial_id" in hp.values:
            past = str(hp.values["tuner/trial_id"])
            tags[TAG_CONTINUES] = past
            past_runs = trial_runs(self.project, trial_id=past)
            if past_runs:
                tags[TAG_CONTINUES_RUN] = past_runs[0].info.run_id
        name = f"trial {trial.trial_id}: {tracking.run_name(cfg)}"
        with tracking.tracked_run(name, tags) as run:
            self._trial_runs[trial.trial_id] = run.info.run_id
            self.trials_run += 1
            mlflow.log_params(tracking.flat_params(cfg))
            mlflow.log_params({f"hp.{k}": v for k, v in hp.values.items()})
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), StopOnDivergence(), MlflowEpochLogger()]
            started = time.perf_counter()
            try:
                results = super().run_trial(trial, *args, **kwargs)  # type: ignore[misc]
            except DivergedError as err:
                # A diverged trial is a result of its values, not a crash: fail it without a retry.
                raise keras_tuner.errors.FailedTrialError(str(err)) from err
            except Exception as err:
                if _signals_received:  # Ctrl-C or SIGTERM, disguised by TensorFlow: stop, do not fail
                    name = signal.Signals(_signals_received[-1]).name
                    raise Terminated(f"received signal {name}") from err
                raise
            objective = self.oracle.objective
            score = tuner_utils.convert_to_metrics_dict(results, objective)[objective.name]
            mlflow.log_metrics({"score": float(score), "trial_time": time.perf_counter() - started})
            for earlier_run in earlier:
                MlflowClient().set_tag(earlier_run.info.run_id, "sweeplab.superseded_by", run.info.run_id)
        return results

    def on_search_begin(self) -> None:
        super().on_search_begin()  # type: ignore[misc]
        if not self._is_worker():  # type: ignore[attr-defined]
            # Keras Tuner's trial summaries stay visible even when training.verbose=0 hides Keras's bars.
            self.oracle.verbose = 1

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)  # type: ignore[misc]
        run_id = self._trial_runs.pop(trial.trial_id, None)
        if run_id is not None:
            MlflowClient().set_tag(run_id, TAG_TRIAL_STATUS, str(trial.status))


class TrackedTuner(TrackedTrials, keras_tuner.Tuner):
    """Random search and Bayesian optimisation: Keras Tuner's Tuner with its oracle."""


class TrackedHyperband(TrackedTrials, keras_tuner.Hyperband):
    """Hyperband's run_trial (epochs from the bracket, weights of the trial it continues), our oracle."""

    def __init__(self, oracle: Any, hypermodel: Any, **kwargs: Any) -> None:
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


def build_tuner(cfg: DictConfig, hypermodel: MlpHyperModel, project: str) -> TrackedTrials:
    t = cfg.tuner
    common = {
        "objective": t.objective,
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
        executions_per_trial=t.executions_per_trial,
    )
    tuner._setup_tracking(project)
    return tuner


# ---------------------------------------------------------------- identity and the parent run


def project_name(cfg: DictConfig) -> str:
    """`<kind>-<hash>` of what decides the search's trials: the baseline's config_hash and the tuner
    config, less what only says how far to go (max_trials: raising it continues a search) or where."""
    tuner = OmegaConf.to_container(cfg.tuner, resolve=True)
    assert isinstance(tuner, dict)
    for key in ("max_trials", "registered_model", "directory"):
        tuner.pop(key, None)
    text = json.dumps({"baseline": config_hash(cfg), "tuner": tuner}, sort_keys=True, default=str)
    return f"{cfg.tuner.kind}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _experiment_id() -> str:
    return mlflow.tracking.fluent._get_experiment_id()


def trial_runs(project: str, trial_id: str | None = None) -> list:
    """Trial runs of a search (newest first), optionally of one trial id."""
    query = f"tags.`{TAG_PROJECT}` = '{project}' and tags.`{TAG_ROLE}` = 'trial'"
    if trial_id is not None:
        query += f" and tags.`{TAG_TRIAL}` = '{trial_id}'"
    return MlflowClient().search_runs([_experiment_id()], query, order_by=["attributes.start_time DESC"])


def find_parent(project: str, running_only: bool = False) -> str | None:
    query = f"tags.`{TAG_PROJECT}` = '{project}' and tags.`{TAG_ROLE}` = 'search'"
    if running_only:
        query += " and attributes.status = 'RUNNING'"
    runs = MlflowClient().search_runs([_experiment_id()], query, order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


def wait_for_parent(project: str, timeout_s: float = PARENT_WAIT_S) -> str:
    """A distributed worker's parent: the chief's running search run of the same project."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run_id = find_parent(project, running_only=True)
        if run_id:
            return run_id
        time.sleep(1)
    raise RuntimeError(
        f"no running search run for project {project} after {timeout_s:.0f} s: start the chief "
        "(KERASTUNER_TUNER_ID=chief) with the same config"
    )


def create_parent(cfg: DictConfig, project: str, space: SearchSpace) -> str:
    tags = {
        **tracking.run_tags(cfg),
        TAG_PROJECT: project,
        TAG_ROLE: "search",
        "mlflow.runName": f"search {cfg.tuner.kind}: around {tracking.run_name(cfg)}",
    }
    outer = tracking.parent_run_id()  # the search is itself a job of a Hydra sweep
    if outer:
        tags[MLFLOW_PARENT_RUN_ID] = outer
    client = MlflowClient()
    run = client.create_run(_experiment_id(), tags=tags)
    run_id = run.info.run_id
    params = tracking.flat_params(cfg)
    params.pop("tuner.max_trials", None)  # may grow when a search is continued; a tag holds it
    items = [Param(k, str(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):  # log_batch takes at most 100 params
        client.log_batch(run_id, params=items[start : start + 100])
    client.log_text(run_id, json.dumps(space.describe(), indent=2), "search_space.json")
    return run_id


@contextlib.contextmanager
def parent_context(run_id: str, owner: bool) -> Iterator[str]:
    """Hands the parent to trial runs through the environment; the owner (not a worker) ends it
    FINISHED, FAILED or KILLED with the reason, like tracking.tracked_run does for a run."""
    client = MlflowClient()
    previous = os.environ.get(tracking.PARENT_RUN_ENV)
    os.environ[tracking.PARENT_RUN_ENV] = run_id
    try:
        yield run_id
    except BaseException as exc:
        if owner:
            status = RunStatus.to_string(RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED)
            reason = tracking._reason(exc)
            with contextlib.suppress(Exception):
                client.set_tag(run_id, tracking.TAG_ERROR, reason[:5000])
                client.set_tag(run_id, tracking.TAG_NOTE, f"{status}: {reason}"[:5000])
            with contextlib.suppress(Exception):
                client.set_terminated(run_id, status)
        raise
    finally:
        if previous is None:
            os.environ.pop(tracking.PARENT_RUN_ENV, None)
        else:
            os.environ[tracking.PARENT_RUN_ENV] = previous
    if owner:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


# ---------------------------------------------------------------- the search


def _role() -> str:
    if not dist_utils.has_chief_oracle():
        return "single"
    return "chief" if dist_utils.is_chief_oracle() else "worker"


def _verbose(cfg: DictConfig) -> str | int:
    return "auto" if str(cfg.training.verbose) == "auto" else int(cfg.training.verbose)


def _early_stopping(cfg: DictConfig, restore: bool = False) -> list:
    if cfg.tuner.patience is None:
        return []
    return [
        keras.callbacks.EarlyStopping(
            monitor=cfg.tuner.objective, patience=cfg.tuner.patience, restore_best_weights=restore
        )
    ]


def search(cfg: DictConfig) -> SearchResult | None:
    """Validate, search, summarise. Returns None on a distributed worker (the chief summarises)."""
    validate(cfg)
    note_interrupts()
    space = search_space(cfg)
    experiment_id = tracking.configure(cfg.tracking)
    data = load_dataset(cfg.data)
    configure_threads(cfg.training.threads)
    fresh_start(cfg.seed)
    project = project_name(cfg)
    role = _role()
    resuming = (Path(cfg.tuner.directory) / project / "oracle.json").exists() and not cfg.force

    tuner = build_tuner(cfg, MlpHyperModel(cfg, space, data), project)
    client = MlflowClient()
    finished_before = False
    if role == "worker":
        parent = wait_for_parent(project)
    else:
        parent = (find_parent(project) if resuming else None) or create_parent(cfg, project, space)
        finished_before = client.get_run(parent).info.status == "FINISHED"
        client.update_run(parent, status="RUNNING")
        client.set_tag(parent, "sweeplab.max_trials", str(cfg.tuner.max_trials))
    where = "resuming" if resuming else "starting"
    print(
        f"sweeplab: {where} {cfg.tuner.kind} search {project} ({role}), parent run {parent} -> "
        f"{tracking.ui_url(experiment_id, parent)}",
        flush=True,
    )

    with parent_context(parent, owner=role != "worker"):
        tuner.search(
            data.x_train,
            data.y_train,
            validation_data=(data.x_valid, data.y_valid),
            validation_batch_size=EVAL_BATCH_SIZE,  # as train.fit: one compiled test step for validation and test
            epochs=cfg.tuner.max_epochs,
            batch_size=fit_batch_size(cfg.batch_size, cfg.training.fused_steps),
            callbacks=_early_stopping(cfg),
            verbose=1 if role == "chief" else _verbose(cfg),  # the chief only shows the trials
        )
        if role == "worker":
            return None
        if finished_before and tuner.trials_run == 0 and role == "single":
            # Nothing new: keep the summary (and the registered version) the search already has.
            metrics = client.get_run(parent).data.metrics
            print(
                f"sweeplab: search {project} already finished, no trial left to run "
                "(raise tuner.max_trials to continue it, or force=true to start again)",
                flush=True,
            )
            return SearchResult(
                parent,
                experiment_id,
                metrics.get("best_score", float("nan")),
                metrics.get("baseline_score", float("nan")),
                trials_table(tuner),
                metrics,
            )
        return summarize(cfg, tuner, data, parent, experiment_id)


# ---------------------------------------------------------------- the summary on the parent


def trials_table(tuner: Any) -> pd.DataFrame:
    """One row per trial: id, status, score, hyperparameters, its MLflow run; best first."""
    runs = {}
    for run in reversed(trial_runs(tuner.project)):  # oldest first, so the latest attempt wins
        runs[run.data.tags[TAG_TRIAL]] = run.info.run_id
    rows = []
    for trial_id, trial in tuner.oracle.trials.items():
        values = dict(trial.hyperparameters.values)
        rows.append(
            {
                "trial_id": trial_id,
                "status": str(trial.status),
                "score": np.nan if trial.score is None else float(trial.score),
                "best_step": trial.best_step,
                "hidden_units": "-".join(str(values[f"units_{i + 1}"]) for i in range(int(values["depth"]))),
                **{k: v for k, v in values.items() if not k.startswith("units_")},
                "run_id": runs.get(trial_id),
            }
        )
    table = pd.DataFrame(rows)
    ascending = tuner.oracle.objective.direction == "min"
    return table.sort_values("score", ascending=ascending, na_position="last", kind="stable")


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


def _markdown(table: pd.DataFrame) -> str:
    """GitHub Markdown table (pandas.to_markdown needs the tabulate package, which is not a dependency)."""
    cells = table.astype(object).where(table.notna(), "").astype(str)
    lines = ["| " + " | ".join(cells.columns) + " |", "|" + "---|" * len(cells.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def retrain_best(cfg: DictConfig, data: Dataset) -> tuple[Any, pd.DataFrame]:
    """Train the best trial's config from scratch, keeping the weights of its best epoch."""
    from sweeplab.train import compile_model, fit

    fresh_start(cfg.seed)
    model = compile_model(cfg, data)
    history = fit(cfg, model, data, extra_callbacks=_early_stopping(cfg, restore=True))
    return model, history


def summarize(cfg: DictConfig, tuner: Any, data: Dataset, parent: str, experiment_id: str) -> SearchResult:
    from sweeplab.train import log_model, log_outputs

    table = trials_table(tuner)
    completed = table[table.status == "COMPLETED"]
    if completed.empty:
        raise RuntimeError("no trial of the search completed; see the FAILED trial runs for the reasons")
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_cfg = tuner.hypermodel.config_of(best_trial.hyperparameters)
    with open_dict(best_cfg):
        best_cfg.tuner = cfg.tuner  # early stopping settings for the retraining
        best_cfg.epochs = int(cfg.tuner.max_epochs)
    base = baseline_score(tuner)
    best = float(best_trial.score)

    with mlflow.start_run(run_id=parent):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            table.to_csv(folder / "trials.csv", index=False)
            (folder / "trials.md").write_text(_markdown(table))
            best_values = dict(best_trial.hyperparameters.values)
            best_values["hidden_units"] = hidden_units(best_cfg)
            (folder / "best_hyperparameters.json").write_text(json.dumps(best_values, indent=2, default=str))
            (folder / "tuner.yaml").write_text(OmegaConf.to_yaml(cfg.tuner, resolve=True))
            mlflow.log_artifacts(str(folder), artifact_path="search")
        mlflow.set_tags(
            {
                "sweeplab.best_trial": best_trial.trial_id,
                "sweeplab.best_run": str(table.iloc[0].run_id),
                "sweeplab.best_config": tracking.run_name(best_cfg),
            }
        )
        model, history = retrain_best(best_cfg, data)
        test = model.evaluate(data.x_test, data.y_test, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True)
        metrics = {
            "best_score": best,
            "baseline_score": base,
            "gain_over_baseline": best - base,
            "trials_completed": float(len(completed)),
            "trials_failed": float((table.status != "COMPLETED").sum()),
            "test_loss": float(test["loss"]),
            "test_accuracy": float(test["accuracy"]),
            "param_count": float(model.count_params()),
        }
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            log_outputs(best_cfg, model, data, history, Path(tmp))
        if cfg.tracking.log_model:
            log_model(model, data.x_test[: max(1, cfg.training.predict_samples)])
            if cfg.tuner.registered_model:
                register_best(cfg.tuner.registered_model, parent)
        note = (
            f"{cfg.tuner.kind} search: best {cfg.tuner.objective}={best:.4f} (trial {best_trial.trial_id}, "
            f"{tracking.run_name(best_cfg)}) vs baseline {base:.4f}: gain {best - base:+.4f}; "
            f"test_accuracy={metrics['test_accuracy']:.4f}"
        )
        mlflow.set_tag(tracking.TAG_NOTE, note)

    print(table.drop(columns=["run_id"]).head(10).to_string(index=False))
    print(f"sweeplab: {note} -> {tracking.ui_url(experiment_id, parent)} (make ui)", flush=True)
    return SearchResult(parent, experiment_id, best, base, table, metrics)


def register_best(name: str, run_id: str) -> None:
    """The model just logged on the parent, as a new version of `name` in the Model Registry."""
    logged = mlflow.last_logged_model()
    source = f"models:/{logged.model_id}" if logged is not None else f"runs:/{run_id}/model"
    version = mlflow.register_model(source, name, tags={"sweeplab.search_run": run_id})
    mlflow.set_tag("sweeplab.registered_model", f"{name}/{version.version}")
    print(f"sweeplab: registered the best model as '{name}' version {version.version}", flush=True)
