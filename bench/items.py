"""The bench's items, each measured in fresh processes with its variants alternating order between repeats."""

from __future__ import annotations

import re
import sys
import time

from bench.core import (
    ROOT,
    Bench,
    Row,
    alternate,
    mean,
    median,
    median_text,
    met,
    ratio,
    record,
    tutorial_accuracy,
    tutorial_epochs,
)


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
            record(results["tutorial"], m, tutorial_accuracy(m), tutorial_epochs(m))

    def sweeplab(r: int, backend: str) -> None:
        experiment = f"bench-baseline-{backend}-{r}"
        m = b.run(f"1 sweep.py backend={backend} seed={42 + r}", b.sweep(42 + r, experiment, f"backend={backend}"))
        if m.ok:
            record(results[backend], m, b.test_accuracies(experiment), b.epoch_times(experiment))
            results[backend]["fit"] += b.final_metric(experiment, "train_time")

    def untracked(r: int) -> None:
        args = b.sweeplab_args(42 + r, "unused")
        m = b.run(f"3 untracked seed={42 + r}", [sys.executable, "-m", "bench.untracked", *args])
        if m.ok:
            acc = [float(x) for x in re.findall(r"untracked: test_accuracy=([0-9.]+)", m.output)]
            record(results["untracked"], m, acc, [])
            results["untracked"]["fit"] += [float(x) for x in re.findall(r"train_time=([0-9.]+)", m.output)]

    for r in range(s.repeats):
        alternate(
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
            b.rows.append(Row(item, f"wall time, {label}", median_text(base["wall"]), "not available"))
            continue
        speedup = median(base["wall"]) / median(ours["wall"])
        b.rows.append(
            Row(
                item,
                f"wall time (s), {label}",
                median_text(base["wall"]),
                median_text(ours["wall"]),
                f"{speedup:.2f}x",
                f">= {target}x",
                met(speedup >= target),
            )
        )
        b.rows.append(
            Row(
                item,
                f"s/epoch (median), {label}",
                median_text(base["epoch"], 2),
                median_text(ours["epoch"], 2),
                ratio(base["epoch"], ours["epoch"]),
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
                met(peak <= 1.0),
            )
        )
        diff = 100 * (mean(ours["acc"]) - mean(base["acc"]))
        b.rows.append(
            Row(
                item,
                f"test accuracy (mean of {len(ours['acc'])}), {label}",
                f"{mean(base['acc']):.4f}",
                f"{mean(ours['acc']):.4f}",
                f"{diff:+.2f} pt",
                ">= -0.5 pt",
                met(diff >= -0.5),
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
        extra = 100 * (median(on["outside"]) - median(off["outside"])) / median(on["wall"])
        b.rows.append(
            Row(
                item,
                "outside fit (s): MLflow off vs on (share of the run)",
                median_text(off["outside"]),
                median_text(on["outside"]),
                f"{extra:+.1f}%",
                "<= 3%",
                met(extra <= 3),
            )
        )
    for key, label in (("wall", "end to end"), ("fit", "fit only (per-epoch logging)")):
        measure = f"{label} (s): MLflow off vs on"
        if on[key] and off[key]:
            overhead = 100 * (median(on[key]) - median(off[key])) / median(on[key])
            b.rows.append(
                Row(
                    item,
                    measure,
                    median_text(off[key]),
                    median_text(on[key]),
                    f"{overhead:+.1f}%",
                    "<= 3%",
                    met(overhead <= 3),
                )
            )
        else:
            b.rows.append(Row(item, measure, median_text(off[key]), "not available", "", "<= 3%"))


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
            acc_naive.extend(tutorial_accuracy(m))
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
        alternate(r, [lambda r=r: run_naive(r), *[lambda r=r, k=k: run_sweep(r, k) for k in backends]])
    item = f"2 sweep ({len(s.sweep_lrs)} lr x {s.sweep_epochs} ep)"
    for backend in ("tensorflow", "jax"):
        label = f"wall time (s): {len(s.sweep_lrs)} scripts vs sweep.py -m joblib backend={backend}"
        if backend not in backends:
            b.rows.append(Row(item, label, median_text(naive), "not run (--quick)", "", ">= 3.5x"))
            continue
        if not naive or not swept[backend]:
            b.rows.append(Row(item, label, median_text(naive), "not available", "", ">= 3.5x"))
            continue
        speedup = median(naive) / median(swept[backend])
        b.rows.append(
            Row(
                item,
                label,
                median_text(naive),
                median_text(swept[backend]),
                f"{speedup:.2f}x",
                ">= 3.5x",
                met(speedup >= 3.5),
            )
        )
        diff = 100 * (mean(acc_swept[backend]) - mean(acc_naive))
        b.rows.append(
            Row(
                item,
                f"test accuracy (mean of the jobs), backend={backend}",
                f"{mean(acc_naive):.4f}",
                f"{mean(acc_swept[backend]):.4f}",
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
                    met(m.wall_s < 10),
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


# -- item 5: what a pruning decision costs ------------------------------------------------------------------
def item_pruning(b: Bench) -> None:
    from bench.pruning import time_pruning

    siblings = 5 if b.settings.quick else 50
    item = f"5 pruning ({siblings} siblings, 20 epochs)"
    try:
        timing = time_pruning(b.store, b.work, siblings=siblings)
    except (OSError, RuntimeError) as err:
        b.rows.append(Row(item, "one decision (ms)", "", f"not available ({err})"))
        return
    for store, label in (("sqlite", "SQLite"), ("server", "a tracking server")):
        first, following = timing[store]
        b.rows.append(Row(item, f"first decision of a job on {label} (ms)", "", f"{first:.1f}"))
        b.rows.append(
            Row(item, f"one decision on {label} (ms)", "", f"{following:.1f}", "", "< 50 ms", met(following < 50))
        )


# -- item 6 (on request, --only 6): what pruning saves a sweep -------------------------------------------------
def _pruned_sweep(b: Bench, name: str, study: list[str], pruned: bool, epochs: int) -> tuple | None:
    """(wall seconds, (best lr, its val_accuracy)) of one sweep, or None when it failed."""
    from bench.pruning import PRUNE, best_of

    variant = "on" if pruned else "off"
    experiment = f"bench-prune-{name.split()[1]}-{variant}-{time.time_ns()}"
    args = [*b.sweeplab_args(42, experiment, epochs), "tracking.log_model=false", *study, *(PRUNE if pruned else [])]
    m = b.run(f"6 {name} pruner {variant}", [sys.executable, str(ROOT / "sweep.py"), "-m", *args])
    return (m.wall_s, best_of(b.client(), experiment)) if m.ok else None


def item_pruned_sweeps(b: Bench) -> None:
    """The 6-lr grid and a 12-trial Optuna study, each without and with pruner=median, alternating order."""
    from bench.pruning import LRS, OPTUNA

    epochs = b.settings.sweep_epochs * 2  # 20 on a full run
    for name, study in (("6-lr grid", [LRS]), ("12-trial optuna", OPTUNA)):
        results: dict[bool, list] = {False: [], True: []}
        for r in range(b.settings.repeats):
            for pruned in (False, True) if r % 2 == 0 else (True, False):
                results[pruned].append(_pruned_sweep(b, name, study, pruned, epochs))
        off, on = [x for x in results[False] if x], [x for x in results[True] if x]
        item = f"6 pruning, {name}, {epochs} epochs"
        if not (off and on):
            b.rows.append(Row(item, "wall time (s): off vs on", "not available", "not available"))
            continue
        share = median([w for w, _ in on]) / median([w for w, _ in off])
        b.rows.append(Row(item, "wall time (s): off vs on", median_text([w for w, _ in off]),
                          median_text([w for w, _ in on]), f"{share:.2f}x", "<= 0.8x", met(share <= 0.8)))  # fmt: skip
        (lr_off, acc_off), (lr_on, acc_on) = off[-1][1], on[-1][1]
        grid = "grid" in name  # a grid must find the same lr; a sampler's draws differ once values do
        b.rows.append(Row(item, "best lr (val_accuracy): off vs on", f"{lr_off:g} ({acc_off:.4f})",
                          f"{lr_on:g} ({acc_on:.4f})", "", "same lr" if grid else "",
                          met(lr_off == lr_on) if grid else ""))  # fmt: skip
