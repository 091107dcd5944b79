"""Every check, once: its name (the metric and `threshold_<name>` field), the feature kinds it
runs on, how it is computed, how its threshold scales with the window and training sizes, its
effect-size floor and its README row. Evaluation, calibration, metric points, dashboards and
reports read this list; adding a check touches only this file (and the README table it prints:
`python -m monitor.drift.registry`).
"""

from __future__ import annotations

import math

import numpy as np

from monitor.drift.checks import (
    Basis,
    Check,
    CheckInput,
    Distance,
    KolmogorovSmirnov,
    Limit,
    PValue,
    Rate,
)
from monitor.drift.distances import (
    PSI_FLOOR,
    contingency_p_value,
    js_distance,
    ks_from_histograms,
    proportions,
    psi,
    tvd,
    wasserstein_from_histograms,
    wasserstein_rows,
)
from monitor.drift.nulls import rate_bound
from monitor.ingest.schema import Kind
from monitor.profile.model import coarse
from monitor.summaries import CategoricalSummary, NumericSummary, TextSummary

NUMERIC, CATEGORICAL, TEXT = (frozenset({k}) for k in (Kind.NUMERIC, Kind.CATEGORICAL, Kind.TEXT))
ALL_KINDS = frozenset(Kind)


# -- what the checks compare ------------------------------------------------------------------------
def scale_of(training: NumericSummary) -> float:
    """The training spread used to normalise shifts: std, else the range, else 1."""
    if training.std > 0:
        return training.std
    if training.count and training.max > training.min:
        return training.max - training.min
    return 1.0


def _spread(values: np.ndarray) -> float:
    """`scale_of` for raw values."""
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return std if std > 0 else (float(np.ptp(values)) or 1.0)


def _numeric(inp: CheckInput) -> tuple[NumericSummary, NumericSummary] | None:
    t, w = inp.feature.summary, inp.window
    if isinstance(t, TextSummary) and isinstance(w, TextSummary):
        t, w = t.length, w.length
    assert isinstance(t, NumericSummary) and isinstance(w, NumericSummary)
    return (t, w) if t.count and w.count else None


def _grouped(inp: CheckInput) -> tuple[np.ndarray, np.ndarray] | None:
    """Training and window counts over the PSI/JS bins (numeric values, text lengths)."""
    pair = _numeric(inp)
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


def _on(bins: tuple[np.ndarray, np.ndarray] | None, statistic) -> float | None:
    return None if bins is None else float(statistic(*bins))


def _mean_shift(inp: CheckInput) -> float | None:
    pair = _numeric(inp)
    return None if pair is None else abs(pair[1].mean - pair[0].mean) / scale_of(pair[0])


def _ks(inp: CheckInput) -> float | None:
    pair = _numeric(inp)
    return None if pair is None else ks_from_histograms(pair[0].histogram, pair[1].histogram)


def _wasserstein(inp: CheckInput) -> float | None:
    pair = _numeric(inp)
    if pair is None:
        return None
    t, w = pair
    value = wasserstein_from_histograms(t.edges, t.histogram, w.histogram, w.below_sum,
                                        w.above_sum, t.below_sum, t.above_sum) / scale_of(t)
    return value if math.isfinite(value) else None


def _language_counts(inp: CheckInput) -> tuple[np.ndarray, np.ndarray] | None:
    if not inp.languages:
        return None
    names = sorted(set(inp.feature.language_counts) | set(inp.languages))
    return (np.array([inp.feature.language_counts.get(n, 0) for n in names], dtype=float),
            np.array([inp.languages.get(n, 0) for n in names], dtype=float))


def _oov_rate(inp: CheckInput) -> float | None:
    t, w = vocabulary_bins(inp)
    return float(w[-1] / w.sum()) if w.sum() else None


def _vocab_js(inp: CheckInput) -> float | None:
    t, w = vocabulary_bins(inp)
    return js_distance(t, w) if w.sum() else None


# -- what the statistics can reach ------------------------------------------------------------------
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


def _grouped_reach(statistic_reach):
    def reach(inp: CheckInput) -> float:
        pair = _numeric(inp)
        if pair is None:
            return math.inf
        return statistic_reach(coarse(pair[0].histogram, inp.feature.psi_bins))
    return reach


def _categorical_reach(statistic_reach):
    def reach(inp: CheckInput) -> float:
        t = inp.feature.summary
        assert isinstance(t, CategoricalSummary)
        return statistic_reach(np.concatenate((t.counts, [t.other, 0])))
    return reach


# -- counts behind the rates -------------------------------------------------------------------------
def _share(events: tuple[int, int], empty: float | None = None) -> float | None:
    return events[0] / events[1] if events[1] else empty


def _window_events(inp: CheckInput, attr: str) -> tuple[int, int]:
    return getattr(inp.window, attr), inp.window.records


def _training_events(inp: CheckInput, attr: str) -> tuple[float, float]:
    t = inp.feature.summary
    return getattr(t, attr), t.records


def _out_of_range(inp: CheckInput) -> tuple[int, int]:
    w = inp.window
    assert isinstance(w, NumericSummary)
    return w.below + w.above, w.count


def _novel(inp: CheckInput) -> tuple[int, int]:
    w = inp.window
    assert isinstance(w, CategoricalSummary)
    return w.unseen_total, w.count


def _unseen_languages(inp: CheckInput) -> tuple[int, int]:
    known = inp.feature.language_counts
    return (sum(n for lang, n in inp.languages.items() if not known.get(lang)),
            sum(inp.languages.values()))


def _describe_novel(feature: str, count: int, rate: float, limit: Limit, inp: CheckInput) -> str:
    w = inp.window
    assert isinstance(w, CategoricalSummary)
    shown = ", ".join(f"{v!r} x{n}" for v, n in w.top_unseen(5))
    return f"{feature}: {count} values never seen in training ({rate:.2%}): {shown}"


def _describe_out_of_range(feature: str, count: int, rate: float, limit: Limit,
                           inp: CheckInput) -> str:
    t, w = inp.feature.summary, inp.window
    assert isinstance(t, NumericSummary) and isinstance(w, NumericSummary)
    return (f"{feature}: {count} values outside the training range [{t.min:.4g}, {t.max:.4g}] "
            f"({rate:.2%}; window min {w.min:.4g}, max {w.max:.4g})")


def _language_bound(inp: CheckInput, alpha: float, n: int) -> float:
    """A one-language training sample shows no spread at all: a few texts misidentified by the
    detector must not page (the bound of one stray text in the training sample count)."""
    return rate_bound(0, inp.feature.text_sample, n, alpha)


def _oov_bound(inp: CheckInput, alpha: float, n: int) -> float:
    """A training vocabulary that covered every sampled token still misses about one token in
    its count: never below the bound of the training OOV count over the window's tokens."""
    total = sum(inp.feature.vocabulary.values()) + inp.feature.vocabulary_other
    tokens = sum(inp.tokens.values())
    if not total or not tokens:
        return 0.0
    return rate_bound(inp.feature.vocabulary_other, total, tokens, alpha)


# -- the registry --------------------------------------------------------------------------------------
CHECKS: tuple[Check, ...] = (
    Rate(name="null_rate", kinds=ALL_KINDS, floor=0.001, basis=Basis.RECORDS,
         compute=lambda inp: _share(_window_events(inp, "nulls"), 0.0),
         events=lambda inp: _window_events(inp, "nulls"),
         prior=lambda inp: _training_events(inp, "nulls"),
         meaning="share of records with the feature null or missing"),
    Rate(name="type_mismatch_rate", kinds=ALL_KINDS, floor=0.001, basis=Basis.RECORDS,
         compute=lambda inp: _share(_window_events(inp, "mismatches"), 0.0),
         events=lambda inp: _window_events(inp, "mismatches"),
         prior=lambda inp: _training_events(inp, "mismatches"),
         meaning="share of records with a value of the wrong type"),
    Rate(name="out_of_range_rate", kinds=NUMERIC, floor=0.001, always_reported=True,
         compute=lambda inp: _share(_out_of_range(inp), 0.0),
         events=_out_of_range, describe=_describe_out_of_range,
         # A new value falls outside the min and max of N exchangeable training values with
         # chance Beta(2, N - 1): events 1.5 with the Jeffreys 0.5 added.
         prior=lambda inp: (1.5, inp.feature.summary.count),
         meaning="share of values outside the training [min, max]"),
    Distance(name="mean_shift", kinds=NUMERIC, law=0.5, floor=0.025, compute=_mean_shift,
             power=True, on_values=lambda w, t: np.abs(w.mean(axis=-1) - t.mean()) / _spread(t),
             meaning="\\|window mean − training mean\\| / training std"),
    Distance(name="psi", kinds=NUMERIC, law=1.0, floor=0.001, bins=_grouped, on_counts=psi,
             compute=lambda inp: _on(_grouped(inp), psi), reach=_grouped_reach(psi_reach),
             meaning="Population Stability Index over ~10 training-quantile bins (values outside "
                     "the training range count in the first or last), proportions floored at 1e-4"),
    Distance(name="js", kinds=NUMERIC, law=0.5, floor=0.01, bins=_grouped, on_counts=js_distance,
             compute=lambda inp: _on(_grouped(inp), js_distance), reach=_grouped_reach(js_reach),
             meaning="Jensen-Shannon distance, base 2, same bins"),
    KolmogorovSmirnov(name="ks", kinds=NUMERIC, law=0.5, floor=0.01, compute=_ks,
                      reach=lambda inp: 1.0,
                      meaning="two-sample KS statistic against the training distribution (100 "
                              "quantile bins; within 0.02 of `scipy.stats.ks_2samp`)"),
    Distance(name="wasserstein", kinds=NUMERIC, law=0.5, floor=0.025, compute=_wasserstein,
             on_values=lambda w, t: wasserstein_rows(w, t) / _spread(t),
             meaning="earth mover's distance / training std"),
    Rate(name="novelty_rate", kinds=CATEGORICAL, floor=0.001, always_reported=True,
         compute=lambda inp: _share(_novel(inp), 0.0),
         events=_novel, describe=_describe_novel,
         prior=lambda inp: (inp.feature.unseen_mass * inp.feature.summary.count,
                            inp.feature.summary.count),
         meaning="share of values never seen in training (`new_values`: the 5 most frequent)"),
    Distance(name="psi", kinds=CATEGORICAL, law=1.0, floor=0.001, bins=categorical_bins,
             on_counts=psi, compute=lambda inp: _on(categorical_bins(inp), psi),
             reach=_categorical_reach(psi_reach),
             meaning="PSI over category frequencies (unseen values pooled in one bucket)"),
    Distance(name="js", kinds=CATEGORICAL, law=0.5, floor=0.01, bins=categorical_bins,
             on_counts=js_distance, compute=lambda inp: _on(categorical_bins(inp), js_distance),
             reach=_categorical_reach(js_reach), meaning="Jensen-Shannon distance, same buckets"),
    PValue(name="chi2_p", kinds=CATEGORICAL, floor=0.01, effect_name="category_tvd",
           compute=lambda inp: _on(categorical_bins(inp), contingency_p_value),
           effect=lambda inp: _on(categorical_bins(inp), tvd),
           meaning="p-value of a two-sample test of training against window counts (chi-square "
                   "contingency; Fisher's exact test when counts are small); its floor is on the "
                   "total variation distance of the category shares"),
    Distance(name="length_psi", kinds=TEXT, law=1.0, floor=0.001, bins=_grouped, on_counts=psi,
             compute=lambda inp: _on(_grouped(inp), psi), reach=_grouped_reach(psi_reach),
             meaning="PSI of the character length distribution"),
    Distance(name="language_tvd", kinds=TEXT, law=0.5, floor=0.02, basis=Basis.TEXTS,
             compute=lambda inp: _on(_language_counts(inp), tvd), reach=lambda inp: 1.0,
             bound=_language_bound,
             meaning="total variation distance of the language mix (sampled texts)"),
    Rate(name="unseen_language_rate", kinds=TEXT, floor=0.01, basis=Basis.TEXTS,
         compute=lambda inp: _share(_unseen_languages(inp), 0.0), events=_unseen_languages,
         prior=lambda inp: (inp.feature.language_singletons, inp.feature.text_sample),
         meaning="share of sampled texts in a language not seen in training"),
    Distance(name="oov_rate", kinds=TEXT, law=0.5, floor=0.005, basis=Basis.TEXTS,
             compute=_oov_rate, baseline=oov_baseline, reach=lambda inp: 1.0, bound=_oov_bound,
             meaning="share of sampled tokens outside the training top-1000 vocabulary"),
    Distance(name="vocab_js", kinds=TEXT, law=0.5, floor=0.02, basis=Basis.TEXTS,
             compute=_vocab_js, reach=lambda inp: js_reach(vocabulary_bins(inp)[0]),
             meaning="JS distance of word frequencies over that vocabulary (sampled texts)"),
)


def checks_for(kind: Kind) -> dict[str, Check]:
    """The checks of one feature kind, by name."""
    return {c.name: c for c in CHECKS if kind in c.kinds}


def check_alpha(kind: Kind, false_alarm_rate: float) -> float:
    """Per-check false-alarm probability: the feature's budget split evenly (Bonferroni)."""
    return false_alarm_rate / len(checks_for(kind))


def calibrated(kind: Kind) -> dict[str, Distance]:
    """The checks whose null is measured by resampling at profile build."""
    return {n: c for n, c in checks_for(kind).items() if isinstance(c, Distance)}


def threshold_fields() -> frozenset[str]:
    return frozenset(f"threshold_{c.name}" for c in CHECKS)


def markdown_table() -> str:
    """The README's table of checks."""
    rows = ["| kind | check | meaning | threshold scales with | floor |", "|---|---|---|---|---|"]
    for c in CHECKS:
        kinds = "all" if c.kinds == ALL_KINDS else ", ".join(str(k) for k in sorted(c.kinds))
        rows.append(f"| {kinds} | `{c.name}` | {c.meaning} | {_scaling(c)} | {c.floor:g} |")
    return "\n".join(rows)


def _scaling(check: Check) -> str:
    if isinstance(check, KolmogorovSmirnov):
        return "(1/n + 1/N)^½, measured; never above the exact KS critical value"
    if isinstance(check, Distance):
        return "(1/n + 1/N)" + ("" if check.law == 1 else "^½") + ", measured"
    if isinstance(check, PValue):
        return "p < its share of the budget"
    return "beta-binomial bound of both counts"


if __name__ == "__main__":
    print(markdown_table())
