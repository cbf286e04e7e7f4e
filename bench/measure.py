"""Run one command in a fresh process and measure it: wall time, peak memory, output."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measurement:
    command: list[str]
    returncode: int
    wall_s: float
    peak_mb: float  # largest resident set of the process or of any child it waited for (ru_maxrss)
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output.strip().splitlines()[-lines:])


def measure(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 3600) -> Measurement:
    """Spawn `command` and reap it with wait4, which gives this child's own rusage (not all children's)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with tempfile.TemporaryFile(mode="w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        status, usage = _wait(proc, started + timeout)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return Measurement(command, proc.returncode, wall, peak, text)


def _wait(proc: subprocess.Popen, deadline: float) -> tuple[int, resource.struct_rusage]:
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return status, usage
        if time.perf_counter() > deadline:
            os.killpg(proc.pid, 9)
            _, status, usage = os.wait4(proc.pid, 0)
            return status, usage
        time.sleep(0.05)
