"""Seeds as an axis: `seeds=N` trains a config with N seeds, each a run nested under the config's run, which
holds the aggregate; studies, resume, pruning, Optuna and Keras Tuner see the config, not one seed.

Real CLI in subprocesses, real SQLite stores, small data.
"""

from __future__ import annotations

import io
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import LIGHT, ROOT, experiment_runs, require_module
from sweeplab.seeds.aggregate import aggregate_metrics, summarize

TINY = ["data.limit=1000", "epochs=2", "training.verbose=0", "tracking.log_model=false", *LIGHT]


def nested(client: MlflowClient, run_id: str) -> list:
    return sorted(
        (r for r in experiment_runs(client) if r.data.tags.get("mlflow.parentRunId") == run_id),
        key=lambda r: int(r.data.params["seed"]),
    )


def seeds_table(client: MlflowClient, run_id: str) -> pd.DataFrame:
    text = Path(client.download_artifacts(run_id, "seeds.csv")).read_text()
    return pd.read_csv(io.StringIO(text))


# --- the aggregate, pure -----------------------------------------------------------------------------------


def test_the_aggregate_of_seeds_is_mean_iqm_std_and_a_t_interval() -> None:
    values = [0.80, 0.82, 0.84, 0.86, 0.99]
    figures = summarize(values)
    assert figures["mean"] == pytest.approx(np.mean(values))
    assert figures["std"] == pytest.approx(np.std(values, ddof=1))
    assert figures["iqm"] == pytest.approx(np.mean([0.82, 0.84, 0.86]))  # the outlier 0.99 is trimmed
    half = 2.7764451051977987 * np.std(values, ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert (figures["ci_low"], figures["ci_high"]) == pytest.approx((figures["mean"] - half, figures["mean"] + half))
    one = summarize([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
    metrics = aggregate_metrics([{"val_accuracy": 0.7, "test_accuracy": 0.6}, {"val_accuracy": 0.9}])
    assert metrics["val_accuracy"] == pytest.approx(0.8) and metrics["seeds_run"] == 2
    assert metrics["test_accuracy"] == 0.6 and "test_accuracy_std" not in metrics


# --- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["seeds=0"], "sweeplab: error: seeds=0 is not allowed: must be an integer from 1 to 100"),
        (
            ["seeds=3", "tuner=random", "tuner.executions_per_trial=2"],
            "sweeplab: error: seeds=3 with tuner.executions_per_trial=2 is not allowed: a search's seeds are its "
            "executions per trial; set one of them",
        ),
    ],
    ids=["zero", "tuner-conflict"],
)
def test_bad_seeds_are_refused_in_one_line_before_any_run(args, line, cli, client) -> None:
    done = cli(*args, *TINY)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [line]
    assert experiment_runs(client) == []


# --- one config --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_seeds_nest_under_the_configs_run_and_reuse_a_seed_grid(cli, client) -> None:
    """A grid over `seed=` and `seeds=N` are the same runs: seeds 0 and 1 of a grid are not trained again."""
    grid = cli("-m", "seed=0,1", *TINY)
    assert grid.returncode == 0, grid.stderr[-3000:]
    from_grid = {r.data.params["seed"]: r.info.run_id for r in experiment_runs(client) if "seed" in r.data.params}

    done = cli("seeds=3", "seed=0", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    (config,) = [r for r in experiment_runs(client) if "sweeplab.seeds" in r.data.tags]
    assert config.info.status == "FINISHED" and config.data.tags["sweeplab.seeds"] == "3"
    assert config.data.params["seeds"] == "3" and config.info.run_name.endswith("seeds=0-2")
    (trained,) = nested(client, config.info.run_id)  # seeds 0 and 1 FINISHED in the grid
    assert trained.data.params["seed"] == "2" and trained.data.tags["sweeplab.role"] == "seed"
    assert trained.data.tags["sweeplab.config_group"] == config.data.tags["sweeplab.config_group"]
    table = seeds_table(client, config.info.run_id)
    assert table["seed"].tolist() == [0, 1, 2] and table["status"].tolist() == ["SKIPPED", "SKIPPED", "FINISHED"]
    assert table["run_id"].tolist() == [from_grid["0"], from_grid["1"], trained.info.run_id]
    values = [client.get_run(r).data.metrics["val_accuracy"] for r in table["run_id"]]
    metrics = config.data.metrics
    assert metrics["val_accuracy"] == pytest.approx(np.mean(values))
    assert metrics["val_accuracy_std"] == pytest.approx(np.std(values, ddof=1))
    assert metrics["val_accuracy_ci_low"] < metrics["val_accuracy"] < metrics["val_accuracy_ci_high"]
    assert metrics["seeds_run"] == 3 and "test_accuracy_iqm" in metrics
    assert "3 seeds: val_accuracy mean" in done.stdout
    runs = [r for r in experiment_runs(client) if r.data.tags.get("sweeplab.role") != "study"]
    assert len(runs) == 4 and len({r.data.tags["sweeplab.config_group"] for r in runs}) == 1  # whatever the seed


# --- studies -----------------------------------------------------------------------------------------------


def poll(found, timeout: float, what: str):
    """What `found()` returns once it is not None, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value is not None:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def study_parent(client: MlflowClient):
    (parent,) = [r for r in experiment_runs(client) if r.data.tags.get("sweeplab.role") == "study"]
    return parent


def summary(client: MlflowClient, parent_id: str) -> pd.DataFrame:
    return pd.read_csv(client.download_artifacts(parent_id, "summary.csv"))


@pytest.mark.slow
def test_a_sweep_with_seeds_has_a_config_run_per_job_and_resumes_a_killed_one(tmp_path, store, client) -> None:
    """SIGTERM while the first job trains its second seed: the rerun reopens that job's run, keeps its finished
    seed, trains the rest and the next job, and the summary counts jobs with their seeds."""
    # The first job trains long (a stop must land in its second seed); the next one, trained in the rerun, short.
    tiny = [arg for arg in TINY if not arg.startswith("epochs=")]
    args = [sys.executable, str(ROOT / "sweep.py"), "-m", "epochs=25,2", "seeds=3", *tiny]
    args += ["training.steps_per_execution=1"]
    proc = subprocess.Popen(
        args, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:

        def second_seed_training():
            seeds = [r for r in experiment_runs(client) if r.data.tags.get("sweeplab.role") == "seed"]
            running = [r for r in seeds if r.info.status == "RUNNING"]
            done = [r for r in seeds if r.info.status == "FINISHED"]
            if done and running and client.get_metric_history(running[0].info.run_id, "val_accuracy"):
                return running[0]
            return None

        killed_seed = poll(second_seed_training, 300, "the first job's second seed to train")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0, output[-3000:]
    parent = study_parent(client)
    (job,) = [r for r in experiment_runs(client) if r.data.tags.get("sweeplab.seeds")]
    assert job.data.params["epochs"] == "25" and job.info.status == "KILLED"  # the first job
    assert client.get_run(killed_seed.info.run_id).info.status == "KILLED"
    assert all(r.info.status != "RUNNING" for r in experiment_runs(client))
    kept = {r.info.run_id for r in nested(client, job.info.run_id) if r.info.status == "FINISHED"}
    assert len(kept) == 1

    again = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(resumed)" in again.stdout
    resumed = client.get_run(job.info.run_id)  # the same config run, reopened
    assert resumed.info.status == "FINISHED" and resumed.data.metrics["seeds_run"] == 3
    seeds = nested(client, resumed.info.run_id)
    assert kept <= {r.info.run_id for r in seeds}
    assert sorted(r.info.status for r in seeds) == ["FINISHED", "FINISHED", "FINISHED", "KILLED"]
    assert seeds_table(client, resumed.info.run_id)["status"].tolist() == ["SKIPPED", "FINISHED", "FINISHED"]
    assert study_parent(client).info.run_id == parent.info.run_id
    assert summary(client, parent.info.run_id)["seeds"].tolist() == [3, 3]
    assert study_parent(client).data.metrics["jobs_finished"] == 2


@pytest.mark.slow
def test_seeds_in_joblib_workers_nest_under_their_config_and_force_trains_them_again(cli, client) -> None:
    """seeds=N with jobs in parallel processes (hydra/launcher=joblib): each job's seeds nest under its own
    config run; the same config again with force=true is trained again, its seeds included, not skipped."""
    done = cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "lr=0.05,0.02", "seeds=2", *TINY, "epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    parent = study_parent(client)
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 2
    configs = {r.data.params["lr"]: r for r in experiment_runs(client) if "sweeplab.seeds" in r.data.tags}
    assert sorted(configs) == ["0.02", "0.05"]
    for lr, config in configs.items():
        seeds = nested(client, config.info.run_id)
        assert [r.info.status for r in seeds] == ["FINISHED", "FINISHED"] and config.data.metrics["seeds_run"] == 2
        assert {r.data.params["lr"] for r in seeds} == {lr} and len({r.data.params["seed"] for r in seeds}) == 2
    assert summary(client, parent.info.run_id)["seeds"].tolist() == [2, 2]

    before = {r.info.run_id for r in experiment_runs(client)}
    forced = cli("-m", "lr=0.05", "seeds=2", "force=true", *TINY, "epochs=1")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "already FINISHED" not in forced.stdout, forced.stdout[-3000:]
    new = [r for r in experiment_runs(client) if r.info.run_id not in before]
    roles = sorted(r.data.tags.get("sweeplab.role", "") for r in new)
    assert roles.count("seed") == 2 and {r.info.status for r in new} == {"FINISHED"}, roles
    assert {r.data.params.get("lr") for r in new if r.data.tags.get("sweeplab.role") == "seed"} == {"0.05"}


@pytest.mark.slow
def test_a_pruned_seed_ends_its_config_and_the_summary_says_so(cli, client) -> None:
    """Siblings are every seed's run of the study: a hopeless config's first seed is stopped, its second never
    trains, and its config run is PRUNED in the summary."""
    args = ["-m", "optimizer=adam", "lr=0.003,0.001,0.000001", "seeds=2", "pruner=median", "pruner.warmup_epochs=1"]
    done = cli(*args, "pruner.min_runs=3", *TINY, "epochs=4")
    assert done.returncode == 0, done.stderr[-3000:]
    parent = study_parent(client)
    jobs = {r.data.params["lr"]: r for r in experiment_runs(client) if r.data.tags.get("sweeplab.seeds")}
    hopeless = jobs["1e-06"]
    assert hopeless.data.tags["sweeplab.pruned"] == "2" and hopeless.data.metrics["seeds_run"] == 1
    assert "seed 42 pruned at epoch 2" in hopeless.data.tags["sweeplab.pruned_reason"]
    (only,) = nested(client, hopeless.info.run_id)
    assert only.data.tags["sweeplab.pruned"] == "2"
    assert len(client.get_metric_history(only.info.run_id, "val_accuracy")) == 2
    first = jobs["0.003"]  # no siblings yet: never judged
    assert len(nested(client, first.info.run_id)) == 2 and "sweeplab.pruned" not in first.data.tags
    rows = summary(client, parent.info.run_id).set_index("lr")
    assert rows.loc[1e-06, "status"] == "PRUNED" and rows.loc[1e-06, "seeds"] == 1
    pruned = [r for r in jobs.values() if "sweeplab.pruned" in r.data.tags]
    assert parent.data.metrics["jobs_pruned"] == len(pruned) == (rows["status"] == "PRUNED").sum()


@pytest.mark.slow
def test_optuna_optimises_the_mean_over_seeds(cli, client, tmp_path: Path) -> None:
    require_module("hydra_plugins.hydra_optuna_sweeper")
    optuna = ["hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "hydra.sweeper.sampler.seed=3"]
    done = cli("-m", *optuna, "hydra.sweeper.n_trials=2", "lr=interval(0.001,0.3)", "seeds=2", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    parent = study_parent(client)
    jobs = [r for r in experiment_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(jobs) == 2 and all(r.data.tags["sweeplab.seeds"] == "2" for r in jobs)
    for job in jobs:
        seeds = nested(client, job.info.run_id)
        assert [r.data.params["seed"] for r in seeds] == ["42", "43"]
        means = np.mean([r.data.metrics["val_accuracy"] for r in seeds])
        assert job.data.metrics["val_accuracy"] == pytest.approx(means)
    (results,) = tmp_path.glob("multirun/*/*/optimization_results.yaml")
    best = yaml.safe_load(results.read_text())["best_value"]
    assert best == pytest.approx(max(r.data.metrics["val_accuracy"] for r in jobs))


@pytest.mark.slow
def test_keras_tuner_logs_every_execution_as_a_seed_run_of_its_trial(cli, client, tmp_path: Path) -> None:
    args = ["tuner=random", "tuner.max_trials=2", "tuner.max_epochs=2", "seeds=2", f"tuner.directory={tmp_path}/kt"]
    done = cli(*args, *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = [r for r in experiment_runs(client) if r.data.tags.get("sweeplab.role") == "trial"]
    assert len(trials) == 2
    for trial in trials:
        assert trial.data.tags["sweeplab.seeds"] == "2"
        executions = nested(client, trial.info.run_id)
        assert [r.data.params["seed"] for r in executions] == ["42", "43"]
        assert [r.data.params["execution"] for r in executions] == ["1", "2"]
        assert all(r.data.tags["sweeplab.role"] == "seed" and r.info.status == "FINISHED" for r in executions)
        assert all(len(client.get_metric_history(r.info.run_id, "val_accuracy")) == 2 for r in executions)
        finals = [r.data.metrics["val_accuracy"] for r in executions]
        assert trial.data.metrics["val_accuracy"] == pytest.approx(np.mean(finals))
        assert trial.data.metrics["seeds_run"] == 2
