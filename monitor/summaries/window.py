"""The summary of one window of one model's traffic: a summary per profiled feature plus the
model-level counters (records, invalid, late, edge records, features seen).

Like the feature summaries it is exactly mergeable: the records of a window split in any way
(batches, partitions, workers) and merged in any order give an identical `to_dict()`.

Its size is bounded whatever the records hold: every kept string is clipped
(`bounds.MAX_VALUE_CHARS`; sampled texts `text.SAMPLE_CHARS`), unseen categories are tracked for
at most `unseen_limit` values per feature, unexpected feature names for at most
`MAX_UNEXPECTED_FEATURES` names, and text samples hold `sample_size` texts; `max_state_chars`
gives the resulting budget. What is counted but not kept is in `dropped`, and the first drop in a
window is logged once at WARNING.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from monitor.ingest.columns import NumericColumn, column_for
from monitor.ingest.records import ColumnGroup, RecordGroup
from monitor.profile.model import Profile, empty_summary
from monitor.summaries import CategoricalSummary, NumericSummary, Summary, TextSummary
from monitor.summaries.bounds import MAX_VALUE_CHARS, KeptCounts, clip_value
from monitor.summaries.text import SAMPLE_CHARS

EDGE_NULL_SHARE = 0.95  # a record with at least this share of its features null is an edge record
MAX_UNEXPECTED_FEATURES = 100  # names of unprofiled features kept per window (by stable hash)

log = logging.getLogger(__name__)


class WindowSummary:
    """Mergeable; `update` takes a group of parsed records or a chunk of columns."""

    __slots__ = ("profile", "start", "end", "records", "invalid", "late", "edge_records",
                 "features", "present", "unexpected", "_far", "_warned")

    def __init__(self, profile: Profile, start: float = 0.0, end: float = 0.0) -> None:
        self.profile = profile
        self.start = start
        self.end = end
        self.records = 0
        self.invalid = 0
        self.late = 0
        self.edge_records = 0
        self.features: dict[str, Summary] = {
            name: empty_summary(f) for name, f in profile.features.items()}
        self.present: set[str] = set()  # profiled features seen in at least one record
        self.unexpected = KeptCounts(MAX_UNEXPECTED_FEATURES)  # other names -> records
        self._far = {name: f.far_bounds for name, f in profile.features.items()}
        self._warned = False

    def update(self, group: RecordGroup | ColumnGroup) -> None:
        """Fold in parsed records; their timestamps salt the text samples' keys."""
        present, unexpected, untracked = group.feature_tally(self.features.keys())
        self.present |= present
        if unexpected:
            self._note_unexpected(unexpected)
        if untracked:
            self.unexpected.overflow += untracked
            self._warn_on_drops()
        features = self.profile.features
        self.update_columns({name: group.column_for(name, features[name].kind)
                             for name in self.features}, len(group), salts=group.ts_array())

    def note_features(self, names: Any, rows: int) -> None:
        """Record that `rows` records carried each of `names` (a chunk's columns)."""
        names = {str(n) for n in names}
        self.present.update(names & self.features.keys())
        self._note_unexpected(dict.fromkeys(names, rows))

    def _note_unexpected(self, tally: dict[str, int]) -> None:
        other: dict[str, int] = {}
        for name, n in tally.items():
            if name not in self.features:
                key = clip_value(name)
                other[key] = other.get(key, 0) + n
        if other:
            self.unexpected.add(other)
            self._warn_on_drops()

    def update_columns(self, columns: dict[str, Any], rows: int,
                       salts: np.ndarray | None = None) -> None:
        """Fold in `rows` records given as raw columns (a missing column is all null). `salts`
        (one per record) key the text samples; by default the records' positions in this
        summary's input, which suits one sequential reader of a file."""
        if rows == 0:
            return
        if salts is None:
            salts = np.arange(self.records, self.records + rows, dtype=np.int64)
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
            elif isinstance(summary, TextSummary):
                summary.update(column, salts)
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
        self._warn_on_drops()

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
        self.present |= other.present
        self.unexpected.merge(other.unexpected)
        return self

    def __iadd__(self, other: WindowSummary) -> WindowSummary:
        return self.merge(other)

    @property
    def seen_features(self) -> set[str]:
        """Profiled features seen, and the kept names of unexpected ones."""
        return self.present | set(self.unexpected.counts)

    @seen_features.setter
    def seen_features(self, names: set[str]) -> None:
        self.present = set()
        self.unexpected = KeptCounts(MAX_UNEXPECTED_FEATURES)
        self.note_features(names, self.records)

    @property
    def missing_features(self) -> list[str]:
        if self.records == 0:
            return []
        return sorted(set(self.features) - self.present)

    @property
    def unexpected_features(self) -> list[str]:
        """Names of unprofiled features (at most MAX_UNEXPECTED_FEATURES of them)."""
        return sorted(self.unexpected.counts)

    # -- bounds ---------------------------------------------------------------------------------
    @property
    def dropped(self) -> dict[str, int]:
        """Occurrences counted but not kept by value: unseen categories beyond each feature's
        tracked values, values clipped to MAX_VALUE_CHARS, unexpected feature names beyond
        MAX_UNEXPECTED_FEATURES."""
        cats = [s for s in self.features.values() if isinstance(s, CategoricalSummary)]
        return {"unseen_values": sum(s.unseen_overflow for s in cats),
                "clipped_values": sum(s.clipped for s in cats),
                "feature_names": self.unexpected.overflow}

    def max_state_chars(self) -> int:
        """Upper bound on the characters of kept strings in `to_dict()` (values, names, texts)."""
        chars = MAX_UNEXPECTED_FEATURES * (MAX_VALUE_CHARS + 20)
        for s in self.features.values():
            if isinstance(s, CategoricalSummary):
                chars += s.unseen_limit * (MAX_VALUE_CHARS + 20)
            elif isinstance(s, TextSummary):
                chars += s.sample_size * SAMPLE_CHARS
        return chars

    def _warn_on_drops(self) -> None:
        if self._warned:
            return
        dropped = self.dropped
        if any(dropped.values()):
            self._warned = True
            log.warning(
                "window %s-%s of %s v%s: values beyond the summary's bounds are counted but not "
                "kept (%s; bounds: %d tracked unseen values per feature, %d chars per value, %d "
                "unexpected feature names)", self.start, self.end, self.profile.model,
                self.profile.version, ", ".join(f"{k} {v}" for k, v in dropped.items() if v),
                max((s.unseen_limit for s in self.features.values()
                     if isinstance(s, CategoricalSummary)), default=0),
                MAX_VALUE_CHARS, MAX_UNEXPECTED_FEATURES)

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The window's state; what the profile fixes (edges, vocabularies) is left out."""
        return {
            "profile_id": self.profile.profile_id,
            "start": self.start, "end": self.end,
            "records": self.records, "invalid": self.invalid, "late": self.late,
            "edge_records": self.edge_records,
            "features": {n: s.state_dict() for n, s in self.features.items()},
            "seen_features": sorted(self.present),
            "unexpected_features": self.unexpected.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], profile: Profile) -> WindowSummary:
        w = cls(profile, float(data["start"]), float(data["end"]))
        w.records = int(data["records"])
        w.invalid = int(data["invalid"])
        w.late = int(data["late"])
        w.edge_records = int(data["edge_records"])
        for name, summary in w.features.items():
            summary.load_state(data["features"][name])
        w.present = set(data["seen_features"]) & w.features.keys()
        unexpected = data.get("unexpected_features", {"values": {}, "overflow": 0})
        w.unexpected = KeptCounts.from_counts(MAX_UNEXPECTED_FEATURES, unexpected["values"],
                                              int(unexpected["overflow"]))
        w._warned = any(w.dropped.values())
        return w

