"""Which checks exist, how their thresholds scale with the window size, and severities."""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache

try:  # what scipy.stats.binom.ppf computes, without importing scipy.stats (1 s at start)
    from scipy.special._ufuncs import _binom_ppf
except ImportError:  # older scipy: the public route
    _binom_ppf = None

from monitor.ingest.schema import Kind


class Severity(IntEnum):
    OK = 0
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    def __str__(self) -> str:
        return self.name.lower()


# Checks whose threshold is calibrated at profile build by resampling training windows, with the
# exponent e of their null scale: threshold(n) = threshold(W) * (W / n) ** e.
# PSI is a chi-square-like sum (scale 1/n); distances are square roots of such sums (1/sqrt n).
CALIBRATED: dict[Kind, dict[str, float]] = {
    Kind.NUMERIC: {"psi": 1.0, "js": 0.5, "ks": 0.5, "wasserstein": 0.5, "mean_shift": 0.5},
    Kind.CATEGORICAL: {"psi": 1.0, "js": 0.5, "chi2_p": 0.0},
    Kind.TEXT: {"length_psi": 1.0, "language_tvd": 0.5, "oov_rate": 0.5, "vocab_js": 0.5},
}
# Text checks computed on the window's sample of texts (their n is the sample size).
SAMPLE_CHECKS = frozenset({"language_tvd", "oov_rate", "vocab_js"})
# Checks where a *small* value is drift (p-values).
LOWER_IS_WORSE = frozenset({"chi2_p"})
# Rate checks: a binomial test of the window's rate against the training rate, at run time.
RATE_CHECKS: dict[Kind, tuple[str, ...]] = {
    Kind.NUMERIC: ("null_rate", "type_mismatch_rate", "out_of_range_rate"),
    Kind.CATEGORICAL: ("null_rate", "type_mismatch_rate", "novelty_rate"),
    Kind.TEXT: ("null_rate", "type_mismatch_rate", "unseen_language_rate"),
}
# Seed rules: any occurrence is reported (as info) even when within the binomial bound.
ALWAYS_REPORTED = frozenset({"out_of_range_rate", "novelty_rate"})
CRITICAL_FACTOR = 2.0  # a statistic this many times its threshold is critical
CRITICAL_RATE_EXCESS = 0.05  # a rate this far above its training rate (and over 2x bound) is critical


def check_alpha(kind: Kind, false_alarm_rate: float) -> float:
    """Per-check false-alarm probability: the feature's budget split evenly (Bonferroni)."""
    return false_alarm_rate / (len(CALIBRATED[kind]) + len(RATE_CHECKS[kind]))


def scaled_threshold(threshold: float, exponent: float, calibrated_n: int, n: int,
                     baseline: float = 0.0) -> float:
    """The threshold for a window of `n` values, from one calibrated at `calibrated_n`.

    >>> scaled_threshold(0.1, 0.5, 1000, 4000)
    0.05
    """
    if n <= 0 or exponent == 0:
        return threshold
    return baseline + (threshold - baseline) * (calibrated_n / n) ** exponent


@lru_cache(maxsize=65536)
def rate_bound(p0: float, n: int, alpha: float) -> float:
    """Largest rate a window of `n` records shows with probability >= 1 - alpha when the true
    rate is `p0` (binomial upper quantile).

    >>> rate_bound(0.0, 1000, 1e-4), rate_bound(0.01, 1000, 1e-4)
    (0.0, 0.024)
    """
    if n <= 0:
        return 1.0
    p = min(max(p0, 0.0), 1.0)
    if p == 0.0:
        return 0.0
    return binom_quantile(1 - alpha, n, p) / n


def binom_quantile(q: float, n: int, p: float) -> float:
    """scipy.stats.binom.ppf(q, n, p) for 0 < q < 1 (tests/test_distances.py compares them).

    >>> binom_quantile(0.999, 1000, 0.01)
    21.0
    """
    if _binom_ppf is None:
        from scipy import stats

        return float(stats.binom.ppf(q, n, p))
    return float(_binom_ppf(q, n, p))


def statistic_severity(check: str, value: float, threshold: float, baseline: float = 0.0) -> Severity:
    import math

    if value is None or not math.isfinite(value) or not math.isfinite(threshold):
        return Severity.OK
    if check in LOWER_IS_WORSE:
        if value >= threshold:
            return Severity.OK
        strength = -math.log10(max(value, 1e-300))
        limit = -math.log10(max(threshold, 1e-300))
        return Severity.CRITICAL if strength >= CRITICAL_FACTOR * limit else Severity.WARNING
    if value <= threshold:
        return Severity.OK
    if value - baseline >= CRITICAL_FACTOR * (threshold - baseline):
        return Severity.CRITICAL
    return Severity.WARNING


def rate_severity(check: str, rate: float, bound: float, p0: float, count: int) -> Severity:
    if rate > bound:
        if rate >= 2 * bound and rate - p0 >= CRITICAL_RATE_EXCESS:
            return Severity.CRITICAL
        return Severity.WARNING
    if check in ALWAYS_REPORTED and count > 0:
        return Severity.INFO
    return Severity.OK
