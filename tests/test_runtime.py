"""`sweeplab.cli.exit_quickly`, how sweep.py ends: what a normal exit guarantees still happens; the collector
paused while a job imports (`pause_gc`, `resume_gc`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = """
import atexit, logging, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from sweeplab.cli import exit_quickly

folder = Path(sys.argv[1])
logging.basicConfig(filename=folder / "job.log", level=logging.INFO)
logging.info("logged before the exit")
atexit.register(lambda: (folder / "atexit").write_text("ran"))
threading.Thread(target=lambda: (time.sleep(0.5), (folder / "thread").write_text("joined"))).start()
pool = ThreadPoolExecutor(1)  # its worker waits for the threading exit hook that tells it to stop
pool.submit(lambda: (folder / "pool").write_text("done"))
sys.stdout.write("no newline, still buffered")
exit_quickly(sys.argv[2] if not sys.argv[2].isdigit() else int(sys.argv[2]))
"""


@pytest.mark.parametrize("code, status", [("0", 0), ("3", 3), ("bad input", 1)])
def test_quick_exit_keeps_status_output_handlers_and_threads(tmp_path: Path, code: str, status: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == "no newline, still buffered"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"  # non-daemon threads finish first, as on sys.exit
    assert (tmp_path / "pool").read_text() == "done"
    assert "logged before the exit" in (tmp_path / "job.log").read_text()
    if status == 1:
        assert proc.stderr.strip() == "bad input"


GC_CHILD = """
import gc, weakref
from sweeplab.backend import fresh_start
from sweeplab.perf.process import pause_gc

pause_gc()
import keras  # TensorFlow: most of a job's imports
paused = not gc.isenabled()
fresh_start(1)

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made during the job: only the collector frees it
gone = weakref.ref(a)
del a, b
gc.collect()
print("RESULT", paused, gc.isenabled(), gc.get_freeze_count(), gone() is None)
"""


def test_gc_pauses_for_the_imports_and_collects_the_job(tmp_path: Path) -> None:
    """pause_gc holds the collector off while TensorFlow loads; the job's fresh_start freezes what was loaded
    and turns the collector back on, and cycles made during the job are still freed."""
    proc = subprocess.run([sys.executable, "-c", GC_CHILD], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, paused, enabled, frozen, freed = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT")).split()
    assert (paused, enabled, freed) == ("True", "True", "True")
    assert int(frozen) > 100_000  # TensorFlow's objects, left out of every later collection


ARENAS_CHILD = """
import ctypes, os, sys, threading

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "steady":
    from sweeplab.perf.process import steady_malloc
    steady_malloc()
cores = max(2, len(os.sched_getaffinity(0)))
count = 2 * cores + 1
together = threading.Barrier(count)
threads = [threading.Thread(target=lambda: (libc.malloc(4096), together.wait())) for _ in range(count)]
for thread in threads:  # all alive at once: glibc gives each an arena of its own, up to its limit
    thread.start()
for thread in threads:
    thread.join()
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, out)
libc.fclose(out)
arenas = open(sys.argv[2]).read().count("<heap nr=")
print("within" if arenas <= cores else "beyond")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize("mode, arenas", [("glibc", "beyond"), ("steady", "within")])
def test_steady_malloc_keeps_one_arena_per_core(tmp_path: Path, mode: str, arenas: str) -> None:
    """Threads that allocate at the same time: glibc alone gives each an arena of its own (what grew a
    tracked run's memory epoch after epoch); with steady_malloc there are no more arenas than cores."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    proc = subprocess.run(
        [sys.executable, "-c", ARENAS_CHILD, mode, str(tmp_path / "malloc.xml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == arenas


def test_steady_malloc_passes_on_to_child_processes_and_yields_to_the_user() -> None:
    code = (
        "import os; from sweeplab.perf.process import steady_malloc; steady_malloc(); "
        "print(os.environ['MALLOC_ARENA_MAX'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    ours = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    theirs = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**env, "MALLOC_ARENA_MAX": "7"}
    )
    assert (ours.stdout.strip(), theirs.stdout.strip()) == (str(max(2, len(os.sched_getaffinity(0)))), "7")
