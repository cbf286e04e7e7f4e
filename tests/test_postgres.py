"""MLflow's store on a real PostgreSQL cluster (tests/postgres_cluster.py): a pruned sweep, its resume, and
compare.py, on the database directly and through an `mlflow server` on it.

Pruning reads its siblings with raw SQL (sweeplab.compat.sibling_points) and compare.py reads histories in
bulk (compat.metric_points) where the store is SQL: these are the tests that show both work on PostgreSQL,
not only SQLite; through the server compare.py takes its path without SQL.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from postgres_cluster import PgCluster, missing_part, start_cluster, stop_cluster

from conftest import LIGHT, experiment_runs, require, require_module, run_cli
from sweeplab.tracking.ui import running_ui

pytestmark = pytest.mark.slow

# Two good learning rates, then two hopeless ones that the median of the first two stops after epoch 2.
LRS = (0.1, 0.05, 0.0002, 0.0001)
SWEEP = ["-m", f"lr={','.join(map(str, LRS))}", "pruner=median", "pruner.warmup_epochs=1", "pruner.min_runs=2",
         "data.limit=1000", "epochs=3", "training.verbose=0", "tracking.log_model=false", *LIGHT]  # fmt: skip


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    """A PostgreSQL cluster for this module; skipped where it cannot start (a failure under CI=true)."""
    require_module("psycopg")
    reason = missing_part()
    require(reason is None, reason or "")
    try:
        cluster = start_cluster()
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        require(False, f"the test PostgreSQL cluster did not start: {err}")
    yield cluster
    stop_cluster(cluster)


@pytest.fixture(scope="module")
def pg_sweep(postgres: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The pruned sweep on PostgreSQL, then the same command again."""
    folder = tmp_path_factory.mktemp("pg_sweep")
    env = {"MLFLOW_TRACKING_URI": postgres.uri}
    first = run_cli(SWEEP, cwd=folder, env=env)
    assert first.returncode == 0, first.stderr[-3000:] + postgres.log()
    client = MlflowClient(postgres.uri)
    runs = experiment_runs(client)
    again = run_cli(SWEEP, cwd=folder, env=env)
    return {"folder": folder, "first": first, "runs": runs, "again": again, "client": client}


def compare_rows(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """compare.py's table rows by group: the lines that start with one of the sweep's learning rates and a
    count of runs."""
    assert result.returncode == 0, result.stderr[-3000:]
    groups = {str(lr) for lr in LRS}
    return {
        words[0]: line
        for line in result.stdout.splitlines()
        if len(words := line.split()) > 1 and words[0] in groups and words[1].isdigit()
    }


def test_a_pruned_sweep_on_postgresql_resumes_without_retraining(pg_sweep: dict) -> None:
    """The siblings' SQL query runs on PostgreSQL: the two hopeless jobs stop after epoch 2; the rerun skips
    all four (pruned jobs count as done) and adds no run."""
    client, runs = pg_sweep["client"], pg_sweep["runs"]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {float(r.data.params["lr"]): r for r in runs if r is not parent}
    assert sorted(children) == sorted(LRS) and {r.info.status for r in children.values()} == {"FINISHED"}
    assert [children[lr].data.tags.get("sweeplab.pruned") for lr in LRS] == [None, None, "2", "2"]
    for lr in LRS:
        epochs = len(client.get_metric_history(children[lr].info.run_id, "val_accuracy"))
        assert epochs == (3 if lr >= 0.05 else 2), lr
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_pruned"] == 2

    again = pg_sweep["again"]
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped: this config already FINISHED") == len(LRS), again.stdout[-3000:]
    assert {r.info.run_id for r in experiment_runs(client)} == {r.info.run_id for r in runs}


def test_compare_reads_postgresql_directly_and_through_a_tracking_server(
    postgres: PgCluster, pg_sweep: dict, tmp_path: Path
) -> None:
    """compare.py --by lr on the database (bulk SQL) and on an `mlflow server` over it (REST): the same table."""
    folder = pg_sweep["folder"]
    direct = run_cli(["--by", "lr", "--out", str(tmp_path / "direct")], cwd=folder,
                     env={"MLFLOW_TRACKING_URI": postgres.uri}, script="compare.py")  # fmt: skip
    rows = compare_rows(direct)
    assert sorted(rows) == sorted(map(str, LRS)), direct.stdout[-3000:]
    for lr, run in {float(r.data.params["lr"]): r for r in pg_sweep["runs"] if "lr" in r.data.params}.items():
        assert rows[str(lr)].split()[1] == "1" and run.info.run_id in rows[str(lr)], rows[str(lr)]

    artifacts = ("--artifacts-destination", str(tmp_path / "artifacts"))
    with running_ui(postgres.uri, tmp_path / "server.log", kind="server", extra_args=artifacts) as server:
        served = run_cli(["--by", "lr", "--out", str(tmp_path / "served")], cwd=folder,
                         env={"MLFLOW_TRACKING_URI": server.url}, script="compare.py")  # fmt: skip
    assert compare_rows(served) == rows, served.stdout[-3000:]
    # The whole report, verdict and left-out runs included, but for where it was written.
    assert served.stdout.replace("served", "direct") == direct.stdout
