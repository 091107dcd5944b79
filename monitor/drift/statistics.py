"""The statistics the registered checks compute, from one feature's training profile and one
window (a `CheckInput`): the counts they compare, what they can reach at most, the events behind
the rates, and the messages of the rates that describe their values (pure)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from monitor.drift.checks import CheckInput, Limit
from monitor.drift.distances import (
    PSI_FLOOR,
    js_distance,
    ks_from_histograms,
    proportions,
    wasserstein_from_histograms,
)
from monitor.drift.nulls import rate_bound
from monitor.profile.model import coarse
from monitor.summaries import CategoricalSummary, NumericSummary, TextSummary


# -- what the checks compare ----------------------------------------------------------------------
def scale_of(training: NumericSummary) -> float:
    """The training spread used to normalise shifts: std, else the range, else 1."""
    if training.std > 0:
        return training.std
    if training.count and training.max > training.min:
        return training.max - training.min
    return 1.0


def spread(values: np.ndarray) -> float:
    """`scale_of` for raw values."""
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return std if std > 0 else (float(np.ptp(values)) or 1.0)


def numeric_pair(inp: CheckInput) -> tuple[NumericSummary, NumericSummary] | None:
    t, w = inp.feature.summary, inp.window
    if isinstance(t, TextSummary) and isinstance(w, TextSummary):
        t, w = t.length, w.length
    assert isinstance(t, NumericSummary) and isinstance(w, NumericSummary)
    return (t, w) if t.count and w.count else None


def psi_bin_counts(inp: CheckInput) -> tuple[np.ndarray, np.ndarray] | None:
    """Training and window counts over the PSI/JS bins (numeric values, text lengths)."""
    pair = numeric_pair(inp)
    if pair is None:
        return None
    bins = inp.feature.psi_bins
    return coarse(pair[0].histogram, bins), coarse(pair[1].histogram, bins)


def categorical_bins(inp: CheckInput) -> tuple[np.ndarray, np.ndarray] | None:
    """Training and window counts over: the vocabulary, 'other', and unseen values pooled."""
    t, w = inp.feature.summary, inp.window
    assert isinstance(t, CategoricalSummary) and isinstance(w, CategoricalSummary)
    if not t.count or not w.count:
        return None
    return (np.concatenate((t.counts, [t.other, t.unseen_total])),
            np.concatenate((w.counts, [w.other, w.unseen_total])))


def vocabulary_bins(inp: CheckInput) -> tuple[np.ndarray, np.ndarray]:
    """Training and window token counts over the training vocabulary and 'other'."""
    f = inp.feature
    words = sorted(f.vocabulary)
    t = np.array([f.vocabulary[w] for w in words] + [f.vocabulary_other], dtype=float)
    inside = [inp.tokens.get(w, 0) for w in words]
    w = np.array(inside + [sum(inp.tokens.values()) - sum(inside)], dtype=float)
    return t, w


def oov_baseline(inp: CheckInput) -> float:
    total = sum(inp.feature.vocabulary.values()) + inp.feature.vocabulary_other
    return inp.feature.vocabulary_other / total if total else 0.0


def statistic_on(bins: tuple[np.ndarray, np.ndarray] | None, statistic) -> float | None:
    return None if bins is None else float(statistic(*bins))


def mean_shift_value(inp: CheckInput) -> float | None:
    pair = numeric_pair(inp)
    return None if pair is None else abs(pair[1].mean - pair[0].mean) / scale_of(pair[0])


def ks_value(inp: CheckInput) -> float | None:
    pair = numeric_pair(inp)
    return None if pair is None else ks_from_histograms(pair[0].histogram, pair[1].histogram)


def wasserstein_value(inp: CheckInput) -> float | None:
    pair = numeric_pair(inp)
    if pair is None:
        return None
    t, w = pair
    value = wasserstein_from_histograms(t.edges, t.histogram, w.histogram, w.below_sum,
                                        w.above_sum, t.below_sum, t.above_sum) / scale_of(t)
    return value if math.isfinite(value) else None


def language_count_pairs(inp: CheckInput) -> tuple[np.ndarray, np.ndarray] | None:
    if not inp.languages:
        return None
    names = sorted(set(inp.feature.language_counts) | set(inp.languages))
    return (np.array([inp.feature.language_counts.get(n, 0) for n in names], dtype=float),
            np.array([inp.languages.get(n, 0) for n in names], dtype=float))


def oov_rate_value(inp: CheckInput) -> float | None:
    t, w = vocabulary_bins(inp)
    return float(w[-1] / w.sum()) if w.sum() else None


def vocab_js_value(inp: CheckInput) -> float | None:
    t, w = vocabulary_bins(inp)
    return js_distance(t, w) if w.sum() else None


# -- what the statistics can reach ----------------------------------------------------------------
def psi_reach(training: np.ndarray) -> float:
    """The largest PSI any window shows against these training counts: all of it in one bin."""
    p = np.maximum(proportions(training), PSI_FLOOR)
    rest = (PSI_FLOOR - p) * np.log(PSI_FLOOR / p)
    return float((rest.sum() - rest + (1 - p) * np.log(1 / p)).max()) if p.size else 0.0


def js_reach(training: np.ndarray) -> float:
    """The largest JS distance any window shows against these training counts."""
    p = proportions(training)
    if p.size == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(p > 0, p * np.log2(2 * p / (1 + p)), 0.0)
    return float(np.sqrt(np.maximum(0.0, ((1 - p) + own + np.log2(2 / (1 + p))) / 2)).max())


def psi_bin_reach(statistic_reach):
    def reach(inp: CheckInput) -> float:
        pair = numeric_pair(inp)
        if pair is None:
            return math.inf
        return statistic_reach(coarse(pair[0].histogram, inp.feature.psi_bins))
    return reach


def categorical_reach(statistic_reach):
    def reach(inp: CheckInput) -> float:
        t = inp.feature.summary
        assert isinstance(t, CategoricalSummary)
        return statistic_reach(np.concatenate((t.counts, [t.other, 0])))
    return reach


# -- counts behind the rates ----------------------------------------------------------------------
def rate_of(events: tuple[int, int], empty: float | None = None) -> float | None:
    return events[0] / events[1] if events[1] else empty


def window_events(inp: CheckInput, attr: str) -> tuple[int, int]:
    return getattr(inp.window, attr), inp.window.records


def training_events(inp: CheckInput, attr: str) -> tuple[float, float]:
    t = inp.feature.summary
    return getattr(t, attr), t.records


def out_of_range_events(inp: CheckInput) -> tuple[int, int]:
    w = inp.window
    assert isinstance(w, NumericSummary)
    return w.below + w.above, w.count


def novel_events(inp: CheckInput) -> tuple[int, int]:
    w = inp.window
    assert isinstance(w, CategoricalSummary)
    return w.unseen_total, w.count


def unseen_language_events(inp: CheckInput) -> tuple[int, int]:
    known = inp.feature.language_counts
    return (sum(n for lang, n in inp.languages.items() if not known.get(lang)),
            sum(inp.languages.values()))


def novel_details(inp: CheckInput) -> dict[str, Any]:
    """The most frequent unseen values, with their counts."""
    w = inp.window
    assert isinstance(w, CategoricalSummary)
    return {"new_values": [[v, n] for v, n in w.top_unseen(5)]}


def describe_novel(feature: str, count: int, rate: float, limit: Limit, inp: CheckInput) -> str:
    w = inp.window
    assert isinstance(w, CategoricalSummary)
    shown = ", ".join(f"{v!r} x{n}" for v, n in w.top_unseen(5))
    return f"{feature}: {count} values never seen in training ({rate:.2%}): {shown}"


def describe_out_of_range(feature: str, count: int, rate: float, limit: Limit,
                           inp: CheckInput) -> str:
    t, w = inp.feature.summary, inp.window
    assert isinstance(t, NumericSummary) and isinstance(w, NumericSummary)
    return (f"{feature}: {count} values outside the training range [{t.min:.4g}, {t.max:.4g}] "
            f"({rate:.2%}; window min {w.min:.4g}, max {w.max:.4g})")


def language_bound(inp: CheckInput, alpha: float, n: int) -> float:
    """A one-language training sample shows no spread at all: a few texts misidentified by the
    detector must not page (the bound of one stray text in the training sample count)."""
    return rate_bound(0, inp.feature.text_sample, n, alpha)


def oov_bound(inp: CheckInput, alpha: float, n: int) -> float:
    """A training vocabulary that covered every sampled token still misses about one token in
    its count: never below the bound of the training OOV count over the window's tokens."""
    total = sum(inp.feature.vocabulary.values()) + inp.feature.vocabulary_other
    tokens = sum(inp.tokens.values())
    if not total or not tokens:
        return 0.0
    return rate_bound(inp.feature.vocabulary_other, total, tokens, alpha)
