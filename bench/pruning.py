"""Pruning in numbers: what one decision costs (50 siblings, SQLite and a server), and what it saves a sweep."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from sweeplab.pruning.rule import Rule, best_so_far, decide
from sweeplab.pruning.siblings import SiblingReader, sibling_bests
from sweeplab.tracking.ui import running_ui


def make_study(uri: str, siblings: int, epochs: int) -> tuple[str, str, str]:
    """(experiment id, parent run id, job run id): a parent with `siblings` finished children of `epochs`."""
    client = MlflowClient(uri)
    exp_id = client.create_experiment(f"bench-pruning-{time.time_ns()}")
    parent = client.create_run(exp_id, run_name="study").info.run_id
    for n in range(siblings):
        run = client.create_run(exp_id, tags={"mlflow.parentRunId": parent}).info.run_id
        values = [0.5 + 0.4 * (1 - 0.8**e) * (1 - n / (2 * siblings)) for e in range(epochs)]
        client.log_batch(run, metrics=[Metric("val_accuracy", v, 0, e) for e, v in enumerate(values)])
        client.set_terminated(run)
    job = client.create_run(exp_id, tags={"mlflow.parentRunId": parent}).info.run_id
    return exp_id, parent, job


def time_decision(uri: str, exp_id: str, parent: str, job: str, epoch: int, repeats: int) -> tuple[float, float]:
    """Milliseconds of a job's first decision at `epoch` and the median of its next ones, as the callback
    makes them (a reader per job: later decisions read only what changed)."""
    client, rule, times = MlflowClient(uri), Rule(warmup_epochs=0), []
    reader = SiblingReader(client, parent, exp_id, job, rule.objective)
    for _ in range(repeats + 1):
        started = time.perf_counter()
        siblings = sibling_bests(reader.points(epoch), epoch, rule.maximize)
        decide(rule, epoch, best_so_far([0.6], True), siblings)
        times.append(time.perf_counter() - started)
    return 1000 * times[0], 1000 * statistics.median(times[1:])


def time_pruning(store: str, work: Path, siblings: int = 50, epochs: int = 20, repeats: int = 20) -> dict:
    """(first, next) milliseconds per decision on the SQLite store and through `mlflow server` on it."""
    exp_id, parent, job = make_study(store, siblings, epochs)
    result = {"sqlite": time_decision(store, exp_id, parent, job, epochs // 2, repeats)}
    extra = ("--default-artifact-root", str(work / "artifacts"))
    with running_ui(store, work / "mlflow-server.log", timeout=120, kind="server", extra_args=extra) as server:
        result["server"] = time_decision(server.url, exp_id, parent, job, epochs // 2, repeats)
    return result


PRUNE = ["pruner=median", "pruner.warmup_epochs=2", "pruner.min_runs=3"]
LRS = "lr=0.1,0.03,0.01,0.001,0.0003,0.0001"
OPTUNA = ["hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "hydra.sweeper.n_trials=12",
          "hydra.sweeper.n_jobs=1", "hydra.sweeper.sampler.seed=7", "lr=interval(0.0001,0.3)"]  # fmt: skip


def best_of(client: MlflowClient, experiment: str) -> tuple[float, float]:
    """(lr, val_accuracy) of the best finished run of an experiment."""
    exp = client.get_experiment_by_name(experiment)
    runs = [r for r in client.search_runs([exp.experiment_id]) if "val_accuracy" in r.data.metrics]
    best = max(runs, key=lambda r: r.data.metrics["val_accuracy"])
    return float(best.data.params["lr"]), best.data.metrics["val_accuracy"]
