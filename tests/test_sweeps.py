"""Sweeps: `sweep.py -m` as one MLflow parent run with a child per job, resumable, parallel, checked up front.

Every sweep here is the real CLI in a subprocess, 1,000 images, 2 epochs, a fresh SQLite store.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import CONF_DIR, LIGHT, ROOT, experiment_runs, run_cli
from sweeplab.config import register_configs
from sweeplab.errors import ConfigError
from sweeplab.sweep import plan as sweeps
from sweeplab.sweep.launchers import check_launcher, job_threads, parallel_jobs
from sweeplab.tracking.context import NO_STUDY, StudyContext

TINY = ["data.limit=1000", "training.verbose=2", "tracking.log_model=false", *LIGHT]
LR_SWEEP = ["-m", "lr=0.001,0.01,0.1", "epochs=2", *TINY]
SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.yaml"))


def children(client: MlflowClient, parent_id: str) -> list:
    return [r for r in experiment_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent_id]


def parents(client: MlflowClient) -> list:
    return [r for r in experiment_runs(client) if "mlflow.parentRunId" not in r.data.tags]


def fresh_store(folder: Path) -> tuple[dict[str, str], MlflowClient]:
    (folder / "mlruns").mkdir(parents=True)
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    return {"MLFLOW_TRACKING_URI": uri}, MlflowClient(tracking_uri=uri)


# --- named sweeps and the up-front check (no training) ---------------------------------------------------


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_named_sweep_composes_every_job(path: Path) -> None:
    """Each sweeps/*.yaml is a MULTIRUN whose every job composes and validates; its command line on top."""
    lines = path.read_text().splitlines()
    assert lines[0] == "# @package _global_"
    assert f"python sweep.py -m sweeps={path.stem}" in "\n".join(lines[1:4])
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"sweeps={path.stem}"], return_hydra_config=True)
        sweep = sweeps.plan(cfg)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert sweep.axes and len(sweep.jobs) > 1
    assert len({job.config_hash for job in sweep.jobs}) == len(sweep.jobs), "two jobs train the same config"


def test_named_sweeps_shipped() -> None:
    assert {"lr", "optimizers", "architecture"} <= {p.stem for p in SWEEP_FILES}


@pytest.mark.slow
@pytest.mark.parametrize(("sweep", "named"), [("lr=0.1,-1", "lr=-1"), ("optimizer=sgd,bogus", "optimizer/bogus")])
def test_bad_job_refused_before_any_run(tmp_path: Path, sweep: str, named: str) -> None:
    env, client = fresh_store(tmp_path)
    done = run_cli(["-m", sweep, *TINY], cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "Warning" not in line and line.strip()]
    assert len(errors) == 1 and errors[0].startswith("sweeplab: error: job 2 ") and named in errors[0], errors
    assert experiment_runs(client) == []
    assert "Launching" not in done.stdout + done.stderr


def test_parallel_jobs_counts_what_runs_at_once() -> None:
    cpus = os.cpu_count() or 1
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    assert parallel_jobs(OmegaConf.create({"_target_": joblib, "n_jobs": 2}), 3) == 2
    assert parallel_jobs(OmegaConf.create({"_target_": joblib, "n_jobs": 8}), 3) == 3
    assert parallel_jobs(OmegaConf.create({"_target_": joblib, "n_jobs": -1}), 100) == cpus
    assert parallel_jobs(OmegaConf.create({"_target_": local}), 3) == 3
    assert parallel_jobs(OmegaConf.create({"_target_": basic}), 3) == 1


def test_a_job_in_slurm_uses_the_cores_slurm_gave(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the node's: Slurm's default one core per task, or what was asked, shared by parallel jobs."""
    slurm = OmegaConf.create({"_target_": "hydra_plugins.sweeplab_launchers.SlurmLauncher", "cpus_per_task": None})
    joblib = OmegaConf.create({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                               "n_jobs": 2})  # fmt: skip
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "4")
    assert job_threads(3, slurm) == 4 and job_threads(3, joblib) == 2
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert job_threads(3, slurm) == 1
    monkeypatch.delenv("SLURM_JOB_ID")
    assert job_threads(3, slurm) is None  # outside Slurm, one job at a time: every core


# --- a sequential lr sweep: killed half way, resumed, run again ------------------------------------------


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The same 3-job lr sweep three times: SIGTERM during job 2, then to the end, then once more."""
    folder = tmp_path_factory.mktemp("lr_sweep")
    env, client = fresh_store(folder)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    log = folder / "killed.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "sweep.py"), *LR_SWEEP],
            cwd=folder,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while "sweeplab: job 2/3" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        killed_rc = proc.wait(timeout=120)
    killed = {"rc": killed_rc, "output": log.read_text(), "runs": experiment_runs(client)}
    resumed = run_cli(LR_SWEEP, cwd=folder, env=env)
    after_resume = experiment_runs(client)
    again = run_cli(LR_SWEEP, cwd=folder, env=env)
    yield {
        "client": client,
        "folder": folder,
        "killed": killed,
        "resumed": resumed,
        "after_resume": after_resume,
        "again": again,
    }


@pytest.mark.slow
def test_killed_sweep_leaves_no_running_runs(lr_sweep: dict) -> None:
    killed = lr_sweep["killed"]
    assert killed["rc"] != 0, killed["output"]
    statuses = {r.info.run_name: r.info.status for r in killed["runs"]}
    assert "RUNNING" not in statuses.values(), statuses
    (parent,) = [r for r in killed["runs"] if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "KILLED"
    assert statuses["mlp 300-100 relu sgd lr=0.001 seed=42"] == "FINISHED"
    # Job 3 never trained: NOT RUN, or KILLED at its start when the signal's exception was swallowed in job 2.
    assert re.search(r"sweeplab: job 3 (NOT RUN|KILLED)", killed["output"]), killed["output"][-3000:]


@pytest.mark.slow
def test_resumed_sweep_runs_only_what_is_missing(lr_sweep: dict) -> None:
    resumed, client = lr_sweep["resumed"], lr_sweep["client"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done_before = {float(r.data.params["lr"]) for r in lr_sweep["killed"]["runs"] if r.info.status == "FINISHED"}
    assert 0.001 in done_before and 0.1 not in done_before
    for num, lr in enumerate([0.001, 0.01, 0.1], start=1):
        assert (f"job {num}/3 skipped" in resumed.stdout) == (lr in done_before), resumed.stdout[-3000:]
    (parent,) = parents(client)  # the killed sweep's parent, reopened
    kids = children(client, parent.info.run_id)
    finished = [r for r in kids if r.info.status == "FINISHED"]
    assert sorted(float(r.data.params["lr"]) for r in finished) == [0.001, 0.01, 0.1]
    assert len({r.data.tags["sweeplab.config_hash"] for r in finished}) == 3
    for run in finished:
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [0, 1]
        assert run.data.params["epochs"] == "2"


@pytest.mark.slow
def test_parent_holds_the_sweep_summary(lr_sweep: dict) -> None:
    client = lr_sweep["client"]
    (parent,) = parents(client)
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name.startswith("sweep lr ")
    assert parent.data.params["sweep.lr"] == "0.001,0.01,0.1" and parent.data.params["sweep.jobs"] == "3"
    assert parent.data.metrics["jobs_finished"] == 3 and parent.data.metrics["jobs_failed"] == 0
    finished = [r for r in children(client, parent.info.run_id) if r.info.status == "FINISHED"]
    best = max(finished, key=lambda r: r.data.metrics["val_accuracy"])
    assert parent.data.tags["sweeplab.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(best.data.metrics["val_accuracy"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.csv", "summary.md", "val_accuracy.png", "trials.png"} <= artifacts
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "summary.csv", str(lr_sweep["folder"])))
    assert list(table["val_accuracy"]) == sorted(table["val_accuracy"], reverse=True)
    assert set(table["status"]) <= {"FINISHED", "SKIPPED"} and len(table) == 3
    assert set(table["run_id"]) == {r.info.run_id for r in finished}
    assert {"job", "lr", "status", "val_accuracy", "test_accuracy", "duration_s", "run_id"} <= set(table.columns)
    # summary.md is the same table, row for row (not only a file of that name).
    md = Path(client.download_artifacts(parent.info.run_id, "summary.md", str(lr_sweep["folder"]))).read_text()
    header, rule, *rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.splitlines()]
    assert header == list(table.columns) and set(rule) == {"---"} and len(rows) == len(table)
    for row, (_, expected) in zip(rows, table.iterrows(), strict=True):
        cells = dict(zip(header, row, strict=True))
        assert (cells["run_id"], cells["status"], float(cells["lr"])) == (
            expected["run_id"],
            expected["status"],
            expected["lr"],
        )
        assert float(cells["val_accuracy"] or "nan") == pytest.approx(expected["val_accuracy"], abs=1e-3, nan_ok=True)


@pytest.mark.slow
def test_identical_sweep_adds_no_runs(lr_sweep: dict) -> None:
    again = lr_sweep["again"]
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped: this config already FINISHED") == 3
    before = {r.info.run_id for r in lr_sweep["after_resume"]}
    assert {r.info.run_id for r in experiment_runs(lr_sweep["client"])} == before


# --- parallel launchers ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_joblib_jobs_log_complete_runs(tmp_path: Path) -> None:
    """Two processes write to one SQLite store at once: every epoch of every job is there. The workers were
    started and warmed up while the parent run was created (sweeplab.perf.prewarm), and the jobs still found
    their parent (passed through hydra.job.env_set, not the workers' environment at start). The third job
    runs in a worker that already ran one: it takes that job's compiled model (sweeplab.perf.compiled_cache).
    Asked for bars, the jobs writing to one terminal show whole lines, each with its job."""
    env, client = fresh_store(tmp_path)
    done = run_cli(
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "lr=0.02,0.05,0.1", "epochs=2",
         "hydra.sweep.dir=swept", *TINY, "training.verbose=1"],
        cwd=tmp_path,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "━" not in done.stdout and "\r" not in done.stdout
    for num, lr in enumerate(["0.02", "0.05", "0.1"], start=1):
        assert f"sweeplab: job {num}/3 (lr={lr}) starts, " in done.stdout, done.stdout[-3000:]
        assert re.search(rf"^job {num}/3 epoch 2/2: loss=", done.stdout, re.M), done.stdout[-3000:]
        assert re.search(rf"^sweeplab: job {num}/3 FINISHED in .* into the sweep", done.stdout, re.M)
    assert re.search(r"^sweeplab: job 1/3 FINISHED .*, about .* left$", done.stdout, re.M), done.stdout[-3000:]
    reports = [json.loads(p.read_text()) for p in sorted((tmp_path / "swept").glob("*/sweeplab_job.json"))]
    assert [r["warm_worker"] for r in reports] == [True, True, True]
    assert [r["reused_compiled"] for r in reports] == [False, False, True]
    (parent,) = parents(client)
    assert parent.info.status == "FINISHED"
    kids = children(client, parent.info.run_id)
    assert sorted(r.data.params["lr"] for r in kids) == ["0.02", "0.05", "0.1"]
    for run in kids:
        assert run.info.status == "FINISHED"
        assert run.data.params["training.threads"] == str(max(1, (os.cpu_count() or 1) // 2))
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [0, 1], metric
        assert "test_accuracy" in run.data.metrics


@pytest.mark.slow
def test_diverging_job_fails_alone_under_submitit(tmp_path: Path) -> None:
    """lr=10 (linear activations) turns the loss into NaN: that job ends FAILED at once, the other FINISHED, the
    sweep exits 1."""
    env, client = fresh_store(tmp_path)
    args = ["-m", "hydra/launcher=local", "lr=0.05,10", "activation=linear", "epochs=2", *TINY]
    done = run_cli(args, cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr[-3000:]  # README: a sweep with a failed job exits 1
    (parent,) = parents(client)
    kids = {r.data.params["lr"]: r for r in children(client, parent.info.run_id)}
    assert kids["0.05"].info.status == "FINISHED"
    diverged = kids["10.0"]
    assert diverged.info.status == "FAILED"
    assert diverged.data.tags["sweeplab.error"].startswith("DivergedError: loss became nan in epoch 1")
    assert client.get_metric_history(diverged.info.run_id, "val_accuracy") == []  # stopped in epoch 1
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["jobs_failed"] == 1 and parent.data.metrics["jobs_finished"] == 1
    assert "job 2 FAILED: DivergedError" in done.stderr


def test_sweeplabs_launchers_are_chosen_by_their_own_names(tmp_path: Path) -> None:
    """hydra/launcher=local is sweeplab's watched local launcher; Hydra's own submitit launchers, which leave
    the jobs running when the sweep is stopped, are refused in one line naming sweeplab's, before any run."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        local = compose(config_name="config", overrides=["hydra/launcher=local"], return_hydra_config=True)
        plain = compose(config_name="config", overrides=["hydra/launcher=submitit_local"], return_hydra_config=True)
    assert local.hydra.launcher._target_ == "hydra_plugins.sweeplab_launchers.LocalLauncher"
    check_launcher(local.hydra.launcher)
    with pytest.raises(ConfigError, match="use hydra/launcher=local"):
        check_launcher(plain.hydra.launcher)
    env, client = fresh_store(tmp_path)
    done = run_cli(["-m", "hydra/launcher=submitit_slurm", "lr=0.01,0.1", *TINY], cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "Warning" not in line and line.strip()]
    assert errors == [
        "sweeplab: error: hydra/launcher=submitit_slurm: Hydra's submitit launcher leaves the jobs running when "
        "the sweep is stopped; use hydra/launcher=slurm, sweeplab's launcher on the same plugin, which cancels them"
    ], errors
    assert experiment_runs(client) == []


def test_study_context_travels_through_the_environment() -> None:
    """What the sweep callback hands its jobs (hydra.job.env_set) is what a job reads back; nothing: no study."""
    study = StudyContext("abc123", 6, ("lr", "seed"), 1700000000.25)
    assert StudyContext.from_environ(study.environ()) == study
    assert StudyContext.from_environ({}) == StudyContext() == NO_STUDY
    assert StudyContext.from_environ(StudyContext("abc123").environ()) == StudyContext("abc123")


def test_slurm_launcher_config_composes() -> None:
    """conf/hydra/launcher/slurm.yaml extends submitit_slurm with sweeplab's watched launcher; a job asks for
    training.threads cores (null: Slurm's one), 4 GB; tests/test_slurm.py runs it on a real cluster."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
        threads = compose(
            config_name="config", overrides=["hydra/launcher=slurm", "training.threads=3"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.sweeplab_launchers.SlurmLauncher"
    assert launcher.cpus_per_task is None and launcher.mem_gb == 4 and launcher.timeout_min > 0
    assert threads.hydra.launcher.cpus_per_task == 3
