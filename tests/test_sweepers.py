"""Any Hydra sweeper drives a study: Hydra's Optuna sweeper and a sweeper plugin written here.

Each study is the real CLI in a subprocess on a fresh SQLite store: one parent, one child per trial with
its sampled values as params, a summary.csv on the parent whose rows are the children.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import LIGHT, experiment_runs, require_module

TINY = ["data.limit=1000", "epochs=1", "training.verbose=2", "tracking.log_model=false", *LIGHT]
OPTUNA = ["hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "hydra.sweeper.sampler.seed=3"]

# A sweeper of our own, in a hydra_plugins package on the path: draws `draws` jobs from the listed values
# of each swept key with its own random generator and launches them one at a time.
PLUGIN = """
from dataclasses import dataclass
import random

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper


@dataclass
class DrawSweeperConf:
    _target_: str = "hydra_plugins.draw_sweeper.DrawSweeper"
    draws: int = 3  # not n_trials: sweeplab cannot know this sweeper's size
    seed: int = 0
    crash_after: int = -1  # raise an error of the sweeper's own after this many jobs


ConfigStore.instance().store(group="hydra/sweeper", name="draw", node=DrawSweeperConf, provider="test")


class DrawSweeper(Sweeper):
    def __init__(self, draws, seed, crash_after):
        self.draws, self.seed, self.crash_after = draws, seed, crash_after

    def setup(self, *, hydra_context, task_function, config):
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments):
        parser = OverridesParser.create()
        choices = {}
        fixed = []
        for override in parser.parse_overrides(arguments):
            if override.is_sweep_override():
                choices[override.get_key_element()] = list(override.sweep_string_iterator())
            else:
                fixed.append(override.input_line)
        draw = random.Random(self.seed)
        returns = []
        for num in range(self.draws):
            if num == self.crash_after:
                raise RuntimeError("the draw sweeper lost its random source")
            job = fixed + [f"{key}={draw.choice(values)}" for key, values in choices.items()]
            returns.append(self.launcher.launch([job], initial_job_idx=num)[0].return_value)
        print("DRAW RETURNS", returns)
        return returns
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> dict[str, str]:
    package = tmp_path / "plugins" / "hydra_plugins" / "draw_sweeper"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    return {"PYTHONPATH": str(tmp_path / "plugins")}


def study_runs(client: MlflowClient) -> tuple:
    runs = experiment_runs(client)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], children


def summary_of(client: MlflowClient, parent_id: str, folder: Path) -> pd.DataFrame:
    return pd.read_csv(client.download_artifacts(parent_id, "summary.csv", str(folder)))


def assert_summary_matches(table: pd.DataFrame, children: list, axes: list[str]) -> None:
    """One row per child run, each with that run's status, swept values and val_accuracy."""
    by_run = {r.info.run_id: r for r in children}
    assert sorted(table["run_id"]) == sorted(by_run), (table, list(by_run))
    for row in table.to_dict("records"):
        run = by_run[row["run_id"]]
        assert row["status"] == run.info.status
        assert row["val_accuracy"] == pytest.approx(run.data.metrics["val_accuracy"], abs=1e-4)
        for axis in axes:
            param = run.data.params["optimizer.name" if axis == "optimizer" else axis]
            if axis == "lr":
                assert float(row[axis]) == pytest.approx(float(param))
            else:
                assert str(row[axis]) == param


@pytest.mark.slow
def test_optuna_sweeper_samples_intervals_and_choices_into_one_study(cli, client, tmp_path: Path) -> None:
    require_module("hydra_plugins.hydra_optuna_sweeper")
    args = ["-m", *OPTUNA, "hydra.sweeper.n_trials=4", "lr=interval(0.001,0.3)", "optimizer=choice(sgd,adam)", *TINY]
    done = cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    # The plugin, written for Optuna 2, runs on Optuna 5: its deprecations and Optuna's INFO lines stay out.
    assert "Warning" not in done.stderr and "A new study created" not in done.stderr, done.stderr[-3000:]
    for num in range(1, 5):
        assert f"sweeplab: job {num}/4 (" in done.stdout
    parent, children = study_runs(client)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sweeplab.study_kind"] == "sweeper" and parent.data.tags["sweeplab.role"] == "study"
    assert parent.data.params["sweep.lr"] == "interval(0.001,0.3)" and parent.data.params["sweep.jobs"] == "4"
    assert len(children) == 4 and {r.info.status for r in children} == {"FINISHED"}
    lrs = [float(r.data.params["lr"]) for r in children]
    assert all(0.001 <= lr <= 0.3 for lr in lrs) and len(set(lrs)) == 4  # sampled, not a grid
    assert {r.data.params["optimizer.name"] for r in children} <= {"sgd", "adam"}
    assert parent.data.metrics["jobs_finished"] == 4 and parent.data.metrics["jobs_total"] == 4
    table = summary_of(client, parent.info.run_id, tmp_path)
    assert_summary_matches(table, children, ["lr", "optimizer"])
    best = max(children, key=lambda r: r.data.metrics["val_accuracy"])
    assert parent.data.tags["sweeplab.best_run_id"] == best.info.run_id

    again = cli(*args)  # the same command: the same study, every sampled config already FINISHED
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped: this config already FINISHED") == 4
    parent_again, children_again = study_runs(client)
    assert parent_again.info.run_id == parent.info.run_id and len(children_again) == 4


@pytest.mark.slow
def test_optuna_sweeper_on_joblib_with_a_failing_trial_goes_on(cli, client, tmp_path: Path) -> None:
    """A trial whose value cannot train fails alone, in one line, before training; Optuna records a failed
    trial and, with hydra.sweeper.max_failure_rate, goes on to the next batch; the study ends FAILED."""
    require_module("hydra_plugins.hydra_optuna_sweeper")
    args = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "hydra/sweeper/sampler=grid",
            "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", "hydra.sweeper.max_failure_rate=1.0",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "depth=choice(2,0)", *TINY]  # fmt: skip
    done = cli(*args)
    assert done.returncode == 1, done.stderr[-3000:]
    parent, children = study_runs(client)
    assert parent.info.status == "FAILED"
    table = summary_of(client, parent.info.run_id, tmp_path).set_index("depth")
    assert sorted(table.index) == [0, 2] and list(table.loc[[2, 0], "status"]) == ["FINISHED", "FAILED"]
    (finished,) = children
    assert table.loc[2, "run_id"] == finished.info.run_id and finished.data.params["depth"] == "2"
    assert table.loc[0, "note"].startswith("ConfigError: depth=0 is not allowed")
    assert parent.data.metrics["jobs_failed"] == 1 and parent.data.metrics["jobs_finished"] == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("sweeplab: error:")]
    assert len(errors) == 1 and "depth=0 is not allowed" in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_sweeper_plugin_of_our_own_drives_the_study(cli, client, tmp_path: Path, plugin_path) -> None:
    args = ["-m", "hydra/sweeper=draw", "hydra.sweeper.draws=3", "lr=0.01,0.03,0.1", "activation=relu,tanh", *TINY]
    done = cli(*args, env=plugin_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sweeplab: job 1 (" in done.stdout and "job 1/" not in done.stdout  # the plugin's size is unknown
    returns = [float(v) for v in done.stdout.split("DRAW RETURNS [", 1)[1].split("]", 1)[0].split(",")]
    parent, children = study_runs(client)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweeplab.study_name"] == "draw lr activation"
    table = summary_of(client, parent.info.run_id, tmp_path)
    drawn = {(r.data.params["lr"], r.data.params["activation"]) for r in children}
    assert len(table) == 3 and len(children) == len(drawn)  # a config drawn twice trains once
    assert set(table["status"]) <= {"FINISHED", "SKIPPED"}
    assert set(table["run_id"]) == {r.info.run_id for r in children}
    for row in table.to_dict("records"):
        run = next(r for r in children if r.info.run_id == row["run_id"])
        assert (str(row["lr"]), row["activation"]) == (run.data.params["lr"], run.data.params["activation"])
    # What each job returned to the sweeper is its run's val_accuracy.
    assert sorted(returns) == pytest.approx(sorted(table["val_accuracy"]), abs=1e-4)
    assert not any(math.isnan(v) for v in returns)


def test_optuna_stops_at_a_failure_by_default_and_says_why(cli, client, tmp_path: Path) -> None:
    """Optuna's default max_failure_rate (0) ends its study after the failed trial's batch: the parent ends
    FAILED with what ran, and the only lines are the job's error and the sweeper's."""
    require_module("hydra_plugins.hydra_optuna_sweeper")
    args = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.direction=maximize", "hydra/sweeper/sampler=grid",
            "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1", "lr=choice(-1)", *TINY]  # fmt: skip
    done = cli(*args)
    assert done.returncode == 1, done.stderr[-3000:]
    parent, children = study_runs(client)
    assert parent.info.status == "FAILED" and children == []
    errors = [line for line in done.stderr.splitlines() if line.startswith("sweeplab: error:")]
    assert len(errors) == 1 and errors[0].startswith("sweeplab: error: job 1/2: lr=-1.0 is not allowed"), errors
    assert "Traceback" not in done.stderr
    table = summary_of(client, parent.info.run_id, tmp_path)
    assert list(table["status"]) == ["FAILED"]


def test_optuna_database_storage_is_refused_in_one_line(cli, client) -> None:
    require_module("hydra_plugins.hydra_optuna_sweeper")
    done = cli("-m", *OPTUNA, "hydra.sweeper.storage=sqlite:///optuna.db", "lr=interval(0.001,0.3)", *TINY)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert len(lines) == 1 and lines[0].startswith("sweeplab: error: hydra.sweeper.storage=sqlite:///optuna.db:")
    assert experiment_runs(client) == []


def test_a_sweeper_that_fails_itself_fails_the_study_in_one_line(cli, client, plugin_path) -> None:
    done = cli("-m", "hydra/sweeper=draw", "hydra.sweeper.crash_after=1", "lr=0.01,0.1", *TINY, env=plugin_path)
    assert done.returncode == 1
    parent, (child,) = study_runs(client)
    assert child.info.status == "FINISHED"  # what ran before stays
    assert parent.info.status == "FAILED"
    assert (
        parent.data.tags["sweeplab.error"]
        == "the draw sweeper stopped: RuntimeError: the draw sweeper lost its random source"
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("sweeplab: error:")]
    assert errors == ["sweeplab: error: " + parent.data.tags["sweeplab.error"]]
    assert "Traceback" not in done.stderr


def test_a_minimizing_sweeper_is_refused_in_one_line(cli, client) -> None:
    require_module("hydra_plugins.hydra_optuna_sweeper")
    done = cli("-m", "hydra/sweeper=optuna", "lr=interval(0.001,0.3)", *TINY)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip() and "Warning" not in line]
    assert lines == [
        "sweeplab: error: hydra.sweeper.direction=minimize: sweeplab's jobs return val_accuracy (higher is "
        "better); add hydra.sweeper.direction=maximize"
    ]
    assert experiment_runs(client) == []
