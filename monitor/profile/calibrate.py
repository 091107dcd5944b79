"""Threshold calibration: each check's null distribution, measured by resampling training windows
at several window sizes.

At every size of a ladder (10 to 3,000 records, and the expected window size; text-sample checks
10 to the window's text sample), `windows` windows are drawn with replacement from a uniform
sample of the training rows and compared with the profile exactly as live windows are. A gamma
fitted to each check's values there (a normal for an excess over a baseline) gives its
(1 - alpha) quantile, alpha being the feature's false-alarm budget split over its checks. The
quantiles, by effective size, make the check's `NullCurve`; run time reads it at the effective
size of the window against the whole profile (`monitor.drift.nulls`), so the profile's own
sampling noise counts as much as the window's.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from monitor.drift.checks import Basis, CheckInput
from monitor.drift.nulls import NullCurve, fit_quantile
from monitor.drift.registry import calibrated, check_alpha
from monitor.profile.model import FeatureProfile, Profile
from monitor.summaries import TextSummary
from monitor.summaries.window import WindowSummary

OTHER_TOKEN = "\x00other"  # key for out-of-vocabulary tokens in a resampled token count
LADDER = (10, 30, 100, 300, 1000, 3000)  # window sizes (records) the nulls are measured at


@dataclass
class TextSample:
    """A training text feature's sample, analysed once: language and token counts per text."""

    languages: list[str]
    tokens: list[Counter[str]]


def ladder(limit: int, expected: int | None = None) -> list[int]:
    """The sizes to measure at, none above `limit` (a window of n against N values has an
    effective size below both, so larger sizes are never read).

    >>> ladder(500, 200), ladder(5)
    ([10, 30, 100, 200, 300, 500], [5])
    """
    sizes = {s for s in LADDER if s <= limit} | ({expected} if expected and expected <= limit else set())
    if limit >= 1 and (not sizes or max(sizes) < limit <= LADDER[-1]):
        sizes.add(limit)
    return sorted(sizes)


def null_quantile(values: list[float], alpha: float) -> float:
    """The (1 - alpha) quantile: a gamma for a statistic >= 0, a normal fit when it goes below
    zero (an excess over a baseline).

    >>> round(null_quantile([-1.0, 0.0, 1.0], 0.0227), 2)
    2.0
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.inf
    if x.min() < 0:
        sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
        return max(float(x.max()), float(x.mean()) + float(stats.norm.isf(alpha)) * sd)
    return fit_quantile(x, alpha)


def calibrate(profile: Profile, sample: dict[str, Any], rows: int,
              text_samples: dict[str, TextSample], *, windows: int = 200,
              seed: int = 0) -> dict[str, dict[str, NullCurve]]:
    """Null curves per feature and calibrated check. `sample` holds `rows` training rows drawn
    uniformly from the profile's training data (all of it when small enough)."""
    rng = np.random.default_rng(seed)
    seen: dict[tuple[str, str], dict[float, list[float]]] = {}
    training_rows = int(profile.source.get("rows", rows)) or rows
    for size in ladder(training_rows, profile.window_size):
        _measure_records(profile, sample, rows, training_rows, size, windows, rng, seen)
    for name, text in text_samples.items():
        feature = profile.features[name]
        assert isinstance(feature.summary, TextSummary)
        for size in ladder(min(feature.summary.sample_size, len(text.languages))):
            _measure_texts(feature, text, size, windows, rng, seen)
    curves: dict[str, dict[str, NullCurve]] = {name: {} for name in profile.features}
    for (name, check_name), by_size in seen.items():
        feature = profile.features[name]
        alpha = check_alpha(feature.kind, profile.false_alarm_rate)
        check = calibrated(feature.kind)[check_name]
        points = [(m, null_quantile(v, alpha)) for m, v in sorted(by_size.items()) if v]
        if points:
            curves[name][check_name] = NullCurve.fit([m for m, _ in points],
                                                     [q for _, q in points], check.law)
    return curves


def _measure_records(profile: Profile, sample: dict[str, Any], rows: int, training_rows: int,
                     size: int, windows: int, rng: np.random.Generator,
                     seen: dict[tuple[str, str], dict[float, list[float]]]) -> None:
    """Checks on values or records: resampled windows of `size` training rows."""
    values: dict[tuple[str, str], list[float]] = {}
    counts: dict[str, list[int]] = {name: [] for name in profile.features}
    for _ in range(windows):
        index = rng.integers(0, rows, size)
        window = WindowSummary(profile)
        window.update_columns({name: _take(col, index) for name, col in sample.items()}, size)
        for name, feature in profile.features.items():
            inp = CheckInput(feature, window.features[name])
            counts[name].append(inp.sizes(Basis.VALUES)[0])
            for check_name, check in calibrated(feature.kind).items():
                if check.basis is Basis.TEXTS:
                    continue
                value = check.compute(inp)
                if value is not None:
                    values.setdefault((name, check_name), []).append(
                        float(value) - check.baseline(inp))
    for (name, check_name), vs in values.items():
        n = float(np.mean(counts[name]))
        m = _calibrated_size(n, profile.features[name], rows, training_rows)
        seen.setdefault((name, check_name), {})[m] = vs


def _calibrated_size(n: float, feature: FeatureProfile, rows: int, training_rows: int) -> float:
    """The effective size a resampled window of n values was measured at. Drawn from a sample
    of the training rows that is smaller than the training data, it also carries the sample's
    own deviation from the profile: 1/m = 1/n + 1/R - 1/N (R values in the sample, N in all)."""
    if rows >= training_rows or n <= 0:
        return n
    total = feature.summary.length.count if isinstance(feature.summary, TextSummary) \
        else feature.summary.count
    if total <= 0:
        return n
    in_sample = total * rows / training_rows
    return 1.0 / (1.0 / n + 1.0 / in_sample - 1.0 / total)


def _measure_texts(feature: FeatureProfile, text: TextSample, size: int, windows: int,
                   rng: np.random.Generator,
                   seen: dict[tuple[str, str], dict[float, list[float]]]) -> None:
    """Checks on the sampled texts: samples of `size` texts drawn from the training sample
    (which is what the profile's language and vocabulary counts were made of)."""
    checks = {n: c for n, c in calibrated(feature.kind).items() if c.basis is Basis.TEXTS}
    for _ in range(windows):
        langs, tokens = _resample_text(text, size, rng)
        inp = CheckInput(feature, feature.summary, langs, tokens)
        for check_name, check in checks.items():
            value = check.compute(inp)
            if value is not None:
                seen.setdefault((feature.name, check_name), {}).setdefault(float(size), []).append(
                    float(value) - check.baseline(inp))


def _take(column: Any, index: np.ndarray) -> Any:
    from monitor.ingest.columns import NumericColumn

    if isinstance(column, NumericColumn):
        return NumericColumn(column.values[index], column.null[index], column.mismatch[index])
    return column[index].tolist()


def _resample_text(sample: TextSample, size: int, rng: np.random.Generator
                   ) -> tuple[Counter[str], Counter[str]]:
    """Language and token counts of `size` texts drawn from the training sample."""
    n = len(sample.languages)
    if n == 0:
        return Counter(), Counter()
    picks = rng.integers(0, n, size)
    langs = Counter(sample.languages[i] for i in picks)
    tokens: Counter[str] = Counter()
    for i in picks:
        tokens.update(sample.tokens[i])
    return langs, tokens
