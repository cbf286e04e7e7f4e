"""The statistics of a comparison, on plain arrays: interquartile mean, stratified percentile bootstrap,
probability of improvement (paired by seed or over all pairs), Holm's correction, seeds needed, and the
expected best of k trials. Pure numpy (scipy for log-gamma), free of pandas and MLflow, so each number can
be checked by hand.

Methods as in Agarwal et al. 2021 (rliable: IQM, stratified bootstrap, P(A > B)), Bouthillier et al. 2021
(paired randomness), Holm 1979, and Tang et al. 2020 (unbiased expected maximum of k trials).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ALPHA = 0.05  # two-sided; every interval is at 1 - ALPHA (Holm-adjusted between more than two groups)
RESAMPLES = 10_000
SEED = 0  # the bootstrap's seed: the same runs give the same report
POWER = 0.8  # for "about M seeds would be needed"


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50%, int(n/4) values cut from each end, as
    scipy.stats.trim_mean(values, 0.25) in rliable (not imported: scipy.stats alone takes a second)."""
    if not len(values):
        return math.nan
    cut = int(0.25 * len(values))
    return float(np.mean(np.sort(values)[cut : len(values) - cut]))


def resample_counts(strata: np.ndarray, rng: np.random.Generator, resamples: int = RESAMPLES) -> np.ndarray:
    """How often each value is drawn in each bootstrap resample, (resamples, n): values are drawn with
    replacement within their stratum (e.g. a config's seeds), so each stratum keeps its size."""
    counts = np.zeros((resamples, len(strata)), dtype=np.float32)  # exact up to 2**24 runs, halves the products
    for stratum in np.unique(strata):
        where = np.flatnonzero(strata == stratum)
        k = len(where)
        draws = rng.integers(0, k, size=(resamples, k)) + k * np.arange(resamples)[:, None]
        counts[:, where] = np.bincount(draws.ravel(), minlength=resamples * k).reshape(resamples, k)
    return counts


def expanded_level(level: float, n: int) -> float:
    """The percentile level that gives a `level` interval from n values: the bootstrap's percentile interval
    is too narrow with few values (it misses the mean's t spread), so it is widened as in Hesterberg's
    expanded percentile interval (2015): 1 - 2 Phi(-sqrt(n / (n - 1)) t(n - 1, 1 - alpha / 2))."""
    if n < 2 or level >= 1:
        return level
    from scipy import special  # here only: scipy.stats would take a second to import

    t = float(special.stdtrit(n - 1, 1 - (1 - level) / 2))
    return 1 - 2 * NormalDist().cdf(-math.sqrt(n / (n - 1)) * t)


def percentile_interval(samples: np.ndarray, level: float = 1 - ALPHA, n: int = 0) -> tuple[float, float]:
    """The central `level` interval of bootstrap samples (the percentile method), expanded for `n` values
    (expanded_level; n=0: not expanded); along axis 0 for a matrix."""
    q = expanded_level(level, n)
    low, high = np.quantile(samples, [(1 - q) / 2, 1 - (1 - q) / 2], axis=0)
    return low, high


def percentile_p_value(samples: np.ndarray, n: int = 0) -> float:
    """Two-sided p-value of "no difference" read off the same resamples as percentile_interval(samples, level,
    n): 1 - the widest level whose interval still excludes 0, so p < alpha exactly when the 1 - alpha
    interval excludes 0 (the expansion for `n` values undone, as the interval applies it); 1 when no level does."""
    s = np.sort(np.asarray(samples, dtype=float))
    last = len(s) - 1
    if last < 1:
        return 1.0
    tails = []  # the share of resamples beyond 0 on each side, as np.quantile interpolates between them
    above = int(np.searchsorted(s, 0.0, side="right"))  # first resample > 0
    if above == 0:
        tails.append(0.0)
    elif above <= last:
        tails.append((above - 1 + -s[above - 1] / (s[above] - s[above - 1])) / last)
    below = int(np.searchsorted(s, 0.0, side="left")) - 1  # last resample < 0
    if below == last:
        tails.append(0.0)
    elif below >= 0:
        tails.append(1 - (below + -s[below] / (s[below + 1] - s[below])) / last)
    if not tails or min(tails) >= 0.5:
        return 1.0
    if min(tails) <= 0:  # every resample on one side: every interval short of 100% excludes 0
        return 0.0
    percentile = 1 - 2 * min(tails)  # the central share of the resamples that just reaches 0
    if n < 2:
        return 1 - percentile
    from scipy import special  # here only, as in expanded_level (whose inverse this is)

    t = -NormalDist().inv_cdf((1 - percentile) / 2) / math.sqrt(n / (n - 1))
    return float(2 * special.stdtr(n - 1, -t))


def improvement_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 where a_i > b_j, 1/2 where they tie, 0 otherwise: P(A > B) is its mean over the pairs compared."""
    return (a[:, None] > b[None, :]) + 0.5 * (a[:, None] == b[None, :])


def pair_by_seed(
    a: np.ndarray, seeds_a: np.ndarray, b: np.ndarray, seeds_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """a and b aligned seed by seed when both groups ran the same set of seeds once each (at least 2);
    None otherwise (different seeds, several configs per group, a run without a seed): compare unpaired."""
    if len(a) < 2 or len(a) != len(b) or any(s is None or s == "" for s in (*seeds_a, *seeds_b)):
        return None
    if len(set(seeds_a)) != len(a) or set(seeds_a) != set(seeds_b):
        return None
    order_b = {seed: i for i, seed in enumerate(seeds_b)}
    return a, b[[order_b[seed] for seed in seeds_a]]


def probability_of_improvement(a: np.ndarray, b: np.ndarray, paired: bool) -> float:
    """P(A > B), ties counted 1/2: over matched seeds when paired, else over all pairs (Mann-Whitney)."""
    if paired:
        return float(np.mean((a > b) + 0.5 * (a == b)))
    return float(improvement_matrix(a, b).mean())


@dataclass
class PairTest:
    """A against B: the observed difference of means and P(A > B), and their bootstrap resamples."""

    paired: bool
    difference: float
    p_improvement: float
    difference_samples: np.ndarray
    p_samples: np.ndarray


def pair_test(
    a: np.ndarray,
    b: np.ndarray,
    counts_a: np.ndarray,
    counts_b: np.ndarray,
    paired: tuple[np.ndarray, np.ndarray] | None,
    rng: np.random.Generator,
) -> PairTest:
    """Bootstrap A against B: with `paired` (pair_by_seed's answer), seeds are resampled together; otherwise
    each group is resampled on its own, with its own resample counts (resample_counts, stratified)."""
    if paired is not None:
        pa, pb = paired
        counts = resample_counts(np.zeros(len(pa)), rng, len(counts_a))
        wins = (pa > pb) + 0.5 * (pa == pb)
        return PairTest(
            True,
            float(np.mean(pa - pb)),
            probability_of_improvement(pa, pb, True),
            counts @ (pa - pb).astype(np.float32) / len(pa),
            counts @ wins.astype(np.float32) / len(pa),
        )
    matrix = improvement_matrix(a, b).astype(np.float32)
    return PairTest(
        False,
        float(a.mean() - b.mean()),
        float(matrix.mean()),
        counts_a @ a.astype(np.float32) / len(a) - counts_b @ b.astype(np.float32) / len(b),
        ((counts_a @ matrix) * counts_b).sum(axis=1) / (len(a) * len(b)),
    )


def holm(p_values: list[float], alpha: float = ALPHA) -> tuple[list[float], list[float]]:
    """Holm's step-down correction: the adjusted p-values, and the confidence level of each comparison's
    intervals: 1 - alpha / (m - rank), rank 0 for the smallest p-value, up to the first comparison that is
    not rejected, whose level every later one keeps (so that an interval excludes 0 exactly when its
    adjusted p-value is below alpha, given p-values from percentile_p_value)."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted, levels = [1.0] * m, [1 - alpha] * m
    running, stopped = 0.0, m
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
        if running >= alpha:
            stopped = min(stopped, rank)
        levels[i] = 1 - alpha / (m - min(rank, stopped))
    return adjusted, levels


def seeds_needed(a: np.ndarray, b: np.ndarray, paired: bool, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Seeds per group for a two-sided test at `alpha` to detect the observed difference with `power`, from
    the observed spread (normal approximation); None when it cannot be estimated (no difference, one run)."""
    differences = a - b if paired else None
    delta = float(np.mean(differences)) if paired else float(a.mean() - b.mean())
    if delta == 0 or min(len(a), len(b)) < 2:
        return None
    variance = float(np.var(differences, ddof=1)) if paired else float(np.var(a, ddof=1) + np.var(b, ddof=1))
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return max(2, math.ceil(z**2 * variance / delta**2))


def expected_max(values: np.ndarray) -> np.ndarray:
    """E[best of k trials] for k = 1..n, estimated without bias from n trials (Tang et al. 2020): with the
    values sorted, v_(1) <= ... <= v_(n), E_k = sum_i v_(i) C(i-1, k-1) / C(n, k), the mean of the best of
    every k-subset of the trials."""
    from scipy import special  # here only: a sampled study's figure needs it

    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    if n == 0:
        return v
    k = np.arange(1, n + 1)[:, None]
    i = np.arange(1, n + 1)[None, :]
    with np.errstate(invalid="ignore"):
        log_weight = (special.gammaln(i) - special.gammaln(k) - special.gammaln(np.maximum(i - k + 1, 1))) - (
            special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
        )
    weights = np.where(i >= k, np.exp(log_weight), 0.0)
    return weights @ v
