"""The checkpointed form of a `WindowMerger` (plain JSON data) and its restore."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from monitor.ingest.records import ModelKey

if TYPE_CHECKING:
    from monitor.stream.merger import MergedModel, WindowMerger


def header(merger: WindowMerger) -> dict[str, Any]:
    return {
        "n_sources": merger.n_sources,
        "stream": merger.stream, "retired_streams": list(merger.retired_streams),
        "sources": [[source, p.stream, p.default,
                     [[m, v, w] for (m, v), w in sorted(p.models.items())],
                     [[m, v, n] for (m, v), n in sorted(p.unprofiled.items())],
                     [[m, v, n] for (m, v), n in sorted(p.late.items())],
                     sorted(p.invalid.items())]
                    for source, p in sorted(merger.sources.items())],
        "invalid": sorted(merger.invalid.items()),
        "unprofiled": merger.unprofiled.to_state(),
        "counters": {"duplicates": merger.duplicates, "late_partials": merger.late_partials,
                     "windows": merger.windows},
    }


def model(merged: MergedModel) -> dict[str, Any]:
    return {"open": [[start, [[source, w] for source, w in sorted(by.items())]]
                     for start, by in sorted(merged.open.items())],
            "closed_before": _finite(merged.closed_before),
            "recent": [[start, sources] for start, sources in sorted(merged.recent.items())],
            "carry": merged.carry, "late": merged.late, "tracker": merged.tracker.to_state()}


def restore(merger: WindowMerger, saved: dict[str, Any] | None,
            models: dict[ModelKey, dict[str, Any]]) -> None:
    from monitor.stream.merger import SourceProgress

    if saved is not None:
        merger.n_sources = int(saved["n_sources"])
        merger.stream = saved["stream"]
        merger.retired_streams = [str(x) for x in saved["retired_streams"]]
        merger.sources = {
            int(source): SourceProgress(
                str(stream), float(default),
                {(str(m), str(v)): float(w) for m, v, w in marks},
                {(str(m), str(v)): int(n) for m, v, n in unprofiled},
                {(str(m), str(v)): int(n) for m, v, n in late},
                {str(m): int(n) for m, n in invalid})
            for source, stream, default, marks, unprofiled, late, invalid in saved["sources"]}
        merger.invalid = {str(m): int(n) for m, n in saved["invalid"]}
        merger.unprofiled.restore(saved["unprofiled"])
        counters = saved["counters"]
        merger.duplicates = int(counters["duplicates"])
        merger.late_partials = int(counters["late_partials"])
        merger.windows = int(counters["windows"])
    for key, data in models.items():
        merged = merger.get_or_create(key)
        merged.open = {float(start): {int(source): w for source, w in by}
                       for start, by in data["open"]}
        cb = data["closed_before"]
        merged.closed_before = float(cb) if cb is not None else -math.inf
        merged.recent = {float(start): [int(x) for x in sources]
                         for start, sources in data["recent"]}
        merged.carry = data["carry"]
        merged.late = int(data["late"])
        merged.tracker.restore(data["tracker"])


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
