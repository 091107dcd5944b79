"""Distances between two distributions given as bin counts (pure numpy, no I/O).

All functions take counts (not proportions) over the same bins and return a float. The
histogram-based KS and Wasserstein treat values as spread uniformly inside each interior bin,
which is what lets them run on mergeable summaries instead of raw values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.drift.scipy_stats import stats

PSI_FLOOR = 1e-4


def proportions(counts: np.ndarray) -> np.ndarray:
    """Counts over the last axis as shares (all zeros where there are none)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, counts / np.where(total > 0, total, 1.0), 0.0)


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> Any:
    """Population Stability Index, proportions floored at `floor` (one value per row of a 2-D
    `actual`).

    >>> round(psi(np.array([50, 50]), np.array([60, 40])), 4)
    0.0405
    """
    p = np.maximum(proportions(expected), floor)
    q = np.maximum(proportions(actual), floor)
    return _scalar(np.sum((q - p) * np.log(q / p), axis=-1))


def _scalar(values: np.ndarray) -> Any:
    return float(values) if np.ndim(values) == 0 else values


def js_distance(p_counts: np.ndarray, q_counts: np.ndarray) -> Any:
    """Jensen-Shannon distance, base 2 (0 = same distribution, 1 = disjoint); one value per row
    of a 2-D `q_counts`.

    >>> js_distance(np.array([1, 0]), np.array([0, 1]))
    1.0
    """
    p = proportions(p_counts)
    q = proportions(q_counts)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=-1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=-1)
    return _scalar(np.sqrt(np.maximum(0.0, (kl_p + kl_q) / 2)))


def tvd(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Total variation distance: half the L1 distance between the proportions."""
    return float(np.abs(proportions(p_counts) - proportions(q_counts)).sum() / 2)


def ks_from_histograms(expected: np.ndarray, actual: np.ndarray) -> float:
    """Two-sample KS statistic between two histograms on the same bins: the largest gap
    between the cumulative proportions at a bin boundary.

    >>> ks_from_histograms(np.array([0, 5, 5, 0]), np.array([0, 0, 5, 5]))
    0.5
    """
    gap = np.cumsum(proportions(expected)) - np.cumsum(proportions(actual))
    return float(np.abs(gap).max()) if gap.size else 0.0


def wasserstein_from_histograms(edges: np.ndarray, expected: np.ndarray, actual: np.ndarray,
                                actual_below_sum: float = 0.0, actual_above_sum: float = 0.0,
                                expected_below_sum: float = 0.0,
                                expected_above_sum: float = 0.0) -> float:
    """Earth mover's distance (W1 = integral of |F - G|) between two histograms on `edges`.

    Interior bins have piecewise-linear CDFs; the outer bins (below edges[0], above edges[-1])
    are handled exactly through the sums of the values that fell there.
    """
    n_e = float(np.sum(expected))
    n_a = float(np.sum(actual))
    if n_e == 0 or n_a == 0 or len(edges) == 0:
        return float("nan")
    pe = np.asarray(expected, dtype=np.float64) / n_e
    pa = np.asarray(actual, dtype=np.float64) / n_a
    # Outer bins: integral of F below edges[0] = E[(e0 - X)+]; above: E[(X - eB)+].
    lo, hi = float(edges[0]), float(edges[-1])
    below_e = (pe[0] * lo - expected_below_sum / n_e)
    below_a = (pa[0] * lo - actual_below_sum / n_a)
    above_e = (expected_above_sum / n_e - pe[-1] * hi)
    above_a = (actual_above_sum / n_a - pa[-1] * hi)
    # Outside the range one of the CDFs is typically 0 (or 1); when both have mass there the
    # difference of the two integrals is a lower bound, exact when one side is empty.
    total = abs(below_e - below_a) + abs(above_e - above_a)
    # Interior: the difference of the CDFs is linear inside each bin.
    d = np.cumsum(pe - pa)  # F - G at the right edge of each bin
    left = d[:-2]  # at edges[0..B-1]
    right = d[1:-1]  # at edges[1..B]
    width = np.diff(edges)
    same_sign = left * right >= 0
    area_same = width * (np.abs(left) + np.abs(right)) / 2
    denom = np.abs(left) + np.abs(right)
    with np.errstate(divide="ignore", invalid="ignore"):
        area_cross = width * (left**2 + right**2) / (2 * denom)
    area = np.where(same_sign, area_same, np.where(denom > 0, area_cross, 0.0))
    return float(total + area.sum())


def wasserstein_rows(windows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """W1 between each row of `windows` (raw values) and the `reference` values, as the mean
    gap between their quantile functions on a grid finer than the windows' steps.

    >>> rows = np.array([[0.0, 1.0], [1.0, 2.0]])
    >>> wasserstein_rows(rows, np.array([0.0, 1.0])).round(3).tolist()
    [0.0, 1.0]
    """
    windows = np.sort(np.atleast_2d(windows), axis=1)
    n = windows.shape[1]
    steps = max(100, 2 * n)
    grid = (np.arange(steps) + 0.5) / steps
    mine = windows[:, np.minimum((grid * n).astype(int), n - 1)]
    ref = np.sort(reference)
    theirs = ref[np.minimum((grid * ref.size).astype(int), ref.size - 1)]
    return np.abs(mine - theirs).mean(axis=1)


EXACT_RESAMPLES = 20_000  # Monte Carlo tables of the exact test (p-value resolution 5e-5)


def contingency_p_value(training: np.ndarray, window: np.ndarray, *,
                        min_expected: float = 5.0) -> float:
    """Two-sample test of training counts against window counts over the same bins: do both
    come from one distribution? Both samples are noisy (unlike a goodness-of-fit test against
    the training shares). Bins with small expected counts are pooled into one (Cochran's rule);
    a table that still has an expected count below `min_expected` (small windows) gets an exact
    test: Fisher's for 2 x 2, else the exact chi-square test by Monte Carlo over random tables
    with the same margins (fixed seed: the same input gives the same p-value); otherwise scipy's
    `chi2_contingency`.

    >>> round(contingency_p_value(np.array([500, 500]), np.array([50, 50])), 3)
    1.0
    >>> contingency_p_value(np.array([500, 500]), np.array([100, 0])) < 1e-20
    True
    """
    t = np.asarray(training, dtype=np.int64)
    w = np.asarray(window, dtype=np.int64)
    keep = (t + w) > 0
    t, w = t[keep], w[keep]
    if t.size < 2 or t.sum() == 0 or w.sum() == 0:
        return 1.0
    table = np.vstack((t, w))
    small = (_expected(table) < min_expected).any(axis=0)
    if small.any() and (~small).sum() >= 1:
        pooled = np.hstack((table[:, ~small], table[:, small].sum(axis=1, keepdims=True)))
        if pooled.shape[1] >= 2:
            table = pooled
    if (_expected(table) >= min_expected).all():
        return float(stats().chi2_contingency(table).pvalue)
    if table.shape[1] == 2:
        return float(stats().fisher_exact(table).pvalue)
    return exact_chi2_p_value(table)


def exact_chi2_p_value(table: np.ndarray, resamples: int = EXACT_RESAMPLES) -> float:
    """P(chi-square statistic >= the observed one) over random 2 x K tables with the observed
    margins (the window row is multivariate hypergeometric), by Monte Carlo: a first 1,000
    tables, and all of `resamples` only when those leave the p-value below 1% (the tail where
    the decision is made).

    >>> exact_chi2_p_value(np.array([[30, 30, 30], [0, 0, 9]])) < 0.001
    True
    """
    columns = table.sum(axis=0)
    expected = _expected(table)
    observed = float(((table - expected) ** 2 / expected).sum())
    rng = np.random.default_rng(0)
    p = 1.0
    for count in (min(1000, resamples), resamples):
        window = rng.multivariate_hypergeometric(columns, int(table[1].sum()), size=count)
        simulated = np.stack((columns - window, window), axis=1)
        statistic = ((simulated - expected) ** 2 / expected).sum(axis=(1, 2))
        p = (int((statistic >= observed * (1 - 1e-12)).sum()) + 1) / (count + 1)
        if p >= 0.01:
            break
    return p


def _expected(table: np.ndarray) -> np.ndarray:
    return np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
