"""A shared tracking server with MLflow's basic-auth app, for real on 127.0.0.1: only who belongs gets in.

Without a login, with a wrong password, or without permission on the experiment, a run, a sweep or a search is
refused in one line naming the server and what to set, before any training and leaving nothing on the server;
with a login everything is recorded, and the password is found in nothing a run records nor in any output.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from conftest import imported_heavy, require_module, run_cli
from sweeplab.tracking.ui import UiServer, free_port, start_ui

ADMIN, ALICE, BOB = "admin", "alice", "bob"
SHARED = "shared"  # the admin's experiment: alice may edit it, bob is denied it
TINY = ["data.limit=500", "data.validation_size=500", "epochs=1", "training.verbose=0", "training.jit_compile=false"]
COMMANDS = {
    "run": [*TINY],
    "sweep": ["-m", "lr=0.01,0.1", *TINY],
    "search": ["tuner=random", "tuner.max_trials=2", *TINY],
}


class AuthServer:
    """A basic-auth `mlflow server`, its admin's client and its users' passwords."""

    def __init__(self, server: UiServer, passwords: dict[str, str]) -> None:
        self.server, self.url, self.passwords = server, server.url, passwords

    def login(self, user: str, password: str | None = None) -> dict[str, str]:
        """What a job's environment holds to log in as `user` (with its own password unless `password`)."""
        return {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_TRACKING_USERNAME": user,
                "MLFLOW_TRACKING_PASSWORD": password or self.passwords[user]}  # fmt: skip

    @contextlib.contextmanager
    def as_admin(self) -> Iterator[MlflowClient]:
        """A client logged in as the admin inside the block (MLflow reads the login from the environment at each
        request; this process's environment holds none outside, so the commands it starts have only their own)."""
        with pytest.MonkeyPatch.context() as env:
            for key, value in self.login(ADMIN).items():
                env.setenv(key, value)
            yield MlflowClient(tracking_uri=self.url)

    def runs(self, experiment: str) -> list:
        with self.as_admin() as client:
            found = client.get_experiment_by_name(experiment)
            return [] if found is None else client.search_runs([found.experiment_id])


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    require_module("flask_wtf")  # mlflow[auth]
    folder = tmp_path_factory.mktemp("auth-server")
    passwords = {user: f"{user}-pw-{secrets.token_hex(8)}" for user in (ADMIN, ALICE, BOB)}
    config = folder / "basic_auth.ini"
    config.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{folder / 'auth.db'}\n"
        f"admin_username = {ADMIN}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    with pytest.MonkeyPatch.context() as env:  # the server's own settings, inherited by its process only
        env.setenv("MLFLOW_AUTH_CONFIG_PATH", str(config))
        env.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(16))
        env.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", passwords[ADMIN])
        server = start_ui(f"sqlite:///{folder / 'server.db'}", folder / "server.log", port, kind="server",
                          extra_args=("--app-name", "basic-auth", "--artifacts-destination", str(folder / "artifacts"),
                                      "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"))  # fmt: skip
    try:
        found = AuthServer(server, passwords)
        with found.as_admin() as client:
            from mlflow.server import get_app_client

            users = get_app_client("basic-auth", tracking_uri=server.url)
            for user in (ALICE, BOB):
                users.create_user(user, passwords[user])
            shared = client.create_experiment(SHARED)
            users.grant_user_permission(ALICE, "experiment", shared, "EDIT")
            users.grant_user_permission(BOB, "experiment", shared, "DENY")
        yield found
    finally:
        server.stop(timeout=3)  # uvicorn drains its connections for seconds; the test is done with it


def refused(args: list[str], folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command, run with a list of what it imported (`folder`/imports.txt, for refused_in_one_line)."""
    (folder / "imports.txt").unlink(missing_ok=True)
    return run_cli(args, cwd=folder, env=env, timeout=120, imports=folder / "imports.txt")


def refused_in_one_line(done, folder: Path, *named: str) -> str:
    """The one stderr line of a command refused before any work: it never imported TensorFlow or Keras."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("sweeplab: error: ") and all(n in lines[0] for n in named), lines[0]
    assert imported_heavy(folder / "imports.txt") == []  # before any training: no Keras in the process at all
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_login_or_a_wrong_password_is_refused_in_one_line(auth_server: AuthServer, command: str, tmp_path) -> None:
    experiment = f"nobody-{command}"
    args = [*COMMANDS[command], f"tracking.experiment={experiment}"]
    anonymous = refused(args, tmp_path, {"MLFLOW_TRACKING_URI": auth_server.url})
    line = refused_in_one_line(
        anonymous, tmp_path, auth_server.url, "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
    )
    assert "requires a login" in line
    wrong = f"not-{auth_server.passwords[ALICE]}"
    mistyped = refused(args, tmp_path, auth_server.login(ALICE, wrong))
    line = refused_in_one_line(mistyped, tmp_path, auth_server.url, f"'{ALICE}'", "MLFLOW_TRACKING_PASSWORD")
    assert wrong not in mistyped.stdout + mistyped.stderr
    # Nothing half-made: no experiment, no parent run, no run left RUNNING.
    with auth_server.as_admin() as client:
        assert client.get_experiment_by_name(experiment) is None


@pytest.mark.parametrize("command", COMMANDS)
def test_a_user_without_permission_on_the_experiment_is_refused(
    auth_server: AuthServer, command: str, tmp_path
) -> None:
    before = {r.info.run_id for r in auth_server.runs(SHARED)}
    denied = refused([*COMMANDS[command], f"tracking.experiment={SHARED}"], tmp_path, auth_server.login(BOB))
    line = refused_in_one_line(denied, tmp_path, auth_server.url, f"'{BOB}'", f"'{SHARED}'", "HTTP 403")
    # Default: a user may read every experiment (default_permission = READ) but not log runs to the admin's.
    read_only = refused([*COMMANDS[command], "tracking.experiment=Default"], tmp_path, auth_server.login(BOB))
    line = refused_in_one_line(read_only, tmp_path, auth_server.url, f"'{BOB}'", "'Default'", "permission READ")
    assert "EDIT" in line
    assert {r.info.run_id for r in auth_server.runs(SHARED)} == before and auth_server.runs("Default") == []


def every_file(folder: Path) -> Iterator[Path]:
    return (path for path in folder.rglob("*") if path.is_file())


@pytest.mark.slow
def test_with_a_login_everything_is_recorded_and_the_password_nowhere(auth_server: AuthServer, tmp_path) -> None:
    password = auth_server.passwords[ALICE]
    env = auth_server.login(ALICE)
    # A one-job sweep: a parent and a child, its model logged too (a second job would record nothing new).
    sweep = run_cli(["-m", "lr=0.05", *TINY, f"tracking.experiment={SHARED}", "hydra.sweep.dir=swept"],
                    cwd=tmp_path, env=env, timeout=300)  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    runs = auth_server.runs(SHARED)
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 2  # the parent and its job

    downloads = tmp_path / "downloads"
    with auth_server.as_admin() as client:
        for run in runs:
            recorded = [*run.data.params.values(), *run.data.tags.values(), *run.data.metrics, run.info.run_name]
            assert not [value for value in recorded if password in str(value)], run.info.run_id
            folder = downloads / run.info.run_id
            folder.mkdir(parents=True)
            client.download_artifacts(run.info.run_id, "", str(folder))
        for model in client.search_logged_models([runs[0].info.experiment_id]):  # models are stored apart
            mlflow.artifacts.download_artifacts(model.artifact_location, dst_path=str(downloads / model.model_id))
    artifacts = list(every_file(downloads))
    assert any(p.name == "MLmodel" for p in artifacts) and any(p.name == "history.csv" for p in artifacts)
    logs = [p for p in every_file(tmp_path / "swept") if p.suffix in (".log", ".yaml", ".json")]
    assert any(p.suffix == ".log" for p in logs)
    for path in [*artifacts, *logs]:
        assert password.encode() not in path.read_bytes(), path
    assert password not in sweep.stdout + sweep.stderr


def test_a_password_written_into_tracking_uri_is_refused(tmp_path) -> None:
    secret = f"pw-{secrets.token_hex(6)}"
    done = refused([f"tracking.uri='http://alice:{secret}@127.0.0.1:1'", *TINY], tmp_path, {})
    refused_in_one_line(done, tmp_path, "tracking.uri=http://127.0.0.1:1", "MLFLOW_TRACKING_PASSWORD")
    assert secret not in done.stdout + done.stderr
