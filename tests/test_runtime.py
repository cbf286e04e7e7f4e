"""`sweeplab.cli.exit_quickly`, how sweep.py ends: what a normal exit guarantees still happens; the collector
paused while a job imports (`pause_gc`, `resume_gc`)."""

from __future__ import annotations

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
