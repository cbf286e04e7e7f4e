"""The bench's parts: its settings, a table row, and a Bench that runs commands in fresh processes and reads
their MLflow runs; small helpers for medians and ratios."""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Measurement, measure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SWEEP_LRS = (0.003, 0.01, 0.03, 0.1)


@dataclass
class Settings:
    epochs: int  # item 1 and 3: the baseline run
    sweep_epochs: int  # item 2: each job of the sweep
    limit: int | None  # training images (None: all 55,000)
    repeats: int
    fake_runs: int
    sweep_lrs: tuple[float, ...]
    quick: bool


FULL = Settings(epochs=30, sweep_epochs=10, limit=None, repeats=3, fake_runs=1000, sweep_lrs=SWEEP_LRS, quick=False)
# Smoke run: every row, tiny work (a 2-job sweep, so that it stays near a minute or two).
QUICK = Settings(epochs=1, sweep_epochs=1, limit=2000, repeats=1, fake_runs=20, sweep_lrs=SWEEP_LRS[:2], quick=True)


@dataclass
class Row:
    item: str
    measure: str
    baseline: str
    sweeplab: str
    ratio: str = ""
    target: str = ""
    met: str = ""


@dataclass
class Bench:
    settings: Settings
    work: Path
    store: str
    rows: list[Row] = field(default_factory=list)
    tracked: list[Measurement] = field(default_factory=list)  # item 1's sweeplab runs, reused by item 3

    # -- processes -------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
        return {
            "PYTHONPATH": path.rstrip(os.pathsep),
            "MLFLOW_TRACKING_URI": self.store,
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }

    def run(self, label: str, command: list[str], env: dict[str, str] | None = None) -> Measurement:
        folder = Path(tempfile.mkdtemp(prefix=re.sub(r"\W+", "-", label) + "-", dir=self.work))
        print(f"bench: {label} ...", end=" ", flush=True)
        result = measure(command, cwd=folder, env={**self.env(), **(env or {})})
        state = "ok" if result.ok else f"FAILED (exit {result.returncode})"
        print(f"{result.wall_s:.1f} s, {result.peak_mb:.0f} MB, {state}", flush=True)
        if not result.ok:
            print(indent(result.tail()), flush=True)
        return result

    def tutorial(self, seed: int, lr: float = 0.01, epochs: int | None = None) -> list[str]:
        args = [
            sys.executable,
            str(ROOT / "bench" / "tutorial.py"),
            "--epochs",
            str(epochs or self.settings.epochs),
            "--lr",
            str(lr),
            "--seed",
            str(seed),
        ]
        return args + (["--limit", str(self.settings.limit)] if self.settings.limit else [])

    def sweeplab_args(self, seed: int, experiment: str, epochs: int | None = None) -> list[str]:
        args = [
            f"epochs={epochs or self.settings.epochs}",
            f"seed={seed}",
            f"tracking.experiment={experiment}",
            "training.verbose=2",
        ]
        return args + ([f"data.limit={self.settings.limit}"] if self.settings.limit else [])

    def sweep(self, seed: int, experiment: str, *extra: str) -> list[str]:
        return [sys.executable, str(ROOT / "sweep.py"), *self.sweeplab_args(seed, experiment), *extra]

    # -- results ---------------------------------------------------------------------------------------
    def client(self):  # noqa: ANN201 - MlflowClient, imported late so that --help stays fast
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.store)

    def experiment_runs(self, experiment: str) -> list:
        exp = self.client().get_experiment_by_name(experiment)
        return [] if exp is None else self.client().search_runs([exp.experiment_id], max_results=5000)

    def epoch_times(self, experiment: str) -> list[float]:
        client = self.client()
        return [
            m.value
            for r in self.experiment_runs(experiment)
            for m in client.get_metric_history(r.info.run_id, "epoch_time")
        ]

    def final_metric(self, experiment: str, key: str) -> list[float]:
        return [r.data.metrics[key] for r in self.experiment_runs(experiment) if key in r.data.metrics]

    def test_accuracies(self, experiment: str) -> list[float]:
        return [
            r.data.metrics["test_accuracy"]
            for r in self.experiment_runs(experiment)
            if "test_accuracy" in r.data.metrics and r.info.status == "FINISHED"
        ]


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def tutorial_accuracy(m: Measurement) -> list[float]:
    return [float(x) for x in re.findall(r"tutorial: test_accuracy=([0-9.]+)", m.output)]


def tutorial_epochs(m: Measurement) -> list[float]:
    return [float(x) for x in re.findall(r"tutorial: epoch \d+ time=([0-9.]+)", m.output)]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def alternate(repeat: int, variants: list[Callable[[], None]]) -> None:
    for variant in variants if repeat % 2 == 0 else reversed(variants):
        variant()


def met(ok: bool) -> str:
    return "yes" if ok else "NO"


def record(into: dict[str, list], m: Measurement, acc: list[float], epochs: list[float]) -> None:
    into["wall"].append(m.wall_s)
    into["peak"].append(m.peak_mb)
    into["acc"] += acc
    into["epoch"] += epochs


def median_text(values: list[float], digits: int = 1) -> str:
    if not values:
        return "not available"
    return f"{median(values):.{digits}f}"


def ratio(base: list[float], ours: list[float]) -> str:
    return f"{median(base) / median(ours):.2f}x" if base and ours else ""
