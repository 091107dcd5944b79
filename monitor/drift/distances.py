"""Distances between two distributions given as bin counts (pure numpy, no I/O).

All functions take counts (not proportions) over the same bins and return a float. The
histogram-based KS and Wasserstein treat values as spread uniformly inside each interior bin,
which is what lets them run on mergeable summaries instead of raw values.
"""

from __future__ import annotations

import numpy as np
from scipy import special

PSI_FLOOR = 1e-4


def proportions(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population Stability Index, proportions floored at `floor`.

    >>> round(psi(np.array([50, 50]), np.array([60, 40])), 4)
    0.0405
    """
    p = np.maximum(proportions(expected), floor)
    q = np.maximum(proportions(actual), floor)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 = same distribution, 1 = disjoint).

    >>> js_distance(np.array([1, 0]), np.array([0, 1]))
    1.0
    """
    p = proportions(p_counts)
    q = proportions(q_counts)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(np.sqrt(max(0.0, (kl_p + kl_q) / 2)))


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


def chi2_p_value(expected_counts: np.ndarray, observed: np.ndarray,
                 floor: float = PSI_FLOOR, min_expected: float = 5.0) -> float:
    """Chi-square goodness-of-fit p-value of `observed` counts against the proportions of
    `expected_counts` (floored, so that a bin unseen in training can still be tested). Bins whose
    expected count is below `min_expected` are pooled into one, as the test requires.
    """
    observed = np.asarray(observed, dtype=np.float64)
    n = observed.sum()
    if n == 0:
        return 1.0
    p = np.maximum(proportions(expected_counts), floor)
    p = p / p.sum()
    exp = p * n
    small = exp < min_expected
    if small.any():
        exp = np.append(exp[~small], exp[small].sum())
        observed = np.append(observed[~small], observed[small].sum())
        if exp[-1] == 0:
            exp, observed = exp[:-1], observed[:-1]
    if len(exp) < 2:
        return 1.0
    statistic = float(((observed - exp) ** 2 / exp).sum())
    return float(special.chdtrc(len(exp) - 1, statistic))  # scipy.stats.chi2.sf, lighter import
