"""The verdict of a comparison: the best group against each other group (difference of means, P(A > B),
bootstrap intervals, Holm's correction), the matrix of P(A > B), the expected best of k trials. Pure."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sweeplab.compare import stats
from sweeplab.compare.groups import Resampled

# Fewer runs per group are never "distinguishable": with n seeds, paired differences all fall on one side by
# chance in 1 null comparison of 2**(n-1) (1 in 4 with 3 seeds), and then every percentile interval excludes 0.
MIN_SEEDS = 5
# An interval or a p-value needs a spread: with fewer runs in a group, none is printed (NaN in the result).
MIN_RUNS = 2
NO_FIGURES = (
    f"No interval or p-value where a group has fewer than {MIN_RUNS} runs: a single run has no spread to judge by."
)


@dataclass
class PairResult:
    """The best group `a` against group `b`, with intervals at `level` (Holm-adjusted beyond 2 groups)."""

    a: str
    b: str
    paired: bool
    n_a: int
    n_b: int
    difference: float
    diff_ci_low: float
    diff_ci_high: float
    p_improvement: float
    p_ci_low: float
    p_ci_high: float
    p_value: float
    p_holm: float
    level: float
    distinguishable: bool
    seeds_needed: int | None
    maximize: bool = True  # P(a > b) reads P(a < b) when lower is better; differences are a - b either way

    @property
    def seeds(self) -> int:
        return min(self.n_a, self.n_b)


@dataclass
class Found:
    winner: str | None
    runner_up: str | None
    comparisons: list[PairResult]
    distinguishable: bool
    seeds_needed: int | None
    text: str


def _plural(n: int, word: str = "seed") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _oriented(r: Resampled, maximize: bool) -> Resampled:
    """The group's values with higher = better (negated when lower is better), for the tests."""
    return r if maximize else dataclasses.replace(r, values=-r.values)


def compare_pairs(
    winner: str, others: list[str], resampled: dict[str, Resampled], maximize: bool = True
) -> list[PairResult]:
    """`winner` against each of `others`: bootstrap tests, Holm-adjusted p-values and intervals at the
    adjusted levels; distinguishable when the interval of the difference excludes 0 (strictly), the
    adjusted p-value is below ALPHA and both groups have MIN_SEEDS runs. P(A > B) is the chance that A is
    better; the difference and its interval are in the metric's own units (A - B)."""
    rng = np.random.default_rng(stats.SEED + 1)
    sign = 1.0 if maximize else -1.0
    resampled = {group: _oriented(r, maximize) for group, r in resampled.items()}
    a = resampled[winner]
    tests, pairs, sizes, p_values = [], [], [], []
    for other in others:
        b = resampled[other]
        pairs.append(stats.pair_by_seed(a.values, a.seeds, b.values, b.seeds))
        tests.append(stats.pair_test(a.values, b.values, a.counts, b.counts, pairs[-1], rng))
        sizes.append(min(len(a.values), len(b.values)))  # the seeds paired, or the smaller group
        p_values.append(stats.percentile_p_value(tests[-1].difference_samples, sizes[-1]))
    # Holm's correction over the comparisons that have figures (both groups with MIN_RUNS runs or more).
    tested = [i for i, n in enumerate(sizes) if n >= MIN_RUNS]
    adjusted, levels = [float("nan")] * len(others), [1 - stats.ALPHA] * len(others)
    for i, p_holm, level in zip(tested, *stats.holm([p_values[i] for i in tested]), strict=True):
        adjusted[i], levels[i] = p_holm, level
    results = []
    for i, (other, test, pair, n) in enumerate(zip(others, tests, pairs, sizes, strict=True)):
        b = resampled[other]
        nan = float("nan")
        d_low, d_high, p_low, p_high, p_value = nan, nan, nan, nan, nan
        if n >= MIN_RUNS:  # the interval and the p-value from the same resamples at the same level
            d_low, d_high = stats.percentile_interval(test.difference_samples, levels[i], n)
            p_low, p_high = stats.percentile_interval(test.p_samples, levels[i], n)
            p_value = p_values[i]
        separated = bool(d_low > 0 or d_high < 0) and adjusted[i] < stats.ALPHA and n >= MIN_SEEDS
        va, vb = pair if pair is not None else (a.values, b.values)
        d_low, d_high = sorted((sign * float(d_low), sign * float(d_high)))
        results.append(
            PairResult(
                winner, other, test.paired, len(a.values), len(b.values), sign * test.difference,
                d_low, d_high, test.p_improvement, float(p_low), float(p_high),
                p_value, adjusted[i], levels[i], separated, stats.seeds_needed(va, vb, test.paired), maximize,
            )
        )  # fmt: skip
    return results


def describe_pair(r: PairResult, corrected: bool = False) -> str:
    """One comparison in a line: the difference and P(A > B) with their intervals, and whether it holds."""
    how = f"paired by seed over {_plural(r.seeds)}" if r.paired else f"unpaired, {r.n_a} vs {r.n_b} runs"
    better = f"P({r.a} {'>' if r.maximize else '<'} {r.b}) = {r.p_improvement:.2f}"
    said = "distinguishable" if r.distinguishable else "not distinguishable"
    if r.seeds < MIN_RUNS:  # no figure from a single run (NO_FIGURES says why, once)
        return f"{r.a} vs {r.b}: difference {r.difference:+.4f}, {better}, {how}, no interval or p-value: {said}."
    p = r.p_holm if corrected else r.p_value
    shown = f"= {p:.4f}" if p >= 0.0001 else "< 0.0001"
    holm = f", Holm-adjusted p {shown}" if corrected else f", p {shown}"
    return (
        f"{r.a} vs {r.b}: difference {r.difference:+.4f} ({r.level * 100:g}% CI {r.diff_ci_low:+.4f} to "
        f"{r.diff_ci_high:+.4f}), {better} ({r.p_ci_low:.2f} to {r.p_ci_high:.2f}), {how}{holm}: {said}."
    )


def seeds_clause(r: PairResult, unit: str = "seed") -> str:
    """How many seeds the verdict rests on and, when not enough, about how many would do; `unit` is "run"
    when a group holds several configs (its runs are not just seeds)."""
    count = _plural(r.seeds, unit)
    if r.distinguishable:
        return f"distinguishable with {count}"
    if r.seeds < MIN_RUNS:  # why: NO_FIGURES, once below
        return f"not distinguishable with {count}; sweep more seeds"
    if r.seeds_needed is None:
        return f"not distinguishable with {count}; the {unit}s needed cannot be estimated: the observed difference is 0"
    needed = max(r.seeds_needed, MIN_SEEDS, r.seeds + 1)
    few = f" (fewer than {MIN_SEEDS} per group never are)" if r.seeds < MIN_SEEDS else ""
    return f"not distinguishable with {count}{few}; about {needed} {unit}s would be needed"


def judge(
    per_run: pd.DataFrame, table: pd.DataFrame, resampled: dict[str, Resampled], describe: str, maximize: bool = True
) -> Found:
    """Winner by mean (the highest, or the lowest when lower is better); is its lead over every other group
    more than the seeds' noise?"""
    if table.empty:
        return Found(None, None, [], False, None, "No finished runs to compare.")
    ranked = [str(g) for g in table.sort_values("mean", ascending=not maximize, kind="stable").index]
    winner = ranked[0]
    if len(ranked) == 1:
        return Found(winner, None, [], False, None, f"Only one group ({winner}): nothing to compare it with.")
    results = compare_pairs(winner, ranked[1:], resampled, maximize)
    unit = "run" if table["configs"].max() > 1 else "seed"
    first = results[0]
    m_a, m_b = table.loc[winner, "mean"], table.loc[first.b, "mean"]
    verb = "beats" if first.distinguishable else "ties with" if m_a == m_b else "leads"
    headline = (
        f"{winner} {verb} runner-up {first.b} on {describe}: mean {m_a:.4f} vs {m_b:.4f}, "
        f"P({winner} {'>' if maximize else '<'} {first.b}) = {first.p_improvement:.2f}; {seeds_clause(first, unit)}."
    )
    tested = sum(r.seeds >= MIN_RUNS for r in results)
    lines = [headline, *(describe_pair(r, tested > 1) for r in results)]
    if tested > 1:
        lines.append(f"Holm's correction over {tested} comparisons: intervals at the adjusted levels.")
    if tested < len(results):
        lines.append(NO_FIGURES)
    needed = None if first.distinguishable else first.seeds_needed
    return Found(winner, first.b, results, first.distinguishable, needed, "\n".join(lines))


def improvement_table(per_run: pd.DataFrame, groups: list[str], maximize: bool = True) -> pd.DataFrame:
    """P(row better than column) for every two groups: paired by seed where both ran the same seeds, else all
    pairs."""
    sign = 1.0 if maximize else -1.0
    values = {g: per_run[(per_run["group"] == g) & per_run["value"].notna()] for g in groups}
    matrix = pd.DataFrame(np.nan, index=groups, columns=groups, dtype=float)
    for a in groups:
        for b in groups:
            if a == b:
                continue
            va, vb = sign * values[a]["value"].to_numpy(float), sign * values[b]["value"].to_numpy(float)
            pair = stats.pair_by_seed(va, values[a]["seed"].to_numpy(str), vb, values[b]["seed"].to_numpy(str))
            if len(va) and len(vb):
                matrix.loc[a, b] = stats.probability_of_improvement(*(pair or (va, vb)), paired=pair is not None)
    return matrix


def expected_best_table(per_run: pd.DataFrame, maximize: bool = True) -> pd.DataFrame:
    """Expected best value against the number of trials (configs, each its mean over seeds) for each group
    and for all trials together (group "all"); the best is the lowest when lower is better."""
    sign = 1.0 if maximize else -1.0
    configs = per_run.dropna(subset=["value"]).groupby(["group", "stratum"], sort=False)["value"].mean()
    parts = []
    for group, values in [("all", configs), *configs.groupby(level="group")]:
        expected = sign * stats.expected_max(sign * values.to_numpy(float))
        parts.append(
            pd.DataFrame({"group": group, "trials": np.arange(1, len(expected) + 1), "expected_best": expected})
        )
    return pd.concat(parts, ignore_index=True)
