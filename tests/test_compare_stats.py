"""The comparison's statistics on hand-made runs, with answers known in advance: identical groups, clearly
separated ones, pairing by seed, Holm's correction, seeds needed, the expected best of k trials."""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from sweeplab.cli import compare as compare_cli
from sweeplab.compare import stats
from sweeplab.compare.analysis import compare_runs
from sweeplab.compare.report import write_report
from sweeplab.errors import CompareError


def runs_frame(groups: dict[str, list[float]], seeds: dict[str, list[int]] | None = None, **tags: str) -> pd.DataFrame:
    """FINISHED runs of param `opt`: group -> final val_accuracy of each run, seeds 0.. unless given."""
    rows = []
    for group, values in groups.items():
        for i, value in enumerate(values):
            seed = (seeds or {}).get(group, list(range(len(values))))[i]
            rows.append(
                {
                    "run_id": f"{group}-{i}",
                    "status": "FINISHED",
                    "params.opt": group,
                    "params.seed": str(seed),
                    "metrics.val_accuracy": value,
                    "metrics.test_accuracy": value,
                    "metrics.val_loss": 1 - value,
                    **{f"tags.{k}": v for k, v in tags.items()},
                }
            )
    return pd.DataFrame(rows)


NOISY = [0.81, 0.84, 0.79, 0.86, 0.83]


def test_identical_groups_are_not_distinguishable_and_p_is_one_half() -> None:
    comparison = compare_runs(runs_frame({"sgd": NOISY, "momentum": NOISY}), {}, "opt")
    result = comparison.comparisons[0]
    assert result.paired and result.p_improvement == 0.5
    assert (result.diff_ci_low, result.diff_ci_high) == (0.0, 0.0)  # [0, 0] does not exclude zero
    assert (result.p_ci_low, result.p_ci_high) == (0.5, 0.5) and result.p_value == 1.0
    assert not comparison.distinguishable and comparison.seeds_needed is None
    assert "not distinguishable with 5 seeds; the seeds needed cannot be estimated" in comparison.verdict
    assert "ties with" in comparison.verdict


def test_clearly_separated_groups_are_distinguishable_with_p_one() -> None:
    comparison = compare_runs(runs_frame({"adam": [v + 0.1 for v in NOISY], "sgd": NOISY}), {}, "opt")
    result = comparison.comparisons[0]
    assert comparison.winner == "adam" and comparison.runner_up == "sgd"
    assert result.p_improvement == 1.0 and (result.p_ci_low, result.p_ci_high) == (1.0, 1.0)
    assert result.diff_ci_low == pytest.approx(0.1) and result.diff_ci_high == pytest.approx(0.1)
    assert comparison.distinguishable and "adam beats runner-up sgd" in comparison.verdict
    assert "distinguishable with 5 seeds." in comparison.verdict


def test_pairing_by_seed_sees_a_small_steady_lead_that_unpaired_runs_hide() -> None:
    """A lead of 0.002 on every seed, under a seed-to-seed spread of 0.03: paired, it is certain."""
    paired = compare_runs(runs_frame({"a": [v + 0.002 for v in NOISY], "b": NOISY}), {}, "opt")
    assert paired.comparisons[0].paired and paired.distinguishable
    assert paired.improvement.loc["a", "b"] == 1.0
    other_seeds = {"a": [0, 1, 2, 3, 4], "b": [10, 11, 12, 13, 14]}
    unpaired = compare_runs(runs_frame({"a": [v + 0.002 for v in NOISY], "b": NOISY}, other_seeds), {}, "opt")
    result = unpaired.comparisons[0]
    assert not result.paired and not unpaired.distinguishable
    assert result.diff_ci_low < 0 < result.diff_ci_high
    a, b = np.array(NOISY) + 0.002, np.array(NOISY)
    mann_whitney = scipy_stats.mannwhitneyu(a, b).statistic / 25  # ties count 1/2, as ours
    assert result.p_improvement == pytest.approx(mann_whitney) == pytest.approx(unpaired.improvement.loc["a", "b"])
    assert result.seeds_needed > 5 and f"about {result.seeds_needed} seeds would be needed" in unpaired.verdict


@pytest.mark.parametrize("n", [1, 2, 4, 5, 7, 8, 10])
def test_iqm_is_scipys_trim_mean_of_a_quarter(n: int) -> None:
    values = np.random.default_rng(n).random(n)
    assert stats.iqm(values) == pytest.approx(scipy_stats.trim_mean(values, 0.25))


def test_holm_adjusts_p_values_and_levels() -> None:
    adjusted, levels = stats.holm([0.01, 0.04, 0.03])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    # The step-down stops at 0.03 (2 x 0.03 >= 0.05): 0.04 keeps that level, where its interval holds 0 too.
    assert levels == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2])
    assert stats.holm([0.01, 0.02, 0.04]) == (
        pytest.approx([0.03, 0.04, 0.04]),
        pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05]),
    )
    assert stats.holm([0.2]) == ([0.2], [0.95])
    groups = {
        "a": [v + 0.1 for v in NOISY],
        "b": NOISY,
        "c": [v + 0.099 for v in NOISY],
        "d": [v + 0.05 for v in NOISY],
    }
    comparison = compare_runs(runs_frame(groups), {}, "opt")
    by_other = {r.b: r for r in comparison.comparisons}
    assert [r.b for r in comparison.comparisons] == ["c", "d", "b"]  # by mean, the runner-up first
    assert sorted(r.level for r in comparison.comparisons) == pytest.approx([0.95, 1 - 0.05 / 2, 1 - 0.05 / 3])
    assert all(r.p_holm >= r.p_value for r in comparison.comparisons)
    assert by_other["b"].distinguishable and "Holm's correction over 3 comparisons" in comparison.verdict
    assert "Holm-adjusted p < 0.0001" in comparison.verdict  # every resample on one side


P_VALUE = re.compile(r"\bp [=<] ")  # a printed p-value: `p = 0.0123`, `p < 0.0001`, `Holm-adjusted p = ...`


def excludes_zero(low: float, high: float) -> bool:
    return bool(low > 0 or high < 0)


@pytest.mark.parametrize("n", [0, 2, 3, 5, 10])
def test_p_value_is_below_alpha_exactly_when_the_interval_excludes_zero(n: int) -> None:
    """Read off the same resamples at the same level (and expansion for n runs), p and interval agree."""
    rng = np.random.default_rng(n)
    disagreements = []
    for shift in np.linspace(0.0, 0.6, 61):
        samples = rng.normal(shift, 0.2, 2_000)
        p = stats.percentile_p_value(samples, n)
        for level in (0.5, 0.9, 0.95, 0.975, 1 - 0.05 / 3, 0.99):
            if (p < 1 - level) != excludes_zero(*stats.percentile_interval(samples, level, n)):
                disagreements.append((round(float(shift), 3), level, p))
    assert disagreements == []
    assert stats.percentile_p_value(np.zeros(100), n) == 1.0 and stats.percentile_p_value(np.ones(100), n) == 0.0


def test_the_printed_p_value_agrees_with_the_interval_beside_it() -> None:
    """The Optuna study of the issue: 3 sgd and 5 adam runs, unpaired, printed "95% CI -0.0156 to +0.7090 ...
    p = 0.0096" (a p-value from the plain percentiles beside an expanded interval). Now one reading of the
    resamples gives both, and with Holm's correction over several groups each adjusted p agrees with its
    interval at the adjusted level."""
    study = {"adam": [0.82, 0.85, 0.84, 0.12, 0.83], "sgd": [0.10, 0.62, 0.11]}
    groups = {**study, "rmsprop": [0.60, 0.70, 0.65, 0.68], "adagrad": [0.79, 0.80, 0.81, 0.845, 0.78]}
    for runs in (study, groups, {"a": [v + 0.1 for v in NOISY], "b": NOISY, "c": [v + 0.099 for v in NOISY]}):
        comparison = compare_runs(runs_frame(runs), {}, "opt")
        for r in comparison.comparisons:
            p = r.p_holm if len(comparison.comparisons) > 1 else r.p_value
            assert (p < stats.ALPHA) == excludes_zero(r.diff_ci_low, r.diff_ci_high), r
            assert r.distinguishable <= (p < stats.ALPHA)


def test_one_run_per_group_prints_no_interval_nor_p_value_and_says_why_once() -> None:
    """`sweep.py -m lr=0.001,0.01,0.1`: one run per group. An interval or a p-value from one run means nothing."""
    comparison = compare_runs(runs_frame({"0.1": [0.80], "0.01": [0.70], "0.001": [0.60]}), {}, "opt")
    assert [r.b for r in comparison.comparisons] == ["0.01", "0.001"]
    assert all(math.isnan(r.p_value) and math.isnan(r.diff_ci_low) for r in comparison.comparisons)
    assert "CI" not in comparison.verdict and not P_VALUE.search(comparison.verdict), comparison.verdict
    assert comparison.verdict.count("a single run has no spread to judge by") == 1, comparison.verdict
    assert "Holm" not in comparison.verdict and not comparison.distinguishable
    # A group with one run beside groups with several: figures only where both have a spread.
    mixed = compare_runs(runs_frame({"a": [v + 0.1 for v in NOISY], "b": NOISY, "c": [0.5]}), {}, "opt")
    lines = {r.b: line for r in mixed.comparisons for line in mixed.verdict.splitlines() if f"a vs {r.b}:" in line}
    assert "CI" in lines["b"] and P_VALUE.search(lines["b"]) and "CI" not in lines["c"]
    assert not P_VALUE.search(lines["c"])


def test_seeds_needed_is_the_normal_power_formula() -> None:
    z = scipy_stats.norm.ppf(0.975) + scipy_stats.norm.ppf(0.8)
    a, b = np.array([0.80, 0.82, 0.84, 0.81, 0.83]), np.array([0.80, 0.81, 0.83, 0.79, 0.83])
    d = a - b
    assert stats.seeds_needed(a, b, paired=True) == math.ceil(z**2 * d.var(ddof=1) / d.mean() ** 2)
    unpaired = math.ceil(z**2 * (a.var(ddof=1) + b.var(ddof=1)) / (a.mean() - b.mean()) ** 2)
    assert stats.seeds_needed(a, b, paired=False) == unpaired > 5
    assert stats.seeds_needed(a, a, paired=True) is None and stats.seeds_needed(a[:1], b[:1], False) is None


@pytest.mark.parametrize("values", [[0.3, 0.1, 0.4, 0.1, 0.5, 0.9], [0.7], [0.2, 0.2, 0.2, 0.8, 0.5]])
def test_expected_best_of_k_equals_the_mean_best_of_every_k_subset(values: list[float]) -> None:
    expected = stats.expected_max(np.array(values))
    for k in range(1, len(values) + 1):
        brute = np.mean([max(subset) for subset in itertools.combinations(values, k)])
        assert expected[k - 1] == pytest.approx(brute)
    assert expected[-1] == pytest.approx(max(values)) and expected[0] == pytest.approx(np.mean(values))


def test_the_bootstrap_interval_matches_scipys_and_is_reproducible() -> None:
    values = np.array([0.81, 0.84, 0.79, 0.86, 0.83, 0.85, 0.80, 0.82])
    rng = np.random.default_rng(0)
    ours = stats.percentile_interval(stats.resample_counts(np.zeros(8), rng) @ values / 8)
    theirs = scipy_stats.bootstrap((values,), np.mean, method="percentile", n_resamples=10_000, random_state=1)
    assert ours == pytest.approx(tuple(theirs.confidence_interval), abs=0.002)
    frame = runs_frame({"a": NOISY, "b": [v + 0.01 for v in NOISY[::-1]]})
    first, second = compare_runs(frame, {}, "opt"), compare_runs(frame.sample(frac=1, random_state=3), {}, "opt")
    assert first.table[["ci_low", "ci_high"]].equals(second.table[["ci_low", "ci_high"]])
    assert first.verdict == second.verdict


def test_strata_keep_their_size_and_a_config_of_one_run_is_not_a_stratum() -> None:
    strata = np.array([0, 0, 0, 1, 1, 1, 1])
    counts = stats.resample_counts(strata, np.random.default_rng(0), 500)
    assert (counts[:, :3].sum(axis=1) == 3).all() and (counts[:, 3:].sum(axis=1) == 4).all()
    two_configs = runs_frame({"a": NOISY + NOISY, "b": NOISY + NOISY})
    two_configs["tags.sweeplab.config_group"] = two_configs["params.opt"] + [f"-{i // 5}" for i in range(20)]
    table = compare_runs(two_configs, {}, "opt").table
    assert table.loc["a", "configs"] == 2 and table.loc["a", "runs"] == 10
    from sweeplab.compare.groups import strata_of

    assert list(strata_of(pd.Series(["x", "x", "y"]))) == [0, 0, 0]
    assert list(strata_of(pd.Series(["x", "x", "y", "y"]))) == [0, 0, 1, 1]


def test_only_leaf_runs_count_and_at_picks_the_best_or_last_epoch() -> None:
    frame = runs_frame({"a": NOISY, "b": NOISY})
    extra = pd.DataFrame(
        [
            {"run_id": "agg", "status": "FINISHED", "params.opt": "a", "metrics.val_accuracy": 0.99,
             "tags.sweeplab.seeds": "5", "tags.sweeplab.role": "job"},
            {"run_id": "parent", "status": "FINISHED", "tags.sweeplab.role": "study"},
        ]
    )  # fmt: skip
    frame = pd.concat([frame, extra], ignore_index=True)
    histories = {f"a-{i}": pd.DataFrame({"val_accuracy": [0.9, v]}) for i, v in enumerate(NOISY)}
    last = compare_runs(frame, histories, "opt")
    assert last.table.loc["a", "runs"] == 5 and last.table.loc["a", "mean"] == pytest.approx(np.mean(NOISY))
    assert last.left_out == {"study parents": 1, "aggregates of seed runs (their seeds are counted)": 1}
    best = compare_runs(frame, histories, "opt", at="best")
    assert best.table.loc["a", "mean"] == pytest.approx(0.9) and best.at == "best"
    assert best.winner == "a" and "val_accuracy at the best epoch" in best.verdict
    with pytest.raises(CompareError, match="--at must be best or last, not 'middle'"):
        compare_runs(frame, histories, "opt", at="middle")


def test_a_bad_at_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        compare_cli.main(["--at", "middle"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "compare: error: --at must be best or last, not 'middle'\n"


def test_the_report_writes_groups_csv_verdict_json_and_every_figure(tmp_path) -> None:
    frame = runs_frame({"adam": [v + 0.1 for v in NOISY], "sgd": NOISY, "rmsprop": [v + 0.05 for v in NOISY]})
    histories = {
        run.run_id: pd.DataFrame({"val_accuracy": [0.7, run.val], "val_loss": [0.5, 0.4]})
        for run in frame.rename(columns={"metrics.val_accuracy": "val"}).itertuples()
    }
    comparison = compare_runs(frame, histories, "opt", expected_best=True)
    paths = write_report(comparison, tmp_path)
    groups = pd.read_csv(tmp_path / "groups.csv")
    assert list(groups.columns) == ["group", "runs", "mean", "std", "iqm", "ci_low", "ci_high"]
    assert list(groups["group"]) == ["adam", "rmsprop", "sgd"] and list(groups["runs"]) == [5, 5, 5]
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert {k: verdict[k] for k in ("winner", "runner_up", "distinguishable")} == {
        "winner": "adam", "runner_up": "rmsprop", "distinguishable": True,
    }  # fmt: skip
    assert verdict["p_improvement"] == 1.0 and verdict["p_ci_low"] == 1.0 and verdict["p_ci_high"] == 1.0
    assert verdict["at"] == "last" and len(verdict["comparisons"]) == 2
    for name in ("groups", "improvement", "curves", "expected_best"):
        assert paths[name].is_file() and paths[name].stat().st_size > 1000
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "Expected best score against trials" in page
    curve = comparison.curves.query("group == 'adam' and metric == 'val_accuracy'")
    assert list(curve["mean"]) == pytest.approx([0.7, np.mean(NOISY) + 0.1])
    assert curve["ci_low"].iloc[0] == pytest.approx(0.7) and curve["ci_low"].iloc[1] < curve["mean"].iloc[1]
    best = comparison.expected_best.query("group == 'all'")
    # a trial is a config (the seeds' mean): three configs, the best of all three is adam's mean
    assert list(best["trials"]) == [1, 2, 3]
    assert best["expected_best"].iloc[-1] == pytest.approx(np.mean(NOISY) + 0.1)
    assert best["expected_best"].iloc[0] == pytest.approx(np.mean(NOISY) + 0.05)


def test_intervals_are_expanded_for_few_seeds() -> None:
    assert stats.expanded_level(0.95, 1) == 0.95 and stats.expanded_level(0.95, 5) == pytest.approx(0.99809, abs=1e-5)
    assert 0.95 < stats.expanded_level(0.95, 100) < 0.955
    samples = np.random.default_rng(0).normal(size=10_000)
    plain, expanded = stats.percentile_interval(samples), stats.percentile_interval(samples, n=5)
    assert expanded[0] < plain[0] < 0 < plain[1] < expanded[1]


@pytest.mark.parametrize(("seeds", "paired", "most"), [(5, True, 0.10), (10, True, 0.08), (5, False, 0.08)])
def test_equal_groups_are_rarely_called_distinguishable(seeds: int, paired: bool, most: float) -> None:
    """200 null comparisons (both groups from one normal): distinguishable about as often as alpha says."""
    rng = np.random.default_rng(123)
    names = np.array([str(s) for s in range(seeds)])
    found = 0
    for _ in range(200):
        a, b = rng.normal(0.83, 0.01, seeds), rng.normal(0.83, 0.01, seeds)
        frame = runs_frame(
            {"a": list(a), "b": list(b)}, None if paired else {"a": names, "b": [f"x{s}" for s in names]}
        )
        found += compare_runs(frame, {}, "opt").distinguishable
    assert found / 200 <= most


def test_fewer_than_five_seeds_are_never_distinguishable() -> None:
    comparison = compare_runs(runs_frame({"adam": [0.9, 0.91, 0.92], "sgd": [0.8, 0.81, 0.82]}), {}, "opt")
    assert comparison.comparisons[0].diff_ci_low > 0 and not comparison.distinguishable
    assert "not distinguishable with 3 seeds (fewer than 5 per group never are); about 5 seeds" in comparison.verdict
