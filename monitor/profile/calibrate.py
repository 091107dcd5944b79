"""Threshold calibration: the null distribution of each check, by resampling training windows.

For every feature, `windows` windows of the expected size are drawn with replacement from a
uniform sample of the training rows and compared with the profile, exactly as live windows are.
A gamma distribution fitted (by moments) to each check's values gives the threshold exceeded with
probability alpha: the feature's false-alarm budget split over its checks. The fitted tail is used
rather than the empirical quantile because a few hundred windows cannot show a 1-in-10,000 tail.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from monitor.drift.checks import CALIBRATED, LOWER_IS_WORSE, SAMPLE_CHECKS, check_alpha, rate_bound
from monitor.drift.evaluate import feature_metrics
from monitor.drift.metrics import oov_baseline, text_metrics
from monitor.ingest.schema import Kind
from monitor.profile.model import TEXT_PROFILE_SAMPLE, FeatureProfile, Profile
from monitor.summaries import TextSummary
from monitor.summaries.window import WindowSummary

OTHER_TOKEN = "\x00other"  # key for out-of-vocabulary tokens in a resampled token count


@dataclass
class TextSample:
    """A training text feature's sample, analysed once: language and token counts per text."""

    languages: list[str]
    tokens: list[Counter[str]]


def fit_threshold(values: np.ndarray, alpha: float, *, baseline: float | None = None) -> float:
    """The (1 - alpha) quantile of a gamma fitted to `values` by moments; never below the
    largest value seen. With `baseline`, a normal fit of values around it (for rates).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.chisquare(9, 4000) / 1000
    >>> t = fit_threshold(x, 1e-3)
    >>> bool(abs(t - stats.chi2.ppf(1 - 1e-3, 9) / 1000) < 0.004)
    True
    """
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if values.size == 0:
        return float("inf")
    top = float(values.max())
    mean = float(values.mean())
    var = float(values.var(ddof=1)) if values.size > 1 else 0.0
    if baseline is not None:
        return max(top, mean + stats.norm.ppf(1 - alpha) * math.sqrt(var))
    if mean <= 0 or var <= 0:
        return top if top > 0 else 1e-12
    shape, scale = mean * mean / var, var / mean
    return max(top, float(stats.gamma.ppf(1 - alpha, shape, scale=scale)))


def calibrate(profile: Profile, sample: dict[str, Any], rows: int,
              text_samples: dict[str, TextSample], *, windows: int = 200,
              seed: int = 0) -> dict[str, dict[str, float]]:
    """Thresholds per feature and check, at `profile.window_size` records per window."""
    rng = np.random.default_rng(seed)
    size = profile.window_size
    values: dict[str, dict[str, list[float]]] = {
        name: {check: [] for check in CALIBRATED[f.kind]} for name, f in profile.features.items()}
    for _ in range(windows):
        index = rng.integers(0, rows, size)
        window = WindowSummary(profile)
        window.update_columns({name: _take(col, index) for name, col in sample.items()}, size)
        for name, feature in profile.features.items():
            summary = window.features[name]
            if feature.kind is Kind.TEXT:
                assert isinstance(summary, TextSummary)
                langs, tokens = _resample_text(text_samples[name], summary.sample_size, size, rng)
                metrics = text_metrics(feature, summary, langs, tokens)
            else:
                metrics = feature_metrics(feature, summary)
            for check in values[name]:
                value = metrics.get(check)
                if value is not None:
                    values[name][check].append(float(value))
    thresholds: dict[str, dict[str, float]] = {}
    for name, feature in profile.features.items():
        alpha = check_alpha(feature.kind, profile.false_alarm_rate)
        out: dict[str, float] = {}
        for check, seen in values[name].items():
            if not seen:
                continue
            # Resampling from the training data leaves out the training data's own noise: a
            # live window and the profile are two samples, so the null spread is larger by
            # (1/W + 1/N) / (1/W); statistics of exponent e scale with its e-th power.
            reference = _reference_size(feature, check, text_samples)
            window_n = text_window(feature, size) if check in SAMPLE_CHECKS else size
            inflate = (1 + window_n / reference) if reference else 1.0
            exponent = CALIBRATED[feature.kind][check]
            if check in LOWER_IS_WORSE:
                logs = -np.log10(np.maximum(np.asarray(seen), 1e-300))
                # p-values are uniform under no drift: never looser than alpha itself.
                out[check] = min(alpha, float(10 ** -fit_threshold(logs, alpha)))
            elif check == "oov_rate":
                base = oov_baseline(feature)
                fitted = fit_threshold(np.asarray(seen), alpha, baseline=base)
                out[check] = max(base + (fitted - base) * inflate ** exponent,
                                 _oov_floor(feature, text_samples, window_n, alpha))
            else:
                out[check] = fit_threshold(np.asarray(seen), alpha) * inflate ** exponent
            if check == "language_tvd":
                # A training sample in one language shows no spread at all; a few texts
                # misidentified by the detector must not page: one in the sample count.
                out[check] = max(out[check], rate_bound(
                    1.0 / (TEXT_PROFILE_SAMPLE + 1), window_n, alpha))
        thresholds[name] = {k: _round(v) for k, v in out.items()}
    return thresholds


def _oov_floor(feature: FeatureProfile, text_samples: dict[str, TextSample], texts: int,
               alpha: float) -> float:
    """A training vocabulary that covered every sampled token still misses about one token in
    N: the OOV threshold is never below the binomial bound of that rate over a window sample."""
    sample = text_samples.get(feature.name)
    if sample is None or not sample.tokens:
        return 0.0
    total = sum(sum(c.values()) for c in sample.tokens)
    p0 = max(oov_baseline(feature), 1.0 / (total + 1))
    return rate_bound(p0, max(1, round(texts * total / len(sample.tokens))), alpha)


def text_window(feature: FeatureProfile, size: int) -> int:
    summary = feature.summary
    if isinstance(summary, TextSummary):
        return min(size, summary.sample_size)
    return size


def _reference_size(feature: FeatureProfile, check: str,
                    text_samples: dict[str, TextSample]) -> int:
    """How many training values the profile's side of a check rests on."""
    if check in SAMPLE_CHECKS:
        return len(text_samples[feature.name].languages) if feature.name in text_samples else 0
    summary = feature.summary
    if isinstance(summary, TextSummary):
        return summary.length.count
    return summary.count


def _round(x: float) -> float:
    """Thresholds to 6 significant digits: stable JSON, no false precision."""
    return float(f"{x:.6g}") if math.isfinite(x) else x


def _take(column: Any, index: np.ndarray) -> Any:
    from monitor.ingest.columns import NumericColumn

    if isinstance(column, NumericColumn):
        return NumericColumn(column.values[index], column.null[index], column.mismatch[index])
    return column[index].tolist()


def _resample_text(sample: TextSample, sample_size: int, window_size: int,
                   rng: np.random.Generator) -> tuple[Counter[str], Counter[str]]:
    """Language and token counts of a resampled window's text sample."""
    n = len(sample.languages)
    if n == 0:
        return Counter(), Counter()
    picks = rng.integers(0, n, min(sample_size, window_size))
    langs = Counter(sample.languages[i] for i in picks)
    tokens: Counter[str] = Counter()
    for i in picks:
        tokens.update(sample.tokens[i])
    return langs, tokens
