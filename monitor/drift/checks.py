"""What a check is: a statistic of a window against its profile, the threshold it must cross to
be drift (from the null of a two-sample comparison at the window's *and* the profile's sizes),
an effect-size floor below which a real difference is negligible, and its severity rule.

Three families share one interface (`limit`, `assess`, `finding`):
- `Distance`: a statistic whose null quantiles were measured at profile build (a `NullCurve`);
  KS instead uses the exact two-sample critical value.
- `PValue`: a test whose p-value is compared with the check's share of the false-alarm budget;
  its floor applies to an effect size computed beside it.
- `Rate`: a count of events in the window against a beta-binomial bound that carries the
  uncertainty of the training count too.
The checks themselves are listed once, in `monitor.drift.registry`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

import numpy as np

from monitor.drift.nulls import effective_size, ks_critical, rate_bound, smallest_size
from monitor.ingest.schema import Kind
from monitor.profile.model import FeatureProfile
from monitor.summaries import Summary, TextSummary


class Severity(IntEnum):
    OK = 0
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    def __str__(self) -> str:
        return self.name.lower()


CRITICAL_FACTOR = 2.0  # a statistic this many times its threshold is critical
CRITICAL_RATE_EXCESS = 0.05  # a rate this far above training (and over 2x its bound) is critical
POWER_Z = 0.8416  # one-sided normal quantile of 80% power
TIE = 1e-9  # relative: a value equal to its threshold up to rounding is not over it


def over(value: float, threshold: float) -> bool:
    """`value` is above `threshold` by more than rounding (ties do not page).

    >>> over(0.006000000000000003, 0.006), over(0.00601, 0.006)
    (False, True)
    """
    return value > threshold + TIE * max(abs(threshold), abs(value), 1e-300)


class Basis(Enum):
    """What a check's n (window) and N (training) count."""

    VALUES = "values"  # non-null values of the right type
    RECORDS = "records"  # every record (null and mismatch rates)
    TEXTS = "texts"  # the sampled texts (language and vocabulary checks)


@dataclass
class CheckInput:
    """What checks read: the feature's profile, the window's summary, and for text features the
    languages and tokens of the window's sample of texts (analysed once, outside the checks)."""

    feature: FeatureProfile
    window: Summary
    languages: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)

    def sizes(self, basis: Basis) -> tuple[int, int]:
        """(n, N): the window's and the training's count on this basis."""
        t, w = self.feature.summary, self.window
        if basis is Basis.TEXTS:
            return sum(self.languages.values()), self.feature.text_sample
        if basis is Basis.RECORDS:
            return w.records, t.records
        if isinstance(t, TextSummary):
            return w.count, t.length.count
        return w.count, t.count


@dataclass(frozen=True)
class Limit:
    """Where a check's value becomes a finding, for one window."""

    threshold: float  # what pages: significant *and* at least the floor, never above the reach
    significance: float  # crossed with probability <= alpha when nothing drifted
    floor: float  # effect-size floor (above the baseline): smaller effects are negligible
    baseline: float = 0.0  # the value expected without drift (a rate: the training rate)
    reach: float = math.inf  # the most the statistic can show
    decidable: bool = True  # False: the window is too small for this check at the budget
    min_size: int | None = None  # when undecidable: the smallest window that would decide
    fixed: bool = False  # set by a threshold override

    @classmethod
    def of(cls, significance: float, floor: float, reach: float = math.inf,
           baseline: float = 0.0, min_size: int | None = None) -> Limit:
        threshold = min(max(significance, baseline + floor), reach)
        return cls(threshold, significance, floor, baseline, reach,
                   decidable=significance < reach, min_size=min_size)

    @classmethod
    def override(cls, threshold: float) -> Limit:
        return cls(threshold, threshold, 0.0, fixed=True)


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    kinds: frozenset[Kind]
    label: str  # a few words for plots and reports
    meaning: str  # the README row
    floor: float  # default effect-size floor
    compute: Callable[[CheckInput], float | None]
    basis: Basis = Basis.VALUES
    distribution: bool = True  # False: runs on every window (seed rules), not only full ones
    lower_is_worse = False

    def limit(self, inp: CheckInput, alpha: float, floor: float | None = None) -> Limit:
        raise NotImplementedError

    def assess(self, value: float | None, limit: Limit, inp: CheckInput) -> Severity:
        """Warning above the threshold, critical at twice it (from the baseline); info when
        significant but under the effect-size floor."""
        if value is None or not math.isfinite(value) or not limit.decidable:
            return Severity.OK
        if over(value, limit.threshold):
            excess, allowed = value - limit.baseline, limit.threshold - limit.baseline
            return Severity.CRITICAL if excess >= CRITICAL_FACTOR * allowed else Severity.WARNING
        if over(value, limit.significance):
            return Severity.INFO
        return Severity.OK

    def message(self, feature: str, value: float, limit: Limit, severity: Severity,
                inp: CheckInput) -> tuple[str, dict[str, Any]]:
        text = f"{feature}: {self.name} {value:.4g} > {limit.threshold:.4g}"
        if severity is Severity.INFO:
            text = (f"{feature}: {self.name} {value:.4g} is significant "
                    f"(> {limit.significance:.4g}) but under the effect-size floor "
                    f"{limit.baseline + limit.floor:.4g}")
        return text, {}

    def detectable(self, limit: Limit, inp: CheckInput) -> float | None:
        """The smallest effect found with 80% power at this window's size, where known."""
        return None

    def _sized(self, inp: CheckInput, significance: Callable[[int], float], reach: float,
               floor: float, baseline: float = 0.0) -> Limit:
        n, _ = inp.sizes(self.basis)
        sig = significance(n)
        min_size = None
        if n > 0 and not sig < reach:
            min_size = smallest_size(significance, reach, n + 1)
        return Limit.of(sig, floor, reach, baseline, min_size)


@dataclass(frozen=True, kw_only=True)
class Distance(Check):
    """A statistic that grows with drift, whose null quantile was measured at several sizes.

    `law` is how its null scales with the effective size m (1 for chi-square-like sums such as
    PSI, 1/2 for distances); `reach` what it can show at most; `baseline` the value expected
    without drift; `bound` a lower limit on the significance threshold from counting (a rate
    that one stray event in the training count already explains)."""

    law: float
    reach: Callable[[CheckInput], float] = lambda inp: math.inf
    baseline: Callable[[CheckInput], float] = lambda inp: 0.0
    bound: Callable[[CheckInput, float, int], float] | None = None
    power: bool = False  # report the smallest mean shift found with 80% power
    # For calibration by Monte Carlo in small windows, where a null is far from its asymptotic
    # shape (an empty bin, one far value): `bins` gives the (training, window) counts a binned
    # statistic `on_counts(training, window rows)` is computed on; `on_values(window rows,
    # reference values)` is the statistic on raw values, measured between halves of the
    # training sample, which shows what resampling cannot: values beyond the reference's range.
    bins: Callable[[CheckInput], tuple[np.ndarray, np.ndarray] | None] | None = None
    on_counts: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    on_values: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    def limit(self, inp: CheckInput, alpha: float, floor: float | None = None) -> Limit:
        curve = inp.feature.nulls.get(self.name)
        _, N = inp.sizes(self.basis)
        base = self.baseline(inp)

        def significance(n: int) -> float:
            if curve is None or n <= 0:
                return math.inf
            sig = base + curve.at(effective_size(n, N))
            if self.bound is not None:
                sig = max(sig, self.bound(inp, alpha, n))
            return sig

        return self._sized(inp, significance, self.reach(inp),
                           self.floor if floor is None else floor, base)

    def detectable(self, limit: Limit, inp: CheckInput) -> float | None:
        n, N = inp.sizes(self.basis)
        if not self.power or n <= 0 or N <= 0 or not limit.decidable:
            return None
        return limit.threshold + POWER_Z * math.sqrt(1 / n + 1 / N)


@dataclass(frozen=True, kw_only=True)
class KolmogorovSmirnov(Distance):
    """KS: the measured null of the histogram KS, never above the exact two-sample critical
    value with both sizes (distribution-free, and never above 1: the histogram KS is at most the
    exact one, so that value is a valid threshold even where the measured tail is not)."""

    def limit(self, inp: CheckInput, alpha: float, floor: float | None = None) -> Limit:
        curve = inp.feature.nulls.get(self.name)
        _, N = inp.sizes(self.basis)

        def significance(n: int) -> float:
            if n <= 0:
                return math.inf
            exact = ks_critical(n, N, alpha)
            return exact if curve is None else min(exact, curve.at(effective_size(n, N)))

        return self._sized(inp, significance, self.reach(inp),
                           self.floor if floor is None else floor)


@dataclass(frozen=True, kw_only=True)
class PValue(Check):
    """A two-sample test: drift when its p-value is below the check's alpha, and paged only
    when `effect` (on the scale of the floor) is at least the floor."""

    effect: Callable[[CheckInput], float | None]
    effect_name: str
    lower_is_worse = True

    def limit(self, inp: CheckInput, alpha: float, floor: float | None = None) -> Limit:
        return Limit(alpha, alpha, self.floor if floor is None else floor)

    def assess(self, value: float | None, limit: Limit, inp: CheckInput) -> Severity:
        if value is None or not math.isfinite(value) or not value < limit.significance * (1 - TIE):
            return Severity.OK
        effect = self.effect(inp)
        if not limit.fixed and effect is not None and not effect >= limit.floor:
            return Severity.INFO
        strength = -math.log10(max(value, 1e-300))
        needed = -math.log10(max(limit.significance, 1e-300))
        return Severity.CRITICAL if strength >= CRITICAL_FACTOR * needed else Severity.WARNING

    def message(self, feature: str, value: float, limit: Limit, severity: Severity,
                inp: CheckInput) -> tuple[str, dict[str, Any]]:
        effect = self.effect(inp)
        details = {self.effect_name: effect}
        if severity is Severity.INFO:
            return (f"{feature}: {self.name} {value:.4g} < {limit.significance:.4g} is significant "
                    f"but {self.effect_name} {effect:.4g} is under the effect-size floor "
                    f"{limit.floor:.4g}", details)
        return f"{feature}: {self.name} {value:.4g} < {limit.significance:.4g}", details


@dataclass(frozen=True, kw_only=True)
class Rate(Check):
    """A share of events in the window against the beta-binomial bound of the training count:
    `events` gives the window's (events, trials), `prior` the training's. With `always_reported`
    any event is at least info (a seed rule: a value never seen is worth a look)."""

    events: Callable[[CheckInput], tuple[int, int]]
    prior: Callable[[CheckInput], tuple[float, float]]
    always_reported: bool = False
    describe: Callable[[str, int, float, Limit, CheckInput], str] | None = None
    details: Callable[[CheckInput], dict[str, Any]] | None = None  # more for the finding
    distribution: bool = False

    def limit(self, inp: CheckInput, alpha: float, floor: float | None = None) -> Limit:
        k0, n0 = self.prior(inp)
        baseline = k0 / n0 if n0 > 0 else 0.0
        return self._sized(inp, lambda n: rate_bound(k0, n0, n, alpha), 1.0,
                           self.floor if floor is None else floor, baseline)

    def assess(self, value: float | None, limit: Limit, inp: CheckInput) -> Severity:
        if value is None or not math.isfinite(value):
            return Severity.OK
        if limit.decidable and over(value, limit.threshold):
            critical = (value >= CRITICAL_FACTOR * limit.threshold
                        and value - limit.baseline >= CRITICAL_RATE_EXCESS)
            return Severity.CRITICAL if critical else Severity.WARNING
        if limit.decidable and over(value, limit.significance):
            return Severity.INFO
        if self.always_reported and self.events(inp)[0] > 0:
            return Severity.INFO
        return Severity.OK

    def message(self, feature: str, value: float, limit: Limit, severity: Severity,
                inp: CheckInput) -> tuple[str, dict[str, Any]]:
        count = self.events(inp)[0]
        details: dict[str, Any] = {"count": count, "training_rate": limit.baseline,
                                   **(self.details(inp) if self.details is not None else {})}
        if self.describe is not None:
            return self.describe(feature, count, value, limit, inp), details
        text = (f"{feature}: {self.name} {value:.2%} > {limit.threshold:.2%} "
                f"(training {limit.baseline:.2%})")
        if severity is Severity.INFO and over(value, limit.significance):
            text = (f"{feature}: {self.name} {value:.2%} is significant "
                    f"(> {limit.significance:.2%}) but under the effect-size floor of "
                    f"{limit.floor:.2%} above training ({limit.baseline:.2%})")
        return text, details
