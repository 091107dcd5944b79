"""Per-feature metrics of a window against the training summary (pure): the value of every
registered check (`monitor.drift.registry`) plus descriptive metrics that are not checks.

The metric names are a contract (README "Metrics"): dashboards and alert consumers use them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.drift.checks import CheckInput
from monitor.drift.registry import checks_for
from monitor.drift.statistics import scale_of
from monitor.ingest.schema import Kind
from monitor.summaries import CategoricalSummary, NumericSummary, TextSummary

NEW_VALUES_SHOWN = 5

# Metrics that are not checks, by kind (every numeric one is written to the metrics store; a
# text feature's `languages` counts go to their own measurement).
DESCRIPTIVE: dict[Kind, frozenset[str]] = {
    Kind.NUMERIC: frozenset({
        "records", "count", "nonfinite_rate", "training_mean", "training_min", "training_max",
        "out_of_range_count", "min", "max", "mean", "std", "mean_z"}),
    Kind.CATEGORICAL: frozenset({"records", "count", "novelty_count", "new_values"}),
    Kind.TEXT: frozenset({
        "records", "count", "training_length_mean", "sampled", "length_mean", "token_mean",
        "length_z"}),
}  # fmt: skip


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def feature_metrics(inp: CheckInput) -> dict[str, Any]:
    """Descriptive metrics and the value of each of the kind's checks."""
    w = inp.window
    metrics: dict[str, Any] = {"records": w.records, "count": w.count}
    if isinstance(w, NumericSummary):
        metrics.update(_numeric(inp))
    elif isinstance(w, CategoricalSummary):
        metrics.update({"novelty_count": w.unseen_total,
                        "new_values": [[v, n] for v, n in w.top_unseen(NEW_VALUES_SHOWN)]})
    else:
        metrics.update(_text(inp))
    for name, check in checks_for(inp.feature.kind).items():
        metrics[name] = check.compute(inp)
    return metrics


def _numeric(inp: CheckInput) -> dict[str, Any]:
    t, w = inp.feature.summary, inp.window
    assert isinstance(t, NumericSummary) and isinstance(w, NumericSummary)
    m: dict[str, Any] = {
        "nonfinite_rate": _rate(w.nonfinite, w.records),
        "training_mean": t.mean,
        "training_min": t.min if t.count else None,
        "training_max": t.max if t.count else None,
    }
    if w.count == 0 or t.count == 0:
        m.update({"min": None, "max": None, "mean": None, "std": None, "mean_z": None})
        return m
    m.update({
        "out_of_range_count": w.below + w.above,
        "min": w.min, "max": w.max, "mean": w.mean, "std": w.std,
        # Signed shift in standard errors: the input of the trend detector.
        "mean_z": (w.mean - t.mean) / scale_of(t) * np.sqrt(w.count),
    })
    return m


def _text(inp: CheckInput) -> dict[str, Any]:
    t, w = inp.feature.summary, inp.window
    assert isinstance(t, TextSummary) and isinstance(w, TextSummary)
    m: dict[str, Any] = {
        "training_length_mean": t.length.mean,
        "sampled": sum(inp.languages.values()),
        "languages": {n: int(c) for n, c in sorted(inp.languages.items())},
    }
    if w.count == 0:
        m.update({"length_mean": None, "token_mean": None})
        return m
    m.update({
        "length_mean": w.length.mean,
        "token_mean": w.tokens.mean,
        "length_z": (w.length.mean - t.length.mean) / scale_of(t.length) * np.sqrt(w.count),
    })
    return m
