"""Pruning: a study's hopeless jobs stop early, judged against their siblings' histories in the store.

The rule is checked as a pure function; studies are the real CLI in subprocesses on small data, ordered so
that the later jobs are clearly worse (SGD with a tiny learning rate) and must be stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import LIGHT, experiment_runs, require_module, run_cli, tracking_server
from sweeplab.pruning.rule import Rule, best_so_far, decide

TINY = ["data.limit=1000", "epochs=4", "training.verbose=0", "tracking.log_model=false", *LIGHT]
PRUNE = ["pruner=median", "pruner.warmup_epochs=1"]


# --- the siblings ------------------------------------------------------------------------------------------


def _sibling_values(client: MlflowClient) -> list[float]:
    """What a SiblingReader reads in `client`'s store of a study with one sibling and three runs that are not."""
    from sweeplab.pruning.siblings import SiblingReader
    from sweeplab.tracking import tags

    experiment = client.create_experiment("siblings")
    parent = client.create_run(experiment).info.run_id

    def run(labels: dict[str, str], values: list[float], study: str = parent) -> str:
        run_id = client.create_run(experiment, tags={tags.STUDY_RUN: study, **labels}).info.run_id
        for step, value in enumerate(values):
            client.log_metric(run_id, "val_accuracy", value, step=step)
        return run_id

    own = run({}, [0.1, 0.2])
    run({}, [0.5, 0.6])  # the one sibling
    run({tags.SEEDS: "2"}, [0.9, 0.9])  # aggregates its seeds' runs: not a sibling
    run({}, [0.3, 0.3], study="another study")
    return sorted(SiblingReader(client, parent, experiment, own, "val_accuracy").points(2)["value"])


def test_siblings_are_the_same_runs_on_a_sql_store_and_elsewhere(client, tmp_path: Path, monkeypatch) -> None:
    """One rule says who a sibling is: the SQL query and the search a tracking server gets find the same runs."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    elsewhere = MlflowClient(tracking_uri=(tmp_path / "files").as_uri())  # not SQL: read by search and history
    assert _sibling_values(client) == _sibling_values(elsewhere) == pytest.approx([0.5, 0.6])


# --- the rule ----------------------------------------------------------------------------------------------


def test_median_rule_waits_for_warmup_and_enough_siblings() -> None:
    rule = Rule("val_accuracy", 50, warmup_epochs=2, min_runs=3)
    assert not decide(rule, 2, 0.1, [0.8, 0.8, 0.8]).prune  # still warming up
    assert not decide(rule, 3, 0.1, [0.8, 0.8]).prune  # two siblings are not enough
    decision = decide(rule, 3, 0.5, [0.9, 0.6, 0.7])
    assert decision.prune and decision.threshold == pytest.approx(0.7) and decision.siblings == 3
    assert not decide(rule, 3, 0.75, [0.9, 0.6, 0.7]).prune
    assert decision.reason(rule) == "val_accuracy 0.5000 at epoch 3 below the median 0.7000 of 3 sibling runs"


def test_losses_go_down_and_percentiles_count_from_the_best() -> None:
    loss = Rule("val_loss", 50, warmup_epochs=0, min_runs=1)
    assert decide(loss, 1, 0.9, [0.3, 0.5]).prune and not decide(loss, 1, 0.35, [0.3, 0.5]).prune
    top_quarter = Rule("val_accuracy", 25, warmup_epochs=0, min_runs=1)
    siblings = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert decide(top_quarter, 1, 0.35, siblings).prune  # above the median, below the top quarter's line (0.4)
    assert not decide(top_quarter, 1, 0.45, siblings).prune
    assert decide(Rule("val_accuracy", 50, 0, 1), 1, math.nan, [0.5]).prune  # a job with no value cannot win
    assert best_so_far([0.2, math.nan, 0.5, 0.4], maximize=True) == 0.5
    assert best_so_far([0.9, 0.4, 0.6], maximize=False) == 0.4


def test_the_percentile_pruner_keeps_only_the_top_share(compose_cfg) -> None:
    """pruner=percentile (25 by default) is stricter than the median: a job above the median of its siblings
    but outside their best quarter is stopped; pruner.percentile=50 is the median rule."""
    from sweeplab.pruning.callback import rule_of

    quarter = rule_of(compose_cfg("pruner=percentile", "pruner.warmup_epochs=0", "pruner.min_runs=1").pruner)
    median = rule_of(compose_cfg("pruner=median", "pruner.warmup_epochs=0", "pruner.min_runs=1").pruner)
    half = rule_of(compose_cfg("pruner=percentile", "pruner.percentile=50", "pruner.warmup_epochs=0").pruner)
    siblings = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert decide(quarter, 1, 0.35, siblings).prune and not decide(median, 1, 0.35, siblings).prune
    assert not decide(quarter, 1, 0.45, siblings).prune
    assert decide(half, 1, 0.25, siblings).threshold == decide(median, 1, 0.25, siblings).threshold == 0.3


# --- studies -----------------------------------------------------------------------------------------------


def study(client: MlflowClient) -> tuple:
    runs = experiment_runs(client)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children


def epochs_logged(client: MlflowClient, run) -> int:
    return len(client.get_metric_history(run.info.run_id, "val_accuracy"))


def by_lr(children: list) -> dict[float, object]:
    return {float(r.data.params["lr"]): r for r in children}


@pytest.mark.slow
def test_grid_sweep_prunes_the_clearly_worse_jobs_and_a_rerun_adds_nothing(cli, client, tmp_path: Path) -> None:
    args = ["-m", "lr=0.1,0.05,0.03,0.0003,0.0002,0.0001", *PRUNE, "pruner.min_runs=2", *TINY]
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = study(client)
    runs = by_lr(children)
    assert {r.info.status for r in children} == {"FINISHED"}  # a pruned job ends FINISHED
    for lr in (0.0003, 0.0002, 0.0001):
        run = runs[lr]
        assert run.data.tags["sweeplab.pruned"] == "2" and epochs_logged(client, run) == 2, lr
        assert "below the median" in run.data.tags["sweeplab.pruned_reason"]
        assert "test_accuracy" in run.data.metrics  # evaluated and recorded as any run
        (threshold,) = client.get_metric_history(run.info.run_id, "pruning_threshold")
        assert threshold.step == 1 and run.data.metrics["val_accuracy"] < threshold.value
    assert "sweeplab.pruned" not in runs[0.1].data.tags and epochs_logged(client, runs[0.1]) == 4
    pruned = [r for r in children if "sweeplab.pruned" in r.data.tags]
    assert parent.data.metrics["jobs_pruned"] == len(pruned) and parent.data.metrics["jobs_finished"] == 6
    best = client.get_run(parent.data.tags["sweeplab.best_run_id"])
    assert "sweeplab.pruned" not in best.data.tags
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "summary.csv", str(tmp_path)))
    statuses = dict(zip(table["lr"], table["status"], strict=True))
    assert {statuses[lr] for lr in (0.0003, 0.0002, 0.0001)} == {"PRUNED"} and statuses[0.1] == "FINISHED"
    assert "pruned after epoch 2" in done.stdout

    again = cli(*args)  # pruned jobs count as done
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped: this config already FINISHED") == 6
    assert len(experiment_runs(client)) == len(children) + 1
    assert "FINISHED earlier (pruned at epoch 2)" in again.stdout


@pytest.mark.slow
def test_joblib_jobs_judge_siblings_training_at_the_same_time(cli, client) -> None:
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "lr=0.1,0.05,0.0002,0.0001", *PRUNE,
            "pruner.min_runs=2", *TINY]  # fmt: skip
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = study(client)
    runs = by_lr(children)
    assert [("sweeplab.pruned" in runs[lr].data.tags) for lr in (0.1, 0.05, 0.0002, 0.0001)] == [
        False,
        False,
        True,
        True,
    ]
    assert parent.data.metrics["jobs_pruned"] == 2


@pytest.mark.slow
def test_a_sweep_on_a_tracking_server_prunes_from_the_servers_histories(tmp_path: Path) -> None:
    """Jobs that log to a server read their siblings there (in bulk, while the next epoch trains)."""
    with tracking_server(tmp_path) as server:
        args = ["-m", "lr=0.1,0.05,0.0002,0.0001", *PRUNE, "pruner.min_runs=2", *TINY]
        done = run_cli(args, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": server.url})
        assert done.returncode == 0, done.stderr[-3000:]
        client = MlflowClient(server.url)
        parent, children = study(client)
        runs = by_lr(children)
        assert [runs[lr].data.tags.get("sweeplab.pruned") for lr in (0.1, 0.05, 0.0002, 0.0001)] == [
            None,
            None,
            "2",
            "2",
        ]
        assert epochs_logged(client, runs[0.0001]) == 2 and parent.data.metrics["jobs_pruned"] == 2


@pytest.mark.slow
def test_optuna_sweeper_gets_the_pruned_jobs_value_and_goes_on(cli, client) -> None:
    require_module("hydra_plugins.hydra_optuna_sweeper")
    # Sampler seed 44 draws lr 0.1, 0.05, 0.03, then 0.0001 (checked with optuna's TPESampler).
    args = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=1", "hydra.sweeper.sampler.seed=44", "lr=choice(0.1,0.05,0.03,0.0001)",
            *PRUNE, "pruner.min_runs=2", *TINY]  # fmt: skip
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = study(client)
    runs = by_lr(children)
    assert sorted(runs) == [0.0001, 0.03, 0.05, 0.1]
    assert runs[0.0001].data.tags["sweeplab.pruned"] == "2" and "sweeplab.pruned" not in runs[0.1].data.tags
    assert parent.data.metrics["jobs_pruned"] >= 1 and parent.info.status == "FINISHED"
    assert "Best parameters:" in done.stdout + done.stderr  # Optuna finished its study


@pytest.mark.slow
def test_random_search_trials_are_pruned_by_the_same_rule(cli, client) -> None:
    space = ["tuner.space.optimizer=[sgd]", "tuner.space.activation=[relu]", "tuner.space.depth=2",
             "tuner.space.units=1", "tuner.space.lr=[0.001,1]"]  # fmt: skip
    args = ["tuner=random", "tuner.max_trials=4", "tuner.max_epochs=4", "tuner.patience=null", *space,
            "tuner.registered_model=null", *PRUNE, "pruner.min_runs=1", *TINY]  # fmt: skip
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    parent, trials = study(client)
    by_trial = {r.data.tags["sweeplab.trial_id"]: r for r in trials}
    assert "sweeplab.pruned" not in by_trial["0"].data.tags  # the baseline, first: nothing to compare with
    pruned = [r for r in trials if "sweeplab.pruned" in r.data.tags]
    assert pruned, [r.data.params["lr"] for r in trials]
    for run in pruned:
        assert epochs_logged(client, run) == int(run.data.tags["sweeplab.pruned"]) < 4
    assert parent.data.metrics["trials_pruned"] == len(pruned)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        (["pruner=median", "pruner.warmup_epochs=-1"], "pruner.warmup_epochs=-1"),
        (["pruner=median", "pruner.min_runs=0"], "pruner.min_runs=0"),
        (["pruner=median", "pruner.objective=bogus"], "pruner.objective=bogus"),
        (["pruner=percentile", "pruner.percentile=101"], "pruner.percentile=101"),
    ],
)
def test_bad_pruner_values_are_refused_in_one_line(cli, client, override: list[str], named: str) -> None:
    done = cli("-m", "lr=0.1,0.01", *override, *TINY)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert len(lines) == 1 and lines[0].startswith("sweeplab: error: job 1 (lr=0.1): ") and named in lines[0], lines
    assert experiment_runs(client) == []
