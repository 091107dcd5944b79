"""Per-feature comparison metrics of a window summary against the training summary (pure).

The metric names are a contract (README "Metrics"): dashboards and alert consumers use them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from monitor.drift.distances import (
    chi2_p_value,
    js_distance,
    ks_from_histograms,
    psi,
    tvd,
    wasserstein_from_histograms,
)
from monitor.profile.model import FeatureProfile, coarse
from monitor.summaries import CategoricalSummary, NumericSummary, TextSummary

NEW_VALUES_SHOWN = 5


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _common(window: NumericSummary | CategoricalSummary | TextSummary) -> dict[str, Any]:
    """The metrics every kind reports."""
    return {
        "records": window.records,
        "count": window.count,
        "null_rate": _rate(window.nulls, window.records),
        "type_mismatch_rate": _rate(window.mismatches, window.records),
    }


def scale_of(training: NumericSummary) -> float:
    """The training spread used to normalise shifts: std, else the range, else 1."""
    if training.std > 0:
        return training.std
    if training.count and training.max > training.min:
        return training.max - training.min
    return 1.0


def numeric_metrics(feature: FeatureProfile, window: NumericSummary) -> dict[str, Any]:
    t = feature.summary
    assert isinstance(t, NumericSummary)
    m: dict[str, Any] = {
        **_common(window),
        "nonfinite_rate": _rate(window.nonfinite, window.records),
        "training_mean": t.mean,
        "training_min": t.min if t.count else None,
        "training_max": t.max if t.count else None,
    }
    if window.count == 0 or t.count == 0:
        m.update({"out_of_range_rate": 0.0, "min": None, "max": None, "mean": None,
                  "std": None, "mean_shift": None, "mean_z": None, "psi": None, "js": None,
                  "ks": None, "wasserstein": None})
        return m
    scale = scale_of(t)
    m.update({
        "out_of_range_rate": _rate(window.below + window.above, window.count),
        "out_of_range_count": window.below + window.above,
        "min": window.min,
        "max": window.max,
        "mean": window.mean,
        "std": window.std,
        "mean_shift": abs(window.mean - t.mean) / scale,
        # Signed shift in standard errors: the input of the trend detector.
        "mean_z": (window.mean - t.mean) / scale * np.sqrt(window.count),
        "psi": psi(coarse(t.histogram, feature.psi_bins), coarse(window.histogram, feature.psi_bins)),
        "js": js_distance(coarse(t.histogram, feature.psi_bins),
                          coarse(window.histogram, feature.psi_bins)),
        "ks": ks_from_histograms(t.histogram, window.histogram),
        "wasserstein": _none_if_nan(wasserstein_from_histograms(
            t.edges, t.histogram, window.histogram, window.below_sum, window.above_sum,
            t.below_sum, t.above_sum) / scale),
    })
    return m


def categorical_bins(training: CategoricalSummary, window: CategoricalSummary
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Training and window counts over: the vocabulary, 'other', and unseen values pooled."""
    t = np.concatenate((training.counts, [training.other, training.unseen_total]))
    w = np.concatenate((window.counts, [window.other, window.unseen_total]))
    return t, w


def categorical_metrics(feature: FeatureProfile, window: CategoricalSummary) -> dict[str, Any]:
    t = feature.summary
    assert isinstance(t, CategoricalSummary)
    m: dict[str, Any] = {
        **_common(window),
        "novelty_rate": _rate(window.unseen_total, window.count),
        "novelty_count": window.unseen_total,
        "new_values": [[v, n] for v, n in window.top_unseen(NEW_VALUES_SHOWN)],
    }
    if window.count == 0 or t.count == 0:
        m.update({"psi": None, "js": None, "chi2_p": None})
        return m
    tb, wb = categorical_bins(t, window)
    m.update({"psi": psi(tb, wb), "js": js_distance(tb, wb), "chi2_p": chi2_p_value(tb, wb)})
    return m


def vocabulary_bins(feature: FeatureProfile, token_counts: Counter[str]
                    ) -> tuple[np.ndarray, np.ndarray]:
    words = sorted(feature.vocabulary)
    t = np.array([feature.vocabulary[w] for w in words] + [feature.vocabulary_other], dtype=float)
    inside = [token_counts.get(w, 0) for w in words]
    w = np.array(inside + [sum(token_counts.values()) - sum(inside)], dtype=float)
    return t, w


def oov_baseline(feature: FeatureProfile) -> float:
    total = sum(feature.vocabulary.values()) + feature.vocabulary_other
    return feature.vocabulary_other / total if total else 0.0


def text_metrics(feature: FeatureProfile, window: TextSummary,
                 languages: Counter[str], token_counts: Counter[str]) -> dict[str, Any]:
    t = feature.summary
    assert isinstance(t, TextSummary)
    m: dict[str, Any] = {
        **_common(window),
        "training_length_mean": t.length.mean,
        "sampled": len(window.sample),
    }
    if window.count == 0:
        m.update({"length_mean": None, "token_mean": None, "length_psi": None,
                  "language_tvd": None, "unseen_language_rate": 0.0, "oov_rate": None,
                  "vocab_js": None, "languages": {}})
        return m
    m.update(sample_metrics(feature, languages, token_counts))
    m.update({
        "length_mean": window.length.mean,
        "token_mean": window.tokens.mean,
        "length_z": (window.length.mean - t.length.mean) / scale_of(t.length) * np.sqrt(window.count),
        "length_psi": psi(coarse(t.length.histogram, feature.psi_bins),
                          coarse(window.length.histogram, feature.psi_bins)),
    })
    return m


def sample_metrics(feature: FeatureProfile, languages: Counter[str],
                   token_counts: Counter[str]) -> dict[str, Any]:
    """The text metrics computed on the window's sample of texts."""
    names = sorted(set(feature.languages) | set(languages))
    train = np.array([feature.languages.get(n, 0.0) for n in names])
    seen = np.array([languages.get(n, 0) for n in names], dtype=float)
    sampled = seen.sum()
    unseen = sum(n for lang, n in languages.items() if feature.languages.get(lang, 0.0) == 0.0)
    tb, wb = vocabulary_bins(feature, token_counts)
    total_tokens = wb.sum()
    return {
        "languages": {n: int(c) for n, c in sorted(languages.items())},
        "language_tvd": tvd(train, seen) if sampled else None,
        "unseen_language_rate": _rate(unseen, int(sampled)),
        "oov_rate": float(wb[-1] / total_tokens) if total_tokens else None,
        "vocab_js": js_distance(tb, wb) if total_tokens else None,
    }
