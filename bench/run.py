"""`python -m bench [--quick]`: sweeplab against the plain Keras script it replaces, side by side.

Items (each measured in fresh processes, variants alternating order between repeats):
  1. the tutorial script vs `python sweep.py` on the baseline (and with backend=jax): wall time, seconds
     per epoch, peak memory, test accuracy;
  2. a 4-job learning-rate sweep: four tutorial scripts one after another vs `sweep.py -m` on joblib;
  3. tracking on vs off: the same run with and without MLflow;
  4. compare.py over an experiment of 1,000 runs (30-epoch histories), and `mlflow ui`'s response time.
Results print as a table and go to bench/results/ as Markdown and CSV.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
            print(_indent(result.tail()), flush=True)
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


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _tutorial_accuracy(m: Measurement) -> list[float]:
    return [float(x) for x in re.findall(r"tutorial: test_accuracy=([0-9.]+)", m.output)]


def _tutorial_epochs(m: Measurement) -> list[float]:
    return [float(x) for x in re.findall(r"tutorial: epoch \d+ time=([0-9.]+)", m.output)]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _alternate(repeat: int, variants: list[Callable[[], None]]) -> None:
    for variant in variants if repeat % 2 == 0 else reversed(variants):
        variant()


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


# -- item 1 and 3: the baseline run --------------------------------------------------------------------
def item_baseline(b: Bench) -> None:
    s = b.settings
    results: dict[str, dict[str, list]] = {
        k: {"wall": [], "peak": [], "acc": [], "epoch": [], "fit": []}
        for k in ("tutorial", "tensorflow", "jax", "untracked")
    }

    def tutorial(r: int) -> None:
        m = b.run(f"1 tutorial seed={42 + r}", b.tutorial(42 + r))
        if m.ok:
            _record(results["tutorial"], m, _tutorial_accuracy(m), _tutorial_epochs(m))

    def sweeplab(r: int, backend: str) -> None:
        experiment = f"bench-baseline-{backend}-{r}"
        m = b.run(f"1 sweep.py backend={backend} seed={42 + r}", b.sweep(42 + r, experiment, f"backend={backend}"))
        if m.ok:
            _record(results[backend], m, b.test_accuracies(experiment), b.epoch_times(experiment))
            results[backend]["fit"] += b.final_metric(experiment, "train_time")

    def untracked(r: int) -> None:
        args = b.sweeplab_args(42 + r, "unused")
        m = b.run(f"3 untracked seed={42 + r}", [sys.executable, "-m", "bench.untracked", *args])
        if m.ok:
            acc = [float(x) for x in re.findall(r"untracked: test_accuracy=([0-9.]+)", m.output)]
            _record(results["untracked"], m, acc, [])
            results["untracked"]["fit"] += [float(x) for x in re.findall(r"train_time=([0-9.]+)", m.output)]

    for r in range(s.repeats):
        _alternate(
            r,
            [
                lambda r=r: tutorial(r),
                lambda r=r: sweeplab(r, "tensorflow"),
                lambda r=r: untracked(r),
                lambda r=r: sweeplab(r, "jax"),
            ],
        )

    base = results["tutorial"]
    item = f"1 baseline ({s.epochs} ep)"
    for backend, target in (("tensorflow", 2.5), ("jax", 3.0)):
        ours = results[backend]
        label = f"sweep.py backend={backend}"
        if not ours["wall"] or not base["wall"]:
            b.rows.append(Row(item, f"wall time, {label}", _s(base["wall"]), "not available"))
            continue
        speedup = _median(base["wall"]) / _median(ours["wall"])
        b.rows.append(
            Row(
                item,
                f"wall time (s), {label}",
                _s(base["wall"]),
                _s(ours["wall"]),
                f"{speedup:.2f}x",
                f">= {target}x",
                _met(speedup >= target),
            )
        )
        b.rows.append(
            Row(
                item,
                f"s/epoch (median), {label}",
                _s(base["epoch"], 2),
                _s(ours["epoch"], 2),
                _ratio(base["epoch"], ours["epoch"]),
            )
        )
        peak = max(ours["peak"]) / max(base["peak"])
        b.rows.append(
            Row(
                item,
                f"peak memory (MB), {label}",
                f"{max(base['peak']):.0f}",
                f"{max(ours['peak']):.0f}",
                f"{peak:.2f}",
                "<= 1.00",
                _met(peak <= 1.0),
            )
        )
        diff = 100 * (_mean(ours["acc"]) - _mean(base["acc"]))
        b.rows.append(
            Row(
                item,
                f"test accuracy (mean of {len(ours['acc'])}), {label}",
                f"{_mean(base['acc']):.4f}",
                f"{_mean(ours['acc']):.4f}",
                f"{diff:+.2f} pt",
                ">= -0.5 pt",
                _met(diff >= -0.5),
            )
        )

    # Off: bench/untracked.py, the same training without MLflow. End to end counts everything tracking adds
    # (MLflow import, store, per-epoch logging, plots, the logged model); fit only counts the training loop.
    # Both carry the machine's epoch-to-epoch noise (seconds over 30 epochs); outside fit (wall minus fit, per
    # run) leaves the epochs out, so it resolves what tracking adds before and after training.
    on, off = results["tensorflow"], results["untracked"]
    item = f"3 tracking ({s.epochs} ep)"
    for side in (on, off):  # a wall time and a fit time per finished run, in the same order
        paired = len(side["wall"]) == len(side["fit"])
        side["outside"] = [wall - fit for wall, fit in zip(side["wall"], side["fit"], strict=True)] if paired else []
    if on["outside"] and off["outside"]:
        extra = 100 * (_median(on["outside"]) - _median(off["outside"])) / _median(on["wall"])
        b.rows.append(
            Row(
                item,
                "outside fit (s): MLflow off vs on (share of the run)",
                _s(off["outside"]),
                _s(on["outside"]),
                f"{extra:+.1f}%",
                "<= 3%",
                _met(extra <= 3),
            )
        )
    for key, label in (("wall", "end to end"), ("fit", "fit only (per-epoch logging)")):
        measure = f"{label} (s): MLflow off vs on"
        if on[key] and off[key]:
            overhead = 100 * (_median(on[key]) - _median(off[key])) / _median(on[key])
            b.rows.append(
                Row(
                    item,
                    measure,
                    _s(off[key]),
                    _s(on[key]),
                    f"{overhead:+.1f}%",
                    "<= 3%",
                    _met(overhead <= 3),
                )
            )
        else:
            b.rows.append(Row(item, measure, _s(off[key]), "not available", "", "<= 3%"))


def _record(into: dict[str, list], m: Measurement, acc: list[float], epochs: list[float]) -> None:
    into["wall"].append(m.wall_s)
    into["peak"].append(m.peak_mb)
    into["acc"] += acc
    into["epoch"] += epochs


def _s(values: list[float], digits: int = 1) -> str:
    if not values:
        return "not available"
    return f"{_median(values):.{digits}f}"


def _ratio(base: list[float], ours: list[float]) -> str:
    return f"{_median(base) / _median(ours):.2f}x" if base and ours else ""


# -- item 2: a 4-job sweep -----------------------------------------------------------------------------
def item_sweep(b: Bench) -> None:
    s = b.settings
    naive: list[float] = []
    swept: dict[str, list[float]] = {"tensorflow": [], "jax": []}
    acc_naive: list[float] = []
    acc_swept: dict[str, list[float]] = {"tensorflow": [], "jax": []}

    def run_naive(r: int) -> None:
        started = time.perf_counter()
        for lr in s.sweep_lrs:
            m = b.run(f"2 naive lr={lr}", b.tutorial(42 + r, lr=lr, epochs=s.sweep_epochs))
            if not m.ok:
                return
            acc_naive.extend(_tutorial_accuracy(m))
        naive.append(time.perf_counter() - started)

    def run_sweep(r: int, backend: str) -> None:
        experiment = f"bench-sweep-{backend}-{r}"
        args = [
            *b.sweeplab_args(42 + r, experiment, epochs=s.sweep_epochs),
            "lr=" + ",".join(str(lr) for lr in s.sweep_lrs),
            f"backend={backend}",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "training.threads=1",
            "hydra.sweep.dir=multirun",
        ]
        m = b.run(f"2 sweep.py -m joblib backend={backend}", [sys.executable, str(ROOT / "sweep.py"), "-m", *args])
        accs = b.test_accuracies(experiment)
        if m.ok and len(accs) >= len(s.sweep_lrs):
            swept[backend].append(m.wall_s)
            acc_swept[backend].extend(accs)

    # The quick run leaves the JAX sweep out (item 1 already runs JAX) to stay short.
    backends = ("tensorflow",) if s.quick else ("tensorflow", "jax")
    for r in range(max(1, s.repeats // 2)):
        _alternate(r, [lambda r=r: run_naive(r), *[lambda r=r, k=k: run_sweep(r, k) for k in backends]])
    item = f"2 sweep ({len(s.sweep_lrs)} lr x {s.sweep_epochs} ep)"
    for backend in ("tensorflow", "jax"):
        label = f"wall time (s): {len(s.sweep_lrs)} scripts vs sweep.py -m joblib backend={backend}"
        if backend not in backends:
            b.rows.append(Row(item, label, _s(naive), "not run (--quick)", "", ">= 3.5x"))
            continue
        if not naive or not swept[backend]:
            b.rows.append(Row(item, label, _s(naive), "not available", "", ">= 3.5x"))
            continue
        speedup = _median(naive) / _median(swept[backend])
        b.rows.append(
            Row(item, label, _s(naive), _s(swept[backend]), f"{speedup:.2f}x", ">= 3.5x", _met(speedup >= 3.5))
        )
        diff = 100 * (_mean(acc_swept[backend]) - _mean(acc_naive))
        b.rows.append(
            Row(
                item,
                f"test accuracy (mean of the jobs), backend={backend}",
                f"{_mean(acc_naive):.4f}",
                f"{_mean(acc_swept[backend]):.4f}",
                f"{diff:+.2f} pt",
            )
        )


# -- item 4: comparing many runs -----------------------------------------------------------------------
def item_compare(b: Bench) -> None:
    from bench.fake_runs import make_experiment
    from bench.ui_timing import time_experiment_page

    n = b.settings.fake_runs
    item = f"4 compare ({n} runs)"
    name = "bench-compare"
    started = time.perf_counter()
    experiment_id = make_experiment(b.store, name, n)
    print(
        f"bench: 4 logged {n} runs with 30-epoch histories in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    script = ROOT / "compare.py"
    if script.is_file():
        m = b.run("4 compare.py", [sys.executable, str(script), "--by", "optimizer", "--experiment", name])
        if m.ok:
            b.rows.append(
                Row(
                    item,
                    "compare.py --by optimizer (s)",
                    "",
                    f"{m.wall_s:.1f}",
                    "",
                    "< 10 s",
                    _met(m.wall_s < 10),
                )
            )
        else:
            b.rows.append(Row(item, "compare.py --by optimizer (s)", "", "not available (failed)", "", "< 10 s"))
    else:
        b.rows.append(Row(item, "compare.py --by optimizer (s)", "", "not available (no compare.py)", "", "< 10 s"))
    try:
        timing = time_experiment_page(b.store, experiment_id, b.work)
    except (OSError, RuntimeError) as err:
        b.rows.append(Row(item, "mlflow ui experiment page (s)", "", f"not available ({err})"))
        return
    b.rows.append(Row(item, "mlflow ui: GET experiment page (s)", "", f"{timing['page_s']:.3f}"))
    b.rows.append(Row(item, "mlflow ui: runs/search, 100 runs (s)", "", f"{timing['search_s']:.3f}"))


# -- report --------------------------------------------------------------------------------------------
HEADER = ("item", "measure", "plain Keras / off", "sweeplab", "ratio", "target", "met")


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(vars(r).values()) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def write_results(rows: list[Row], header: str, quick: bool) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "quick" if quick else "bench"
    (RESULTS / f"{stem}.md").write_text(header + "\n\n" + markdown(rows) + "\n")
    with open(RESULTS / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(vars(r).values() for r in rows)
    return RESULTS / f"{stem}.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 images, 1 epoch, 20 fake runs")
    parser.add_argument("--repeats", type=int, help="repeats of the baseline items (default 2, quick 1)")
    parser.add_argument("--only", default="1,2,4", help="items to run, e.g. 1 (item 3 comes with item 1)")
    parser.add_argument("--epochs", type=int, help="epochs of items 1-3 (default 30 and 10 for the sweep)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.repeats:
        settings.repeats = args.repeats
    if args.epochs:
        settings.epochs = settings.sweep_epochs = args.epochs
    started = time.perf_counter()
    header = (
        f"sweeplab bench ({'quick' if settings.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M')}, on {machine()}"
    )
    print(header, flush=True)
    with tempfile.TemporaryDirectory(prefix="sweeplab-bench-") as tmp:
        work = Path(tmp)
        store = f"sqlite:///{work / 'mlflow.db'}"
        # Create the store (its schema migrations) once, as a project's store already exists before a run.
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=store).search_experiments()
        only = set(args.only.split(","))
        items = [
            item for number, item in (("1", item_baseline), ("2", item_sweep), ("4", item_compare)) if number in only
        ]
        benches = [Bench(settings, work, store) for _ in items]
        if settings.quick:
            # A smoke run's timings mean nothing: run the items side by side to keep it short.
            with ThreadPoolExecutor(len(items)) as pool:
                list(pool.map(lambda pair: pair[0](pair[1]), zip(items, benches, strict=True)))
        else:
            for item, bench in zip(items, benches, strict=True):
                item(bench)
    rows = [row for bench in benches for row in bench.rows]
    table = markdown(rows)
    path = write_results(rows, header, settings.quick)
    print("\n" + header + "\n\n" + table + f"\n\nbench: {time.perf_counter() - started:.0f} s; written to {path}")


if __name__ == "__main__":
    main()
