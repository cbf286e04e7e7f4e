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


MALLOC_CHILD = """
import ctypes, sys

class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "steady":
    from sweeplab.perf.process import steady_malloc
    steady_malloc()
size = 3_300_000  # a fused step's batch of 1,024 images in float32, about
libc.free(libc.malloc(size))  # glibc's own rule raises its mmap threshold to this size here
before = libc.mallinfo2().hblks
block = libc.malloc(size)
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize("mode, mapped", [("glibc", "0"), ("steady", "1")])
def test_steady_malloc_keeps_batch_sized_blocks_off_the_arenas(mode: str, mapped: str) -> None:
    """A batch-sized block freed and asked for again: glibc alone serves it from an arena that keeps it
    (what grew a tracked run's memory epoch after epoch); with steady_malloc it gets a mapping of its own."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    proc = subprocess.run(
        [sys.executable, "-c", MALLOC_CHILD, mode], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == mapped


def test_steady_malloc_passes_on_to_child_processes_and_yields_to_the_user() -> None:
    code = (
        "import os; from sweeplab.perf.process import steady_malloc; steady_malloc(); "
        "print(os.environ['MALLOC_MMAP_THRESHOLD_'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    ours = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    theirs = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "MALLOC_MMAP_THRESHOLD_": "65536"},
    )
    assert (ours.stdout.strip(), theirs.stdout.strip()) == ("1048576", "65536")
