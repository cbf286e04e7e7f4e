"""A config trained with its seeds (`seeds=N`): one run per seed, nested under the config's run, which holds
the aggregate (sweeplab.seeds.aggregate) and is what a study's sweeper, summary and resume see.

A seed whose config already FINISHED is not trained again, wherever it ran: under an earlier attempt of this
config's run, or as a plain `seed=...` run of a grid. An interrupted config's run is reopened by the same
command, so its seeds stay together.
"""

from __future__ import annotations

import io
import time

import pandas as pd
from omegaconf import DictConfig

from sweeplab.config import config_hash, seed_config, seed_list
from sweeplab.objective import objective_of
from sweeplab.seeds.aggregate import aggregate_metrics, aggregated
from sweeplab.signals import raise_if_interrupted
from sweeplab.tracking import runs, store, tags
from sweeplab.tracking.context import StudyContext
from sweeplab.tracking.ui import run_link
from sweeplab.train import RunResult


def run_config(cfg: DictConfig, study: StudyContext) -> RunResult:
    """Train `cfg` (validated already) in `study`: one run, or with seeds=N > 1 a run per seed under the
    config's run."""
    from sweeplab.train import run

    return run(cfg, study=study) if int(cfg.seeds) == 1 else run_seeds(cfg, study)


def config_run_name(cfg: DictConfig) -> str:
    """e.g. 'mlp 300-100 relu sgd lr=0.01 seeds=42-46'."""
    seeds = seed_list(cfg)
    return f"{runs.run_name(cfg).rsplit(' seed=', 1)[0]} seeds={seeds[0]}-{seeds[-1]}"


def earlier_attempt(experiment_id: str, identity: str, study: StudyContext) -> str | None:
    """The newest unfinished run of this config (interrupted, failed, lost) in `study`, to reopen."""
    from mlflow.tracking import MlflowClient

    query = f"tags.`{tags.CONFIG_HASH}` = '{identity}' and attributes.status != 'FINISHED'"
    parent = study.parent_run_id
    query += f" and tags.`{tags.STUDY_RUN}` = '{parent}'" if parent else f" and tags.`{tags.STUDY_RUN}` IS NULL"
    found = MlflowClient().search_runs([experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    return found[0].info.run_id if found else None


def run_seeds(cfg: DictConfig, study: StudyContext) -> RunResult:
    """Train each seed of `cfg` that has not FINISHED yet, as a run nested under the config's run; log the
    aggregate there. A seed the study's pruner stops ends the config: its other seeds are not trained."""
    import mlflow

    from sweeplab.train import check_fits

    experiment_id = store.configure(cfg.tracking)
    check_fits(cfg)  # bad data or a model that does not fit it: refused before the config's run exists
    identity, seeds, name = config_hash(cfg), seed_list(cfg), config_run_name(cfg)
    resume = earlier_attempt(experiment_id, identity, study)
    rows: list[dict] = []
    with runs.tracked_run(name, {**runs.run_tags(cfg), tags.SEEDS: str(len(seeds))}, study, resume) as active:
        run_id = active.info.run_id
        again = " (resumed)" if resume else ""
        print(f"sweeplab: config run '{name}' ({run_id}){again}: {len(seeds)} seeds, each a nested run", flush=True)
        if resume is None:  # a reopened run has its params (the threads of this attempt may differ)
            mlflow.log_params(runs.flat_params(cfg))
        started = time.perf_counter()
        for number, seed in enumerate(seeds, 1):
            raise_if_interrupted()
            rows.append(_train_seed(cfg, study, experiment_id, seed, f"seed {seed} ({number}/{len(seeds)})"))
            if rows[-1]["pruned"] is not None:
                mlflow.set_tags({tags.PRUNED: str(rows[-1]["pruned"]), tags.PRUNED_REASON: rows[-1]["reason"]})
                break
        metrics = aggregate_metrics(rows)
        mlflow.log_metrics({**metrics, "train_time": time.perf_counter() - started})
        figures = list(dict.fromkeys(k for row in rows for k in aggregated(row)))
        table = pd.DataFrame(rows, columns=["seed", "run_id", "status", *figures, "pruned"])
        mlflow.log_text(table.to_csv(index=False), "seeds.csv")
    print(_closing_line(table, metrics, objective_of(cfg).metric, experiment_id, run_id), flush=True)
    return RunResult(run_id, experiment_id, metrics, seeds=table)


def _train_seed(cfg: DictConfig, study: StudyContext, experiment_id: str, seed: int, what: str) -> dict:
    """One seed: reuse its FINISHED run, or train it nested under the active config run."""
    one = seed_config(cfg, seed)
    earlier = None if cfg.force else runs.finished_run(experiment_id, config_hash(one))
    if earlier is not None:
        labels, metrics = earlier.data.tags, earlier.data.metrics
        print(f"sweeplab: {what} already FINISHED as run {earlier.info.run_id}: not trained again", flush=True)
        pruned = int(labels[tags.PRUNED]) if tags.PRUNED in labels else None
        return _row(seed, earlier.info.run_id, "SKIPPED", metrics, pruned, labels.get(tags.PRUNED_REASON, ""))
    from sweeplab.train import run

    print(f"sweeplab: {what}", flush=True)
    result = run(one, {tags.ROLE: tags.ROLE_SEED}, study=study)
    reason = f"seed {seed} pruned at epoch {result.pruned_at}" if result.pruned_at is not None else ""
    return _row(seed, result.run_id, "FINISHED", result.metrics, result.pruned_at, reason)


def _row(seed: int, run_id: str, status: str, metrics: dict, pruned: int | None, reason: str) -> dict:
    return {
        "seed": seed,
        "run_id": run_id,
        "status": status,
        **{k: float(v) for k, v in aggregated(metrics).items()},
        "pruned": pruned,
        "reason": reason,
    }


def _closing_line(table: pd.DataFrame, metrics: dict, metric: str, experiment_id: str, run_id: str) -> str:
    buffer = io.StringIO()
    shown = [c for c in ("seed", "status", metric, "test_" + metric.removeprefix("val_")) if c in table]
    table[list(dict.fromkeys(shown))].to_string(buffer, index=False)
    low, high = metrics.get(f"{metric}_ci_low"), metrics.get(f"{metric}_ci_high")
    interval = f", 95% interval {low:.4f} to {high:.4f}" if low is not None and high is not None else ""
    nan = float("nan")
    return (
        f"{buffer.getvalue()}\nsweeplab: {len(table)} seeds: {metric} mean {metrics.get(metric, nan):.4f} "
        f"(std {metrics.get(f'{metric}_std', nan):.4f}, IQM {metrics.get(f'{metric}_iqm', nan):.4f}{interval}) "
        f"-> {run_link(experiment_id, run_id)}"
    )
