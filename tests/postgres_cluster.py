"""A real PostgreSQL cluster for the tests: initdb in a temporary folder, `pg_ctl start` on a free port of
127.0.0.1, one database; stopped with `pg_ctl stop` and its folder removed.

Debian's package: `apt-get install postgresql` (its binaries live in /usr/lib/postgresql/<version>/bin, not
on PATH; the package's own cluster is not used). PostgreSQL refuses to run as root: as root the cluster runs
as the postgres user, in a folder outside pytest's root-only temporary folders.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sweeplab.tracking.ui import free_port

DATABASE = "sweeplab"


@dataclass
class PgCluster:
    """A running cluster: its data folder, port and the SQLAlchemy URI of its database for MLflow."""

    folder: Path
    port: int
    bin_dir: Path
    user: str | None  # the user the server runs as (None: this process's)

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def bin_dir() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def missing_part() -> str | None:
    """Why this machine cannot start a cluster, or None."""
    if bin_dir() is None:
        return "PostgreSQL is not installed (no initdb nor pg_ctl: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and no postgres user to run PostgreSQL as (apt-get install postgresql makes it)"
    return None


def _run(cluster: PgCluster, *command: str, timeout: float = 120) -> None:
    """A PostgreSQL command as the cluster's user; a failure raises with its output."""
    done = subprocess.run(
        [str(cluster.bin_dir / command[0]), *command[1:]],
        user=cluster.user, cwd=cluster.folder, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exited with {done.returncode}: {(done.stdout + done.stderr)[-1500:]}")


def start_cluster() -> PgCluster:
    """initdb (trust logins, user postgres), start on a free local port, create the database."""
    import psycopg

    user = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="sweeplab-pg-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    cluster = PgCluster(folder, free_port(), bin_dir() or Path("/usr/bin"), user)
    try:
        _run(cluster, "initdb", "-D", str(folder / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {folder} -c fsync=off"
        _run(cluster, "pg_ctl", "start", "-w", "-t", "60", "-D", str(folder / "data"), "-l", str(folder / "server.log"),
             "-o", options)  # fmt: skip
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: PgCluster) -> None:
    """pg_ctl stop (fast: open connections are ended), then remove the folder."""
    if (cluster.folder / "data" / "postmaster.pid").exists():
        _run(cluster, "pg_ctl", "stop", "-m", "fast", "-w", "-D", str(cluster.folder / "data"))
    shutil.rmtree(cluster.folder, ignore_errors=True)
