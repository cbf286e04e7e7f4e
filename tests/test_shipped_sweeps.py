"""Every named sweep in sweeps/ finishes, as a new user runs it: the real CLI on tiny data (1,000 images, one
epoch), exit 0, every job FINISHED, nothing on stderr. What diverges depends on the learning rate and the
optimizer, so those sweeps run every value they list; the architecture sweep runs its biggest models
(tests/test_sweeps.py composes and checks every job of every file). About 60 s of CPU in all."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

# 1,000 images: few enough to be quick, enough for lr=1.0 to turn the loss NaN in its first epoch, as on all.
TINY = ["data.limit=1000", "data.validation_size=100", "epochs=1", "training.verbose=0", "training.jit_compile=false",
        "tracking.log_model=false", "training.predict_samples=0"]  # fmt: skip
# Each named sweep, with what narrows it here (command-line values win over the file's), and its jobs then.
NARROWED = {
    "lr": ([], 4),  # every learning rate
    "optimizers": (["seed=0"], 5),  # every optimizer at its usual learning rate, one seed
    "architecture": (["depth=3", "width=500"], 2),  # the deepest and widest, relu and elu
}


def test_every_named_sweep_is_run_here() -> None:
    assert sorted(NARROWED) == sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(NARROWED))
def test_named_sweep_finishes(name: str, cli, tmp_path: Path) -> None:
    narrowed, jobs = NARROWED[name]
    done = cli("-m", f"sweeps={name}", *narrowed, *TINY, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"FINISHED: {jobs} of {jobs} jobs finished" in done.stdout, done.stdout[-3000:]
    assert done.stderr.strip() == "", done.stderr[-3000:]
