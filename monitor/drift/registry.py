"""Every check, once: its name (the metric and `threshold_<name>` field), the feature kinds it
runs on, how it is computed, how its threshold scales with the window and training sizes, its
effect-size floor, its label and its README row. Evaluation, calibration, metric points,
dashboards and reports read this list; adding a check is one entry here (with its statistic in
`monitor.drift.statistics` when it is new) and the README table this module prints
(`python -m monitor.drift.registry`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from monitor.drift.checks import (
    Basis,
    Check,
    CheckInput,
    Distance,
    KolmogorovSmirnov,
    PValue,
    Rate,
)
from monitor.drift.distances import (
    contingency_p_value,
    js_distance,
    psi,
    tvd,
    wasserstein_rows,
)
from monitor.drift.statistics import (
    categorical_bins,
    categorical_reach,
    describe_novel,
    describe_out_of_range,
    js_reach,
    ks_value,
    language_bound,
    language_count_pairs,
    mean_shift_value,
    novel_details,
    novel_events,
    oov_baseline,
    oov_bound,
    oov_rate_value,
    out_of_range_events,
    psi_bin_counts,
    psi_bin_reach,
    psi_reach,
    rate_of,
    spread,
    statistic_on,
    training_events,
    unseen_language_events,
    vocab_js_value,
    vocabulary_bins,
    wasserstein_value,
    window_events,
)
from monitor.ingest.schema import Kind

NUMERIC, CATEGORICAL, TEXT = (frozenset({k}) for k in (Kind.NUMERIC, Kind.CATEGORICAL, Kind.TEXT))
ALL_KINDS = frozenset(Kind)


def binned(name: str, label: str, kinds: frozenset[Kind], law: float, floor: float,
           bins: Callable[[CheckInput], tuple[np.ndarray, np.ndarray] | None],
           statistic: Callable[[np.ndarray, np.ndarray], Any],
           reach: Callable[[CheckInput], float], meaning: str) -> Distance:
    """A distance computed on (training, window) counts over the same bins."""
    return Distance(name=name, label=label, kinds=kinds, law=law, floor=floor, bins=bins,
                    on_counts=statistic, compute=lambda inp: statistic_on(bins(inp), statistic),
                    reach=reach, meaning=meaning)


def rate(name: str, label: str, kinds: frozenset[Kind], floor: float,
         events: Callable[[CheckInput], tuple[int, int]],
         prior: Callable[[CheckInput], tuple[float, float]], meaning: str, **kw: Any) -> Rate:
    """A share of events in the window against the training's events."""
    return Rate(name=name, label=label, kinds=kinds, floor=floor, events=events, prior=prior,
                compute=lambda inp: rate_of(events(inp), 0.0), meaning=meaning, **kw)


# -- the registry ---------------------------------------------------------------------------------
CHECKS: tuple[Check, ...] = (
    rate("null_rate", "null rate", ALL_KINDS, 0.001, basis=Basis.RECORDS,
         events=lambda inp: window_events(inp, "nulls"),
         prior=lambda inp: training_events(inp, "nulls"),
         meaning="share of records with the feature null or missing"),
    rate("type_mismatch_rate", "type-mismatch rate", ALL_KINDS, 0.001, basis=Basis.RECORDS,
         events=lambda inp: window_events(inp, "mismatches"),
         prior=lambda inp: training_events(inp, "mismatches"),
         meaning="share of records with a value of the wrong type"),
    rate("out_of_range_rate", "out-of-range rate", NUMERIC, 0.001, always_reported=True,
         events=out_of_range_events, describe=describe_out_of_range,
         # A new value falls outside the min and max of N exchangeable training values with
         # chance Beta(2, N - 1): events 1.5 with the Jeffreys 0.5 added.
         prior=lambda inp: (1.5, inp.feature.summary.count),
         meaning="share of values outside the training [min, max]"),
    Distance(name="mean_shift", label="mean shift / std", kinds=NUMERIC, law=0.5, floor=0.025,
             compute=mean_shift_value, power=True,
             on_values=lambda w, t: np.abs(w.mean(axis=-1) - t.mean()) / spread(t),
             meaning="\\|window mean − training mean\\| / training std"),
    binned("psi", "PSI", NUMERIC, 1.0, 0.001, psi_bin_counts, psi, psi_bin_reach(psi_reach),
           "Population Stability Index over ~10 training-quantile bins (values outside the "
           "training range count in the first or last), proportions floored at 1e-4"),
    binned("js", "JS distance", NUMERIC, 0.5, 0.01, psi_bin_counts, js_distance,
           psi_bin_reach(js_reach), "Jensen-Shannon distance, base 2, same bins"),
    KolmogorovSmirnov(name="ks", label="KS", kinds=NUMERIC, law=0.5, floor=0.01,
                      compute=ks_value, reach=lambda inp: 1.0,
                      meaning="two-sample KS statistic against the training distribution (100 "
                              "quantile bins; within 0.02 of `scipy.stats.ks_2samp`)"),
    Distance(name="wasserstein", label="Wasserstein / std", kinds=NUMERIC, law=0.5, floor=0.025,
             compute=wasserstein_value,
             on_values=lambda w, t: wasserstein_rows(w, t) / spread(t),
             meaning="earth mover's distance / training std"),
    rate("novelty_rate", "novelty rate", CATEGORICAL, 0.001, always_reported=True,
         events=novel_events, describe=describe_novel, details=novel_details,
         prior=lambda inp: (inp.feature.unseen_mass * inp.feature.summary.count,
                            inp.feature.summary.count),
         meaning="share of values never seen in training (`new_values`: the 5 most frequent)"),
    binned("psi", "PSI", CATEGORICAL, 1.0, 0.001, categorical_bins, psi,
           categorical_reach(psi_reach),
           "PSI over category frequencies (unseen values pooled in one bucket)"),
    binned("js", "JS distance", CATEGORICAL, 0.5, 0.01, categorical_bins, js_distance,
           categorical_reach(js_reach), "Jensen-Shannon distance, same buckets"),
    PValue(name="chi2_p", label="chi-square p-value", kinds=CATEGORICAL, floor=0.01,
           compute=lambda inp: statistic_on(categorical_bins(inp), contingency_p_value),
           effect=lambda inp: statistic_on(categorical_bins(inp), tvd), effect_name="category_tvd",
           meaning="p-value of a two-sample test of training against window counts (chi-square "
                   "contingency; Fisher's exact test when counts are small); its floor is on the "
                   "total variation distance of the category shares"),
    binned("length_psi", "length PSI", TEXT, 1.0, 0.001, psi_bin_counts, psi,
           psi_bin_reach(psi_reach), "PSI of the character length distribution"),
    Distance(name="language_tvd", label="language TVD", kinds=TEXT, law=0.5, floor=0.02,
             basis=Basis.TEXTS, bound=language_bound, reach=lambda inp: 1.0,
             compute=lambda inp: statistic_on(language_count_pairs(inp), tvd),
             meaning="total variation distance of the language mix (sampled texts)"),
    rate("unseen_language_rate", "unseen-language rate", TEXT, 0.01, basis=Basis.TEXTS,
         events=unseen_language_events,
         prior=lambda inp: (inp.feature.language_singletons, inp.feature.text_sample),
         meaning="share of sampled texts in a language not seen in training"),
    Distance(name="oov_rate", label="out-of-vocabulary rate", kinds=TEXT, law=0.5, floor=0.005,
             basis=Basis.TEXTS, compute=oov_rate_value, baseline=oov_baseline, bound=oov_bound,
             reach=lambda inp: 1.0,
             meaning="share of sampled tokens outside the training top-1000 vocabulary"),
    Distance(name="vocab_js", label="vocabulary JS", kinds=TEXT, law=0.5, floor=0.02,
             basis=Basis.TEXTS, compute=vocab_js_value,
             reach=lambda inp: js_reach(vocabulary_bins(inp)[0]),
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
