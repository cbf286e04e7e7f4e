"""`make mutants`: deliberate bugs in the places users trust most, each applied to a copy of the tree and
run against the tests that should catch it; prints killed or survived for each, and fails if one survives.

A mutant is one exact text replacement in one file (it must match once, so a refactor that moves the code
fails here loudly instead of testing nothing). The tests run in the copy (PYTHONPATH=<copy>/src), so the
checkout itself is never changed. docs/testing.md lists the mutants and why each test catches it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(".git", ".venv", "mlruns", "multirun", "outputs", "reports", "__pycache__", ".keras*")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # in the tree: src/sweeplab/... or the Makefile
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant(
        "bootstrap intervals not widened for few runs",
        "src/sweeplab/compare/stats.py",
        "    if n < 2 or level >= 1:\n        return level\n",
        "    if True:\n        return level\n",
        ("tests/test_compare_stats.py::test_intervals_are_expanded_for_few_seeds",),
    ),
    Mutant(
        "the p-value read from other percentiles than the interval (expansion left out)",
        "src/sweeplab/compare/stats.py",
        "    if n < 2:\n        return 1 - percentile\n",
        "    if True:\n        return 1 - percentile\n",
        ("tests/test_compare_stats.py::test_p_value_is_below_alpha_exactly_when_the_interval_excludes_zero",),
    ),
    Mutant(
        "Holm's intervals not held at the level where the step-down stopped",
        "src/sweeplab/compare/stats.py",
        "            stopped = min(stopped, rank)\n",
        "            pass\n",
        ("tests/test_compare_stats.py::test_holm_adjusts_p_values_and_levels",),
    ),
    Mutant(
        "an interval and a p-value printed from a single run per group",
        "src/sweeplab/compare/verdict.py",
        "MIN_RUNS = 2\n",
        "MIN_RUNS = 1\n",
        ("tests/test_compare_stats.py::test_one_run_per_group_prints_no_interval_nor_p_value_and_says_why_once",),
    ),
    Mutant(
        "the refused-credentials check skipped",
        "src/sweeplab/tracking/store.py",
        "    check_access(uri, tracking.experiment, tracking.timeout)\n",
        "    pass\n",
        ("tests/test_auth_server.py::test_a_user_without_permission_on_the_experiment_is_refused",),
    ),
    Mutant(
        "a run stopped by a signal left RUNNING",
        "src/sweeplab/tracking/runs.py",
        "            mlflow.end_run(status)\n",
        "            pass\n",
        ("tests/test_reliability.py::test_a_signal_mid_run_ends_it_killed_keeping_its_epochs",),
    ),
    Mutant(
        "the seed aggregate taking the max instead of the mean",
        "src/sweeplab/seeds/aggregate.py",
        "    mean = float(finite.mean())\n",
        "    mean = float(finite.max())\n",
        ("tests/test_seeds.py::test_the_aggregate_of_seeds_is_mean_iqm_std_and_a_t_interval",),
    ),
    Mutant(
        "the pruning rule judging by the worst value so far",
        "src/sweeplab/pruning/rule.py",
        "    return max(finite) if maximize else min(finite)\n",
        "    return min(finite) if maximize else max(finite)\n",
        ("tests/test_pruning.py::test_losses_go_down_and_percentiles_count_from_the_best",),
    ),
    Mutant(
        "a resume training again a config that FINISHED",
        "src/sweeplab/tracking/runs.py",
        "    return found[0] if found else None\n",
        "    return None\n",
        ("tests/test_outcomes.py::test_a_resume_skips_to_the_finished_run_of_a_config_only",),
    ),
    Mutant(
        "a resume skipping a config that did not finish",
        "src/sweeplab/tracking/runs.py",
        " = '{identity}' and attributes.status = 'FINISHED'\",",
        " = '{identity}'\",",
        ("tests/test_outcomes.py::test_a_resume_skips_to_the_finished_run_of_a_config_only",),
    ),
    Mutant(
        "a pruned job counted as fully trained",
        "src/sweeplab/sweep/summary.py",
        "    if status == FINISHED and tags.PRUNED in labels:\n",
        "    if False:\n",
        ("tests/test_outcomes.py::test_a_sweeps_summary_counts_pruned_and_failed_jobs_and_picks_the_best",),
    ),
    Mutant(
        "the best job picked by the lowest value",
        "src/sweeplab/sweep/summary.py",
        "ascending=[not objective.maximize, True]",
        "ascending=[objective.maximize, True]",
        ("tests/test_outcomes.py::test_a_sweeps_summary_counts_pruned_and_failed_jobs_and_picks_the_best",),
    ),
    Mutant(
        "a study's parent closed FINISHED with failed jobs",
        "src/sweeplab/tracking/studies.py",
        "    return FAILED if statuses - set(DONE) else FINISHED\n",
        "    return FINISHED\n",
        ("tests/test_outcomes.py::test_a_study_with_a_failed_job_ends_failed",),
    ),
    Mutant(
        "jobs logging one dataset at once not retrying the store's unique key",
        "src/sweeplab/tracking/artifacts.py",
        'if "unique constraint" not in str(err).lower() or attempt == 2:',
        "if True:",
        ("tests/test_train.py::test_jobs_that_start_together_all_log_their_dataset",),
    ),
    Mutant(
        "input refused before any work exiting 1 instead of 2",
        "src/sweeplab/errors.py",
        "    exit_status = 2  # refused before any work; 1 is for work that started and failed\n",
        "    exit_status = 1\n",
        ("tests/test_reliability.py::test_bad_input_is_refused_in_one_line_before_any_work[lr=-1]",),
    ),
    Mutant(
        "a diverged run exiting 2 as if refused before any work",
        "src/sweeplab/errors.py",
        'the run cannot recover (it ends FAILED, the sweep goes on)."""\n\n    exit_status = 1\n',
        'the run cannot recover (it ends FAILED, the sweep goes on)."""\n',
        ("tests/test_reliability.py::test_a_diverging_run_stops_at_once_and_fails",),
    ),
    Mutant(
        "best_hyperparameters.json written from the worst trial",
        "src/sweeplab/tuning/summary.py",
        "    best_values = dict(record.best_trial.hyperparameters.values)\n",
        "    best_values = {k: record.table.iloc[-1].get(k, v)"  # the worst trial's values (units: the best's)
        " for k, v in record.best_trial.hyperparameters.values.items()}\n",
        ("tests/test_tuning.py::test_random_search_logs_every_trial_and_registers_the_best",),
    ),
    Mutant(
        "trials.csv in trial order instead of best first",
        "src/sweeplab/tuning/summary.py",
        '    table.to_csv(folder / "trials.csv", index=False)\n',
        '    table.sort_index().to_csv(folder / "trials.csv", index=False)\n',
        ("tests/test_tuning.py::test_random_search_logs_every_trial_and_registers_the_best",),
    ),
]

# Caught, but by tests too long for `make mutants` (minutes each: a sweep killed and resumed, a distributed
# search, the Makefile's servers over a freshly trained store); `tools/mutants.py --slow` adds them.
SLOW_MUTANTS = [
    Mutant(
        "summary.md listing the jobs worst first",
        "src/sweeplab/sweep/summary.py",
        "    files[1].write_text(markdown(table))\n",
        "    files[1].write_text(markdown(table.iloc[::-1]))\n",
        ("tests/test_sweeps.py::test_parent_holds_the_sweep_summary",),
    ),
    Mutant(
        "a distributed search's second worker leaving without running trials",
        "src/sweeplab/tuning/search.py",
        '    with study.owned() if who != "worker" else contextlib.nullcontext(), search_errors():\n',
        '    if who == "worker" and tuner.tuner_id != "tuner0":\n        return None\n'
        '    with study.owned() if who != "worker" else contextlib.nullcontext(), search_errors():\n',
        ("tests/test_tuning.py::test_distributed_search_logs_each_trial_once_under_one_parent",),
    ),
    Mutant(
        "make ui opening another store than the project's mlruns/",
        "Makefile",
        "--backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root",
        "--backend-store-uri sqlite:///mlflow.db --default-artifact-root",
        ("tests/test_make_targets.py::test_make_ui_serves_the_projects_store_on_ui_port",),
    ),
    Mutant(
        "make serve's default model the latest version instead of the champion",
        "Makefile",
        "MODEL ?= models:/fashion-mnist-mlp@champion\n",
        "MODEL ?= models:/fashion-mnist-mlp/latest\n",
        ("tests/test_make_targets.py::test_make_serve_serves_the_champion_by_default",),
    ),
    Mutant(
        "make serve ignoring MODEL=",
        "Makefile",
        "mlflow models serve -m $(MODEL) ",
        "mlflow models serve -m models:/fashion-mnist-mlp@champion ",
        ("tests/test_make_targets.py::test_make_serve_serves_the_model_given",),
    ),
]


def run(mutant: Mutant | None, tests: tuple[str, ...], work: Path) -> tuple[int, float, str]:
    """(pytest's exit status, seconds, last output line): `tests` run in a fresh copy of the tree with the
    mutant applied (None: as it is)."""
    copy = work / "tree"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ROOT, copy, ignore=IGNORED)
    if mutant is not None:
        target = copy / mutant.path
        text = target.read_text()
        if text.count(mutant.old) != 1:
            raise SystemExit(f"mutants: {mutant.name}: the code to change is not once in {mutant.path} (moved?)")
        target.write_text(text.replace(mutant.old, mutant.new))
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "CI": ""}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider", *tests],
        cwd=copy, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, time.monotonic() - started, lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only the mutants whose name contains this")
    parser.add_argument("--slow", action="store_true", help="also the slow mutants (minutes each)")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS + (SLOW_MUTANTS if args.slow else []) if args.k in m.name]
    survived = []
    with tempfile.TemporaryDirectory(prefix="sweeplab-mutants-") as tmp:
        # First the tests on the tree as it is: they must pass, or a "killed" would mean nothing.
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        status, seconds, last = run(None, tests, Path(tmp))
        if status != 0:
            sys.exit(f"mutants: the tests fail without any mutant ({seconds:.0f} s: {last})")
        print(f"mutants: the {len(tests)} tests pass on the tree as it is ({seconds:.0f} s)", flush=True)
        for mutant in chosen:
            status, seconds, last = run(mutant, mutant.tests, Path(tmp))
            killed = status == 1  # tests failed (an error collecting or running them is not a kill)
            print(f"{'killed  ' if killed else 'SURVIVED'} {mutant.name} ({seconds:.0f} s: {last})", flush=True)
            if not killed:
                survived.append(mutant.name)
    print(f"mutants: {len(chosen) - len(survived)} of {len(chosen)} killed")
    if survived:
        sys.exit(1)


if __name__ == "__main__":
    main()
