"""Threshold calibration: each check's null distribution, measured by resampling training windows
at several window sizes.

At every size of a ladder (10 to 3,000 records, and the expected window size; text-sample checks
10 to the window's text sample), `windows` windows are drawn with replacement from a uniform
sample of the training rows and compared with the profile exactly as live windows are. A gamma
fitted to each check's values there (a normal for an excess over a baseline) gives its
(1 - alpha) quantile, alpha being the feature's false-alarm budget split over its checks. Small
windows (up to 300) are also drawn by Monte Carlo, 100 times as many: binned checks as
multinomial counts over the profile's bins, raw-value checks between two halves of the training
sample (which shows new values beyond the range); there the tail is read from the draws too.
The quantiles, by effective size, make the check's `NullCurve`; run time reads it at the
effective size of the window against the whole profile (`monitor.drift.nulls`), so the
profile's own sampling noise counts as much as the window's.
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
# Up to this window size a null is far from its asymptotic shape (an empty bin, one far value
# make a mixture a fitted gamma misses): it is also drawn by Monte Carlo, DRAWS_PER_WINDOW times
# the calibration windows (20,000 by default: enough to read a 1-in-8,000 tail itself).
MONTE_CARLO_SIZE = 300
DRAWS_PER_WINDOW = 100
SPLITS = 8  # halvings of the training sample per size
REFERENCE_POINTS = 2001  # quantiles summarising the reference half for raw-value statistics
# (feature, check) -> effective size -> the value lists measured there (resampled, split)
Measured = dict[tuple[str, str], dict[float, list[np.ndarray]]]


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
    sizes = {s for s in LADDER if s <= limit}
    if expected and expected <= limit:
        sizes.add(expected)
    if limit >= 1 and (not sizes or max(sizes) < limit <= LADDER[-1]):
        sizes.add(limit)
    return sorted(sizes)


def null_quantile(values: np.ndarray | list[float], alpha: float) -> float:
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
    quantile = fit_quantile(x, alpha)
    if x.size * alpha >= 2:  # enough draws to see the tail itself (Monte Carlo)
        quantile = max(quantile, float(np.quantile(x, 1 - alpha)))
    return quantile


def calibrate(profile: Profile, sample: dict[str, Any], rows: int,
              text_samples: dict[str, TextSample], *, windows: int = 200,
              seed: int = 0) -> dict[str, dict[str, NullCurve]]:
    """Null curves per feature and calibrated check. `sample` holds `rows` training rows drawn
    uniformly from the profile's training data (all of it when small enough)."""
    rng = np.random.default_rng(seed)
    seen: Measured = {}
    training_rows = int(profile.source.get("rows", rows)) or rows
    for size in ladder(training_rows, profile.window_size):
        sizes = _measure_records(profile, sample, rows, training_rows, size, windows, rng, seen)
        if size <= MONTE_CARLO_SIZE:
            _measure_counts(profile, sizes, DRAWS_PER_WINDOW * windows, rng, seen)
            _measure_split(profile, sample, size, sizes, DRAWS_PER_WINDOW * windows, rng, seen)
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
        points = [(m, max(null_quantile(v, alpha) for v in runs if v.size))
                  for m, runs in sorted(by_size.items()) if any(v.size for v in runs)]
        if points:
            curves[name][check_name] = NullCurve.fit([m for m, _ in points],
                                                     [q for _, q in points], check.law)
    return curves


def _measure_records(profile: Profile, sample: dict[str, Any], rows: int, training_rows: int,
                     size: int, windows: int, rng: np.random.Generator,
                     seen: Measured) -> dict[str, float]:
    """Checks on values or records: resampled windows of `size` training rows. Returns the
    effective size measured at, per feature."""
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
    sizes = {name: _calibrated_size(float(np.mean(c)), profile.features[name], rows,
                                    training_rows) for name, c in counts.items()}
    for (name, check_name), vs in values.items():
        seen.setdefault((name, check_name), {}).setdefault(sizes[name], []).append(
            np.asarray(vs, dtype=float))
    return sizes


def _measure_counts(profile: Profile, sizes: dict[str, float], draws: int,
                    rng: np.random.Generator, seen: Measured) -> None:
    """Binned checks: `draws` windows of the size measured by resampling, drawn as multinomial
    counts over the profile's own bins (what resampling draws, without its per-window cost)."""
    for name, feature in profile.features.items():
        checks = {n: c for n, c in calibrated(feature.kind).items()
                  if c.bins is not None and c.on_counts is not None}
        if not checks or name not in sizes:
            continue
        drawn: dict[int, np.ndarray] = {}
        for check_name, check in checks.items():
            assert check.bins is not None and check.on_counts is not None
            bins = check.bins(CheckInput(feature, feature.summary))
            if bins is None:
                continue
            training = bins[0]
            n = max(1, round(sizes[name]))
            key = id(check.bins)
            if key not in drawn:  # psi and js share their draws; memory bounded for many bins
                count = min(draws, 4_000_000 // training.size)
                drawn[key] = rng.multinomial(n, training / training.sum(), size=count)
            values = check.on_counts(training, drawn[key])
            seen.setdefault((name, check_name), {}).setdefault(sizes[name], []).append(
                np.asarray(values, dtype=float))


def _measure_split(profile: Profile, sample: dict[str, Any], size: int, sizes: dict[str, float],
                   draws: int, rng: np.random.Generator, seen: Measured) -> None:
    """Checks with a raw-value statistic: the training sample's values split in two halves, a
    reference and `draws` windows of `size` drawn from the other. The comparison is two-sample like
    a live one, so values beyond the reference's range come up as often as beyond the profile's
    (resampling never shows them: heavy tails in small windows). Filed beside the resampled
    windows of the same size (`sizes`), whose effective size is a little larger: the
    conservative side; the larger of the quantiles is used."""
    from monitor.ingest.columns import NumericColumn

    for name, feature in profile.features.items():
        checks = {n: c for n, c in calibrated(feature.kind).items() if c.on_values is not None}
        column = sample.get(name)
        if not checks or not isinstance(column, NumericColumn) or name not in sizes:
            continue
        values = column.values[np.isfinite(column.values)]
        half = values.size // 2
        if size > half or half < 2:
            continue
        found: dict[str, list[np.ndarray]] = {n: [] for n in checks}
        for _ in range(SPLITS):
            order = rng.permutation(values.size)
            reference = np.sort(values[order[:half]])
            reference = reference[np.linspace(0, half - 1, min(half, REFERENCE_POINTS)).astype(int)]
            rest = values[order[half:]]
            windows = rest[rng.integers(0, rest.size, (max(1, draws // SPLITS), size))]
            for check_name, check in checks.items():
                assert check.on_values is not None
                found[check_name].append(np.asarray(check.on_values(windows, reference), float))
        for check_name, parts in found.items():
            seen.setdefault((name, check_name), {}).setdefault(sizes[name], []).append(
                np.concatenate(parts))


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
                   rng: np.random.Generator, seen: Measured) -> None:
    """Checks on the sampled texts: samples of `size` texts drawn from the training sample
    (which is what the profile's language and vocabulary counts were made of)."""
    checks = {n: c for n, c in calibrated(feature.kind).items() if c.basis is Basis.TEXTS}
    found: dict[str, list[float]] = {n: [] for n in checks}
    for _ in range(windows):
        langs, tokens = _resample_text(text, size, rng)
        inp = CheckInput(feature, feature.summary, langs, tokens)
        for check_name, check in checks.items():
            value = check.compute(inp)
            if value is not None:
                found[check_name].append(float(value) - check.baseline(inp))
    for check_name, vs in found.items():
        seen.setdefault((feature.name, check_name), {}).setdefault(float(size), []).append(
            np.asarray(vs, dtype=float))


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
