"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd on 127.0.0.1, started as root.

Everything lives in temporary folders (its own munge key and socket, a slurm.conf for this host, state and
spool folders, free ports), reached through SLURM_CONF, so it touches neither /etc/slurm nor a cluster the
machine may run. Debian's packages: `apt-get install slurmctld slurmd slurm-client munge` (apt does not
start the daemons). The daemons are stopped by their PIDs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sweeplab.tracking.ui import free_port

COMMANDS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "srun")
PARTITION = "main"


@dataclass
class Cluster:
    """A running cluster: its slurm.conf and the environment that points the Slurm commands at it."""

    conf: Path
    folder: Path
    node: str
    cpus: int
    memory_mb: int
    munge_folder: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True) -> str:
        """A Slurm command against this cluster; its stdout. A command that fails raises (`check`): an empty
        answer from a dead controller must not read as "nothing queued"."""
        done = subprocess.run(command, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}: {done.stderr.strip()[-1000:]}")
        return done.stdout

    def queued(self) -> list[str]:
        """The cluster's jobs still queued or running, one line each (`squeue`)."""
        return self.run("squeue", "-h", "-r", "-o", "%i %T %r").splitlines()


def missing_part() -> str | None:
    """Why this machine cannot start the cluster, or None."""
    absent = [name for name in COMMANDS if shutil.which(name) is None]
    if absent:
        return (
            f"SLURM is not installed ({', '.join(absent)} missing: apt-get install slurmctld slurmd slurm-client munge)"
        )
    if os.geteuid() != 0:
        return "starting a test SLURM cluster needs root (munged runs as the munge user, slurmd as root)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no munge user (apt-get install munge creates it)"
    return None


def memory_mb() -> int:
    """A RealMemory slurmd accepts: under the machine's total (`free -m`)."""
    total_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line
    )
    return int(total_kb / 1024 * 0.9)


def slurm_conf(folder: Path, socket_path: Path, node: str, cpus: int, memory: int) -> str:
    ports = free_port(), free_port()
    return f"""\
ClusterName=sweeplab-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=30
SchedulerType=sched/backfill
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def start_munge(folder: Path) -> tuple[subprocess.Popen, Path]:
    """munged -F as the munge user, with its own key and socket in `folder` (which it must own)."""
    munge = pwd.getpwnam("munge")
    os.chown(folder, munge.pw_uid, munge.pw_gid)
    folder.chmod(0o755)  # munged wants its socket's folder reachable by every user
    key = folder / "munge.key"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}"], user="munge", check=True, capture_output=True)
    socket_path = folder / "munge.socket"
    process = subprocess.Popen(
        ["munged", "-F", f"--key-file={key}", f"--socket={socket_path}", f"--pid-file={folder}/munged.pid",
         f"--log-file={folder}/munged.log", f"--seed-file={folder}/munged.seed"],
        user="munge",
        stdout=subprocess.DEVNULL,
        stderr=(folder / "munged.out").open("w"),
        start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: socket_path.exists() or process.poll() is not None, 30)
    if not socket_path.exists():
        raise RuntimeError(f"munged did not start: {(folder / 'munged.out').read_text()[-1000:]}")
    return process, socket_path


def wait_for(ready, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.2)
    return False


def start_cluster(folder: Path) -> Cluster:
    """Start munged, slurmctld and slurmd for a cluster whose files live in `folder`; wait for its node."""
    node = socket.gethostname().split(".")[0]
    cpus = len(os.sched_getaffinity(0))
    # munged runs as the munge user, who cannot enter pytest's root-only temporary folders.
    munge_folder = Path(tempfile.mkdtemp(prefix="sweeplab-munge-"))
    cluster = Cluster(folder / "slurm.conf", folder, node, cpus, memory_mb(), munge_folder)
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    try:
        munged, socket_path = start_munge(cluster.munge_folder)
        cluster.processes.append(munged)
        cluster.conf.write_text(slurm_conf(folder, socket_path, node, cpus, cluster.memory_mb))
        env = {**os.environ, **cluster.env}
        for daemon in ("slurmctld", "slurmd"):
            log = (folder / f"{daemon}.out").open("w")
            command = [daemon, "-D"] + (["-N", node] if daemon == "slurmd" else [])
            cluster.processes.append(
                subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )
        idle = wait_for(lambda: cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False).strip() == "idle", 60)
        if not idle:
            logs = " | ".join(
                (folder / f"{d}.log").read_text()[-600:]
                for d in ("slurmctld", "slurmd")
                if (folder / f"{d}.log").exists()
            )
            raise RuntimeError(f"the test cluster's node did not become idle within 60 s: {logs}")
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """Cancel what is left, then stop the daemons by PID (slurmd, slurmctld, munged); remove munge's folder."""
    if cluster.conf.exists():
        cluster.run("scancel", "--full", "--user=root", check=False)
    for process in reversed(cluster.processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
    shutil.rmtree(cluster.munge_folder, ignore_errors=True)
