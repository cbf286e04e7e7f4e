"""Comparisons read from and written to MLflow: a study's or experiment's runs in, the report logged back.

The MLflow side of compare.py and of the sweep's closing report (`report_for_sweep`).
"""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from sweeplab.compare.analysis import HISTORY_KEYS, Comparison, RunSet, compare_runs, resolve_param
from sweeplab.compare.report import SearchFigure, format_text, write_report
from sweeplab.compat import metric_points
from sweeplab.errors import CompareError
from sweeplab.objective import Objective, objective_from
from sweeplab.tracking import tags

PARENT_TAG = tags.PARENT
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def find_sweep(client: MlflowClient, sweep: str, experiment_ids: list[str] | None = None) -> mlflow.entities.Run:
    """A sweep's parent run, by run id or by run name (the newest run of that name)."""
    if _RUN_ID.match(sweep):
        try:
            return client.get_run(sweep)
        except mlflow.exceptions.MlflowException:
            pass
    ids = experiment_ids or [e.experiment_id for e in client.search_experiments()]
    name = sweep.replace("'", "\\'")
    found = client.search_runs(ids, filter_string=f"attributes.run_name = '{name}'", order_by=["start_time DESC"])
    if not found:
        raise CompareError(f"no sweep '{sweep}': give a parent run id or a parent run's name")
    return found[0]


def _history(client: MlflowClient, run_id: str, keys: list[str]) -> pd.DataFrame:
    columns = {}
    for key in keys:
        points = client.get_metric_history(run_id, key)
        if points:
            columns[key] = pd.Series({p.step: p.value for p in points}, dtype=float)
    return pd.DataFrame(columns).sort_index()


def _histories(client: MlflowClient, run_ids: list[str], keys: list[str]) -> dict[str, pd.DataFrame]:
    """Every run's history: a few column queries on a database store, else one call per run and metric."""
    frame = metric_points(client, run_ids, keys)
    if frame is None:
        return {run_id: _history(client, run_id, keys) for run_id in run_ids}
    wide = frame.pivot_table(index=["run_id", "step"], columns="key", values="value", aggfunc="last")
    wide.columns.name = None
    found = {
        run_id: table.droplevel("run_id").dropna(axis=1, how="all").astype(float)
        for run_id, table in wide.groupby(level="run_id", sort=False)
    }
    return {run_id: found.get(run_id, pd.DataFrame()) for run_id in run_ids}


def _search(experiment_id: str, query: str = "") -> pd.DataFrame:
    return mlflow.search_runs(
        experiment_ids=[experiment_id], filter_string=query, max_results=100_000, output_format="pandas"
    )


def _study_runs(experiment_id: str, parent_id: str | None) -> pd.DataFrame:
    """The experiment's runs, or a study's children and, where a child aggregates seed runs (tag
    sweeplab.seeds), its children too: the seed runs are the study's grandchildren."""
    if parent_id is None:
        return _search(experiment_id)
    children = _search(experiment_id, f"tags.`{PARENT_TAG}` = '{parent_id}'")
    column = f"tags.{tags.SEEDS}"
    if children.empty or column not in children or not children[column].notna().any():
        return children
    everything = _search(experiment_id)
    grandchildren = everything[everything[f"tags.{PARENT_TAG}"].isin(set(children["run_id"]))]
    return pd.concat([children, grandchildren], ignore_index=True)


def default_experiment(client: MlflowClient) -> mlflow.entities.Experiment:
    """fashion_mnist (the baseline's), else the store's only experiment with runs."""
    found = client.get_experiment_by_name("fashion_mnist")
    if found is not None:
        return found
    named = [e for e in client.search_experiments() if client.search_runs([e.experiment_id], max_results=1)]
    if len(named) == 1:
        return named[0]
    names = ", ".join(e.name for e in named) or "none with runs"
    raise CompareError(f"no experiment 'fashion_mnist' in {client.tracking_uri}: give --experiment NAME ({names})")


def load_runs(experiment: str | None = None, sweep: str | None = None, tracking_uri: str | None = None) -> RunSet:
    """Runs of an experiment (default fashion_mnist, else the only one), or only a sweep's children, with their
    histories."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment) if experiment else None
    if experiment and exp is None:
        raise CompareError(f"no experiment '{experiment}' in {client.tracking_uri}")
    parent = None
    if sweep:
        parent = find_sweep(client, sweep, [exp.experiment_id] if exp else None)
        exp = client.get_experiment(parent.info.experiment_id)
    elif exp is None:
        exp = default_experiment(client)
    runs = _study_runs(exp.experiment_id, parent.info.run_id if parent else None)
    where = f"experiment '{exp.name}'" + (f", sweep '{parent.info.run_name}' ({parent.info.run_id})" if parent else "")
    if runs.empty:
        raise CompareError(f"no runs in {where}")
    logged = [c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics.val_")]
    histories = _histories(client, list(runs["run_id"]), list(dict.fromkeys([*HISTORY_KEYS, *logged])))
    return RunSet(
        runs=runs,
        histories=histories,
        experiment=exp.name,
        sweep=parent.info.run_id if parent else None,
        sweep_name=parent.info.run_name if parent else None,
        study_kind=parent.data.tags.get(tags.STUDY_KIND) if parent else None,
    )


def title_of(run_set: RunSet) -> str:
    if run_set.sweep:
        return f"experiment {run_set.experiment}, sweep {run_set.sweep_name} ({run_set.sweep[:8]})"
    return f"experiment {run_set.experiment}"


def default_out_dir(run_set: RunSet, by: str) -> Path:
    """reports/<experiment>[-<sweep id>]-<by>."""
    parts = [run_set.experiment, *([run_set.sweep[:8]] if run_set.sweep else []), by]
    return Path("reports") / re.sub(r"[^\w.-]+", "_", "-".join(parts))


def study_search(run_set: RunSet, tracking_uri: str | None = None) -> SearchFigure | None:
    """The trials of the study whose runs these are, in the order they started, for the report's search figure:
    a search's trials by score and `hp.` values, a sweep's jobs by their objective and swept values."""
    if not run_set.sweep or run_set.runs.empty:
        return None
    study_objective = run_objective(run_set)
    parent = MlflowClient(tracking_uri=tracking_uri).get_run(run_set.sweep)
    runs = run_set.runs[run_set.runs[f"tags.{PARENT_TAG}"] == run_set.sweep]
    runs = runs.sort_values("start_time").reset_index(drop=True)
    name = study_objective.metric
    if parent.data.tags.get(tags.STUDY_KIND) == tags.StudyKind.TUNER and "metrics.score" in runs:
        name = parent.data.params.get("tuner.objective", name)
        objective, columns = "metrics.score", [c for c in runs if c.startswith("params.hp.") and "tuner/" not in c]
    else:
        swept = [key.removeprefix("sweep.") for key in parent.data.params if key.startswith("sweep.")]
        known = [key for key in swept if key not in ("name", "jobs", "sweeper")]
        objective = f"metrics.{name}"
        columns = []
        for key in known:
            try:
                columns.append(f"params.{resolve_param(runs.columns, key)}")
            except CompareError:  # a key no run has as a param (hydra/launcher=..., a config group's own key)
                continue
    if objective not in runs:
        return None
    names = {c: c.removeprefix("params.").removeprefix("hp.") for c in columns if runs[c].nunique() > 1}
    trials = runs[list(names)].rename(columns=names)
    trials[name] = runs[objective].astype(float)
    trials["trial"] = range(1, len(runs) + 1)
    title = f"{parent.data.tags.get(tags.STUDY_NAME) or parent.info.run_name}: {name} of each run"
    return SearchFigure(trials, name, title, list(names.values()), maximize=study_objective.on(name).maximize)


def log_report(run_id: str, paths: dict[str, Path], tracking_uri: str | None = None) -> None:
    """The report files as artifacts of the sweep's parent run, under comparison/."""
    client = MlflowClient(tracking_uri=tracking_uri)
    for path in paths.values():
        client.log_artifact(run_id, str(path), artifact_path="comparison")


def samples_trials(run_set: RunSet) -> bool:
    """Whether the runs are a sampled study's trials (a Keras Tuner search, a sweeper other than the grid):
    then the report shows the expected best score against the number of trials."""
    return run_set.study_kind in (tags.StudyKind.TUNER, tags.StudyKind.SWEEPER)


def run_objective(run_set: RunSet) -> Objective:
    """The objective the runs were trained for (their `objective.*` params, when they agree), else
    val_accuracy, higher is better."""
    runs = run_set.runs
    metrics = runs.get("params.objective.metric", pd.Series(dtype=object)).dropna().unique()
    directions = runs.get("params.objective.direction", pd.Series(dtype=object)).dropna().unique()
    if len(metrics) != 1:
        return Objective()
    direction = directions[0] if len(directions) == 1 else "auto"
    return objective_from(metrics[0], direction)


def compare_run_set(
    run_set: RunSet, by: str, at: str = "last", metric: str | None = None, direction: str = "auto"
) -> Comparison:
    """Compare the runs by `metric` (default: the runs' objective) in its direction (auto: the objective's
    when it is the objective's metric, else inferred from the name)."""
    objective = run_objective(run_set)
    if metric is not None and metric != objective.metric:
        objective = objective_from(metric, direction)
    elif direction != "auto":
        objective = objective_from(objective.metric, direction)
    return compare_runs(
        run_set.runs,
        run_set.histories,
        by,
        title=title_of(run_set),
        at=at,
        expected_best=samples_trials(run_set),
        metric=objective.metric,
        maximize=objective.maximize,
    )


def report_for_sweep(
    parent_run_id: str,
    by: str = "optimizer",
    out_dir: Path | None = None,
    tracking_uri: str | None = None,
    at: str = "last",
    metric: str | None = None,
    maximize: bool | None = None,
) -> str:
    """Compare a finished sweep's runs, write and log the report; returns the text to print."""
    run_set = load_runs(sweep=parent_run_id, tracking_uri=tracking_uri)
    direction = "auto" if maximize is None else "max" if maximize else "min"
    comparison = compare_run_set(run_set, by, at, metric, direction)
    out = out_dir or default_out_dir(run_set, comparison.by)
    paths = write_report(comparison, out, study_search(run_set, tracking_uri))
    log_report(parent_run_id, paths, tracking_uri=tracking_uri)
    return format_text(comparison) + f"\nReport: {paths['html']}"
