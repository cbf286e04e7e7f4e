"""What a user reads: a bar per epoch that never counts past its total in a terminal, one plain line per epoch
in a log file, no start-up noise from the libraries, and one link per run to the UI of the store it went to."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import LIGHT, ROOT, run_cli, tracking_server
from sweeplab import console
from sweeplab.tracking.ui import run_link

# 2,000 training images: 63 minibatches of 32, but 2 calls of fit (32 fused minibatches a step, 32 steps a call).
SMALL = ["data.limit=2000", "tracking.log_model=false", *LIGHT]
NOISE = ("absl::InitializeLog", "oneDNN", "cuInit", "cuda", "fontManager", "View run", "View experiment", "[absl]")


def test_epoch_and_job_lines_read_as_documented() -> None:
    logs = {"val_accuracy": 0.85, "loss": 0.41234, "accuracy": 0.8, "val_loss": 0.4, "learning_rate": 0.01}
    assert console.epoch_line(2, 10, logs, 2.14) == (
        "epoch 3/10: loss=0.4123 accuracy=0.8000 val_loss=0.4000 val_accuracy=0.8500 learning_rate=0.0100 (2.1 s)"
    )
    assert console.epoch_line(0, 1, {"loss": 1}, 0.5, "job 2/4").startswith("job 2/4 epoch 1/1: loss=1.0000")
    assert console.display_mode("1", lines_only=True) == console.LINES  # a parallel launcher's job: no bar
    assert console.display_mode("0", lines_only=True) == console.OFF
    assert console.display_mode("1") == console.BAR and console.display_mode("2") == console.LINES
    assert [console.duration(s) for s in (8.24, 185, 3720)] == ["8.2 s", "3 min 05 s", "1 h 02 min"]
    assert console.time_left(30.0, 2, 4) == 60.0 and console.time_left(30.0, 2, None) is None
    assert console.ended_line("job 2/6", "FINISHED", 12.0, "val_accuracy=0.8512", 30.0, 60.0) == (
        "sweeplab: job 2/6 FINISHED in 12.0 s: val_accuracy=0.8512; 30.0 s into the sweep, about 1 min 00 s left"
    )
    assert (
        console.started_line("trial 0 [1/3]", "mlp 300-100", 0.0, console.SEARCH)
        == "sweeplab: trial 0 [1/3] (mlp 300-100) starts, 0.0 s into the search"
    )


def test_a_heading_holds_for_its_block_and_its_callbacks_only() -> None:
    """The job's or trial's heading reaches the callback that shows epochs, nested labels join, and it ends
    with its block (also in another thread, which starts with none)."""
    from sweeplab.callbacks import epoch_progress

    assert console.heading() == console.Heading()
    with console.labelled("job 2/4", lines_only=True):
        with console.labelled("seed 42"):
            (shown,) = epoch_progress("1", 100, 10, 1)
            assert (shown.label, shown.mode) == ("job 2/4 seed 42", console.LINES)
            with ThreadPoolExecutor(1) as pool:
                assert pool.submit(console.heading).result() == console.Heading()
        assert console.heading() == console.Heading("job 2/4", True)
    assert console.heading() == console.Heading() and epoch_progress("2", 100, 10, 1)[0].label == ""


def test_links_go_to_the_ui_of_the_store_the_runs_went_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"  # the project's store, as make ui opens it
    assert run_link("1", "abc", local) == "http://127.0.0.1:5000/#/experiments/1/runs/abc (make ui)"
    server = "https://me:secret@mlflow.example.org:8443/"
    assert run_link("1", "abc", server) == "https://mlflow.example.org:8443/#/experiments/1/runs/abc"
    other = "sqlite:////data/other.db"
    assert (
        run_link("2", None, other)
        == f"http://127.0.0.1:5000/#/experiments/2/runs (mlflow ui --backend-store-uri {other})"
    )


def in_a_terminal(args: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """sweep.py with a pseudo-terminal as stdout and stderr, as a person at a terminal runs it."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "sweep.py"), *args], cwd=cwd, env=env, stdout=secondary, stderr=secondary
    )
    os.close(secondary)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif proc.poll() is not None:
                break
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_bar_never_counts_past_its_total(tmp_path: Path, store: str) -> None:
    rc, shown = in_a_terminal([*SMALL, "epochs=2"], tmp_path)
    assert rc == 0, shown[-3000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)  # Keras's bar: bold count, coloured bar
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) ━", plain)]
    assert counts and all(done <= total == 63 for done, total in counts), counts  # minibatches, not calls
    assert plain.count("63/63 ━") >= 2 and "Epoch 2/2" in plain  # each epoch's bar ends at its total
    links = re.findall(r"http://\S+", shown)
    assert len(links) == 1 and links[0].startswith("http://127.0.0.1:5000/#/experiments/"), links
    assert "(make ui)" in shown


@pytest.mark.slow
def test_a_run_written_to_a_log_file_has_one_line_per_epoch_and_no_noise(tmp_path: Path, store: str) -> None:
    log = tmp_path / "run.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLCONFIGDIR": str(tmp_path / "matplotlib")}  # no font cache
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as from a shell: importing JAX in this test process sets it to 1
    with log.open("w") as out:  # as `nohup python sweep.py ... > run.log 2>&1`
        done = subprocess.run(
            [sys.executable, str(ROOT / "sweep.py"), "data.limit=2000", "epochs=3", *LIGHT],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300,
        )  # fmt: skip
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    epochs = [line for line in text.splitlines() if re.match(r"epoch \d+/3: loss=\S+ accuracy=\S+ val_loss=", line)]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"], text[-3000:]
    assert all(line.endswith(" s)") and "val_accuracy=" in line for line in epochs)
    assert "\x1b[" not in text and "\r" not in text and "━" not in text
    assert [word for word in NOISE if word.lower() in text.lower()] == [], text[:3000]
    assert len(re.findall(r"http://", text)) == 1, text[-2000:]  # the run's one link


@pytest.mark.slow
def test_the_link_leads_to_the_tracking_server(tmp_path: Path) -> None:
    with tracking_server(tmp_path) as server:
        done = run_cli([*SMALL, "epochs=1"], cwd=tmp_path, env={"MLFLOW_TRACKING_URI": server.url})
    assert done.returncode == 0, done.stderr[-3000:]
    links = re.findall(r"http://\S+", done.stdout + done.stderr)
    assert len(links) == 1 and links[0].startswith(f"{server.url}/#/experiments/"), links
    assert "make ui" not in done.stdout and "View run" not in done.stdout
