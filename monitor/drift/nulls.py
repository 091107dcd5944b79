"""How far a statistic strays from zero when nothing drifted: null distributions of two-sample
statistics as functions of the window size n and the training size N (pure math, no I/O).

A window of n values compared with a profile of N values is a two-sample comparison: the null
spread of a chi-square-like statistic (PSI) scales with 1/n + 1/N, a distance (its square root)
with sqrt(1/n + 1/N). Both sides count, through the *effective size* m = 1 / (1/n + 1/N): the
two-sample null at (n, N) is the one-sample null at m. Calibration measures the one-sample null
at several sizes (a `NullCurve`); run time reads it at m.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from monitor.drift.scipy_stats import special, stats


def effective_size(n: float, N: float) -> float:
    """1 / (1/n + 1/N): the one-sample size with the null spread of an (n, N) comparison.

    >>> effective_size(1000, 1000), effective_size(1000, math.inf), effective_size(0, 10)
    (500.0, 1000.0, 0.0)
    """
    if n <= 0 or N <= 0:
        return 0.0
    return 1.0 / (1.0 / n + 1.0 / N)


def fit_quantile(values: np.ndarray, alpha: float) -> float:
    """The (1 - alpha) quantile of a gamma fitted to `values` by moments, never below the
    largest value seen (a few hundred values cannot show a 1-in-10,000 tail themselves).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.chisquare(9, 4000) / 1000
    >>> bool(abs(fit_quantile(x, 1e-3) - stats().chi2.ppf(1 - 1e-3, 9) / 1000) < 0.004)
    True
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.inf
    top = float(values.max())
    mean = float(values.mean())
    var = float(values.var(ddof=1)) if values.size > 1 else 0.0
    if mean <= 0 or var <= 0:
        return max(top, 0.0)
    shape, scale = mean * mean / var, var / mean
    return max(top, float(stats().gamma.ppf(1 - alpha, shape, scale=scale)))


@dataclass(frozen=True)
class NullCurve:
    """A statistic's (1 - alpha) null quantile measured at several effective sizes.

    Between the measured sizes the curve is interpolated in log-log; beyond the largest it
    falls as m^-exponent (the asymptotic law, or the slope measured between the largest sizes
    when that is flatter); below the smallest it rises at least as fast as the law says.

    >>> c = NullCurve((100.0, 1000.0), (0.1, 0.01), exponent=1.0)
    >>> round(c.at(316.23), 4), round(c.at(10_000), 4), round(c.at(10), 3)
    (0.0316, 0.001, 1.0)
    """

    sizes: tuple[float, ...]
    quantiles: tuple[float, ...]
    exponent: float  # used beyond the largest size
    law: float = 0.0  # the asymptotic exponent (1 for chi-square-like, 1/2 for distances)
    measured: float | None = None  # slope measured over the largest sizes (the fit check)

    def at(self, m: float) -> float:
        if not self.sizes:
            return math.inf
        if m <= 0:
            return math.inf
        sizes, q = self.sizes, self.quantiles
        if m >= sizes[-1]:
            return q[-1] * (sizes[-1] / m) ** self.exponent
        if m <= sizes[0]:
            slope = max(self.law, self.exponent, self._slope(0) if len(sizes) > 1 else 0.0)
            return q[0] * (sizes[0] / m) ** slope
        i = int(np.searchsorted(sizes, m)) - 1
        if q[i] <= 0 or q[i + 1] <= 0:
            return q[i] + (q[i + 1] - q[i]) * (m - sizes[i]) / (sizes[i + 1] - sizes[i])
        t = math.log(m / sizes[i]) / math.log(sizes[i + 1] / sizes[i])
        return math.exp(math.log(q[i]) + t * (math.log(q[i + 1]) - math.log(q[i])))

    def _slope(self, i: int) -> float:
        a, b = self.quantiles[i], self.quantiles[i + 1]
        if a <= 0 or b <= 0:
            return 0.0
        return math.log(a / b) / math.log(self.sizes[i + 1] / self.sizes[i])

    @classmethod
    def fit(cls, sizes: list[float], quantiles: list[float], law: float) -> NullCurve:
        """A curve through measured quantiles. The fit check: the slope over the largest sizes
        (least squares in log-log) against the asymptotic `law`; the curve extrapolates with the
        flatter of the two, so a statistic that falls slower than its law is never extrapolated
        below its null."""
        pairs = sorted((float(s), float(q)) for s, q in zip(sizes, quantiles, strict=True)
                       if math.isfinite(q))
        s = tuple(p[0] for p in pairs)
        # A null quantile does not rise with the size: a dip at a smaller size is estimation
        # noise, raised to the larger sizes' value (the conservative side).
        q = tuple(np.maximum.accumulate([p[1] for p in pairs][::-1])[::-1].tolist())
        pairs = list(zip(s, q, strict=True))
        measured = None
        top = [(a, b) for a, b in pairs[-3:] if b > 0]
        if len(top) >= 2:
            x = np.log([a for a, _ in top])
            y = np.log([b for _, b in top])
            measured = float(-np.polyfit(x, y, 1)[0])
        exponent = law if measured is None else min(law, max(measured, 0.0))
        return cls(s, q, exponent, law, measured)

    def to_dict(self) -> dict[str, Any]:
        return {"sizes": [_round(x) for x in self.sizes],
                "quantiles": [_round(x) for x in self.quantiles],
                "exponent": _round(self.exponent), "law": self.law,
                "measured": None if self.measured is None else _round(self.measured)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NullCurve:
        sizes = tuple(float(x) for x in data["sizes"])
        quantiles = tuple(float(x) for x in data["quantiles"])
        if len(sizes) != len(quantiles) or list(sizes) != sorted(sizes):
            raise ValueError("null curve sizes and quantiles do not match")
        measured = data.get("measured")
        return cls(sizes, quantiles, float(data["exponent"]), float(data.get("law", 0.0)),
                   None if measured is None else float(measured))


def _round(x: float) -> float:
    """6 significant digits: stable JSON, no false precision."""
    return float(f"{x:.6g}") if math.isfinite(x) else x


@lru_cache(maxsize=4096)
def ks_critical(n: int, N: int, alpha: float) -> float:
    """The two-sample KS statistic exceeded with probability alpha when nothing drifted: the
    exact one-sample distribution (scipy's `kstwo`) at the effective size, rounded down.
    Never above 1, the largest KS there is.

    >>> round(ks_critical(50, 10**12, 0.05), 4) == round(float(stats().kstwo.isf(0.05, 50)), 4)
    True
    """
    m = int(math.floor(effective_size(n, N) + 1e-6))
    if m < 1:
        return 1.0
    return min(1.0, float(stats().kstwo.isf(alpha, m)))


def rate_bound(k: float, N: float, n: int, alpha: float, prior: float = 0.5) -> float:
    """The largest rate a window of `n` shows with probability >= 1 - alpha when training
    showed `k` events in `N` trials: the beta-binomial predictive upper quantile (the training
    rate is itself uncertain: Jeffreys prior), as a rate. 1.0 when nothing can be said.

    >>> rate_bound(0, 6000, 1000, 1.25e-4), rate_bound(60, 6000, 1000, 1.25e-4)
    (0.003, 0.025)
    """
    if n <= 0 or N <= 0:
        return 1.0
    return _betabinom_upper(round(n), max(0.0, float(k)), float(N), alpha, prior) / n


@lru_cache(maxsize=65536)
def _betabinom_upper(n: int, k: float, N: float, alpha: float, prior: float) -> int:
    a, b = k + prior, max(N - k, 0.0) + prior
    mean = n * a / (a + b)
    sd = math.sqrt(n * a * b * (a + b + n) / ((a + b) ** 2 * (a + b + 1)))
    lo = max(0, int(mean - 12 * sd) - 1)
    hi = min(n, int(mean + 40 * sd) + 50)
    x = np.arange(lo, hi + 1, dtype=float)
    sp = special()
    logpmf = (sp.gammaln(n + 1) - sp.gammaln(x + 1) - sp.gammaln(n - x + 1)
              + sp.betaln(x + a, n - x + b) - sp.betaln(a, b))
    pmf = np.exp(logpmf)
    tail = np.cumsum(pmf[::-1])[::-1]  # P(X >= x) within the window (the rest is negligible)
    above = np.flatnonzero(tail <= alpha)
    if above.size == 0:
        return n
    # The bound is the largest count still within 1 - alpha: one below the first count whose
    # upper tail is at most alpha.
    return int(max(lo, x[above[0]] - 1))


def smallest_size(significance_at: Callable[[int], float], reach: float, start: int,
                  limit: int = 10**9) -> int | None:
    """The smallest window size >= start whose significance threshold is below `reach` (what
    the statistic can reach), assuming the threshold falls with the size; None if none is.

    >>> smallest_size(lambda n: 10 / n, 1.0, 1)
    11
    """
    if significance_at(limit) >= reach:
        return None
    lo, hi = max(1, start), limit
    if significance_at(lo) < reach:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if significance_at(mid) < reach:
            hi = mid
        else:
            lo = mid
    return hi
