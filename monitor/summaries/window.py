"""The summary of one window of one model's traffic: a summary per profiled feature plus the
model-level counters (records, invalid, late, edge records, features seen)."""

from __future__ import annotations

from typing import Any

import numpy as np

from monitor.ingest.columns import NumericColumn, label_column, numeric_column
from monitor.ingest.records import RecordGroup
from monitor.ingest.schema import Kind
from monitor.profile.model import Profile, empty_summary
from monitor.summaries import NumericSummary, Summary, summary_from_dict

EDGE_NULL_SHARE = 0.95  # a record with at least this share of its features null is an edge record


def column_for(kind: Kind, raw: Any) -> Any:
    if kind is Kind.NUMERIC:
        return numeric_column(raw)
    return label_column(raw, numbers_as_labels=kind is Kind.CATEGORICAL)


class WindowSummary:
    """Mergeable; `update` takes a group of parsed records or a chunk of columns."""

    __slots__ = ("profile", "start", "end", "records", "invalid", "late", "edge_records",
                 "features", "seen_features", "_far")

    def __init__(self, profile: Profile, start: float = 0.0, end: float = 0.0, *,
                 text_sample: int | None = None, seed: int = 0) -> None:
        """`text_sample` texts are kept per text feature (default: the profile's window sample
        size; the training summary keeps more), sampled with `seed`."""
        self.profile = profile
        self.start = start
        self.end = end
        self.records = 0
        self.invalid = 0
        self.late = 0
        self.edge_records = 0
        self.features: dict[str, Summary] = {
            name: empty_summary(f, text_sample=text_sample, seed=seed)
            for name, f in profile.features.items()}
        self.seen_features: set[str] = set()
        self._far = {name: f.far_bounds for name, f in profile.features.items()}

    def update(self, group: RecordGroup) -> None:
        self.seen_features |= group.feature_names()
        self.update_columns({name: group.column(name) for name in self.features}, len(group))

    def update_columns(self, columns: dict[str, Any], rows: int) -> None:
        """Fold in `rows` records given as raw columns (a missing column is all null)."""
        if rows == 0:
            return
        self.records += rows
        nulls = np.zeros(rows, dtype=np.int32)
        far = np.zeros(rows, dtype=bool)
        numeric: list[tuple[NumericSummary, NumericColumn]] = []
        for name, summary in self.features.items():
            feature = self.profile.features[name]
            raw = columns.get(name)
            column = column_for(feature.kind, raw if raw is not None else [None] * rows)
            if isinstance(summary, NumericSummary):
                numeric.append((summary, column))
            else:
                summary.update(column)
            nulls += column.null
            bounds = self._far[name]
            if bounds is not None and isinstance(column, NumericColumn):
                with np.errstate(invalid="ignore"):
                    far |= (column.values < bounds[0]) | (column.values > bounds[1])
        NumericSummary.update_many([s for s, _ in numeric], [c for _, c in numeric])
        if self.features:
            edge = (nulls >= EDGE_NULL_SHARE * len(self.features)) | far
            self.edge_records += int(edge.sum())

    def merge(self, other: WindowSummary) -> WindowSummary:
        if other.profile.profile_id != self.profile.profile_id:
            raise ValueError("cannot merge windows of different profiles")
        if other.records or other.late or other.invalid:
            if self.records == 0 and self.start == self.end == 0.0:
                self.start, self.end = other.start, other.end
            else:
                self.start = min(self.start, other.start)
                self.end = max(self.end, other.end)
        self.records += other.records
        self.invalid += other.invalid
        self.late += other.late
        self.edge_records += other.edge_records
        for name, summary in self.features.items():
            summary.merge(other.features[name])  # type: ignore[arg-type]
        self.seen_features |= other.seen_features
        return self

    def __iadd__(self, other: WindowSummary) -> WindowSummary:
        return self.merge(other)

    @property
    def missing_features(self) -> list[str]:
        if self.records == 0:
            return []
        return sorted(set(self.features) - self.seen_features)

    @property
    def unexpected_features(self) -> list[str]:
        return sorted(self.seen_features - set(self.features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile.profile_id,
            "start": self.start, "end": self.end,
            "records": self.records, "invalid": self.invalid, "late": self.late,
            "edge_records": self.edge_records,
            "features": {n: s.to_dict() for n, s in self.features.items()},
            "seen_features": sorted(self.seen_features),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], profile: Profile) -> WindowSummary:
        w = cls(profile, float(data["start"]), float(data["end"]))
        w.records = int(data["records"])
        w.invalid = int(data["invalid"])
        w.late = int(data["late"])
        w.edge_records = int(data["edge_records"])
        w.features = {n: summary_from_dict(s) for n, s in data["features"].items()}
        w.seen_features = set(data["seen_features"])
        return w



