"""Categorical summary: a count per training category, an 'other' bucket and unseen values.

The vocabulary (at most `max_categories` training values, most frequent first) is fixed by the
training profile. When the training data had no more distinct values than that, the vocabulary is
complete and a value outside it is *unseen* (novel): those are counted by value for at most
`unseen_limit` distinct values (`MAX_TRACKED_UNSEEN` by default), chosen by a stable hash of the
value so that any split of the records gives the same ones (`bounds.KeptCounts`); the other
unseen values are counted in `unseen_overflow`. When the vocabulary was truncated, a value
outside it may be a rare training value, so it is counted in `other` and never called novel.

Values longer than `bounds.MAX_VALUE_CHARS` characters are cut to that length with their original
length noted (`bounds.clip_value`), in the vocabulary and in windows alike; `clipped` counts the
window's values that were cut. So a summary's size is bounded whatever the values.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from monitor.errors import ProfileError
from monitor.ingest.columns import CodedLabels, LabelColumn
from monitor.summaries.bounds import MAX_VALUE_CHARS, KeptCounts, clip_value, tally_clipped

MAX_TRACKED_UNSEEN = 100
MIN_TRACKED_UNSEEN = 10
UNSEEN_BUDGET_CHARS = 400_000  # characters of tracked unseen values per window, all features


def unseen_limit_for(categorical_features: int) -> int:
    """Unseen values tracked per feature so that a window's tracked values stay within
    UNSEEN_BUDGET_CHARS (never fewer than MIN_TRACKED_UNSEEN per feature).

    >>> unseen_limit_for(5), unseen_limit_for(100), unseen_limit_for(10_000)
    (100, 20, 10)
    """
    share = UNSEEN_BUDGET_CHARS // (max(1, categorical_features) * MAX_VALUE_CHARS)
    return max(MIN_TRACKED_UNSEEN, min(MAX_TRACKED_UNSEEN, share))


class CategoricalSummary:
    """Counts of a categorical feature over a fixed vocabulary.

    >>> from monitor.ingest.columns import label_column
    >>> s = CategoricalSummary(["CA", "NY"], complete=True)
    >>> s.update(label_column(["CA", "CA", "TX", None]))
    >>> s.counts.tolist(), s.unseen, s.nulls
    ([2, 0], {'TX': 1}, 1)
    """

    kind: ClassVar[str] = "categorical"
    __slots__ = ("vocabulary", "complete", "_index", "records", "nulls", "mismatches",
                 "counts", "other", "clipped", "_unseen")

    def __init__(self, vocabulary: list[str] | tuple[str, ...] = (), *, complete: bool = True,
                 unseen_limit: int = MAX_TRACKED_UNSEEN) -> None:
        self.vocabulary = tuple(dict.fromkeys(clip_value(str(v)) for v in vocabulary))
        self.complete = complete
        self._index = {v: i for i, v in enumerate(self.vocabulary)}
        self.records = 0
        self.nulls = 0
        self.mismatches = 0
        self.counts = np.zeros(len(self.vocabulary), dtype=np.int64)
        self.other = 0
        self.clipped = 0  # values longer than bounds.MAX_VALUE_CHARS, cut
        self._unseen = KeptCounts(unseen_limit)

    @property
    def unseen(self) -> dict[str, int]:
        """Counts of the tracked unseen values."""
        return self._unseen.counts

    @property
    def unseen_overflow(self) -> int:
        """Occurrences of unseen values beyond the tracked ones."""
        return self._unseen.overflow

    @property
    def unseen_limit(self) -> int:
        return self._unseen.limit

    def update(self, column: LabelColumn | CodedLabels) -> None:
        self.records += column.size
        self.nulls += int(column.null.sum())
        self.mismatches += int(column.mismatch.sum())
        if isinstance(column, CodedLabels):
            tally, clipped = _tally_codes(column)
        else:
            tally, clipped = tally_clipped(column.values)
        self.clipped += clipped
        self._add_counts(tally)

    def _add_counts(self, tally: dict[str, int]) -> None:
        index = self._index
        unseen: dict[str, int] = {}
        for value, n in tally.items():
            i = index.get(value)
            if i is not None:
                self.counts[i] += n
            elif not self.complete:
                self.other += n
            else:
                unseen[value] = n
        if unseen:
            self._unseen.add(unseen)

    def merge(self, other: CategoricalSummary) -> CategoricalSummary:
        if self.vocabulary != other.vocabulary or self.complete != other.complete:
            raise ValueError("cannot merge categorical summaries with different vocabularies")
        self.records += other.records
        self.nulls += other.nulls
        self.mismatches += other.mismatches
        self.counts = self.counts + other.counts
        self.other += other.other
        self.clipped += other.clipped
        self._unseen.merge(other._unseen)
        return self

    def __iadd__(self, other: CategoricalSummary) -> CategoricalSummary:
        return self.merge(other)

    def __add__(self, other: CategoricalSummary) -> CategoricalSummary:
        return self.copy().merge(other)

    def copy(self) -> CategoricalSummary:
        return CategoricalSummary.from_dict(self.to_dict())

    def empty_like(self) -> CategoricalSummary:
        return CategoricalSummary(self.vocabulary, complete=self.complete,
                                  unseen_limit=self.unseen_limit)

    @property
    def count(self) -> int:
        """Non-null values of the right type."""
        return int(self.counts.sum()) + self.other + self.unseen_total

    @property
    def unseen_total(self) -> int:
        return self._unseen.total

    def top_unseen(self, k: int = 5) -> list[tuple[str, int]]:
        """The `k` most frequent tracked unseen values (ties broken by value, for determinism)."""
        return self._unseen.top(k)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocabulary": list(self.vocabulary), "complete": self.complete,
                **self.state_dict()}

    def state_dict(self) -> dict[str, Any]:
        """What a window adds to the vocabulary it shares with its profile."""
        return {
            "records": self.records,
            "nulls": self.nulls,
            "mismatches": self.mismatches,
            "counts": self.counts.tolist(),
            "other": self.other,
            "clipped": self.clipped,
            "unseen": dict(sorted(self.unseen.items())),
            "unseen_overflow": self.unseen_overflow,
            "unseen_limit": self.unseen_limit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalSummary:
        try:
            s = cls(data["vocabulary"], complete=bool(data["complete"]),
                    unseen_limit=int(data.get("unseen_limit", MAX_TRACKED_UNSEEN)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"malformed categorical summary: {exc!r}") from exc
        return s.load_state(data)

    def load_state(self, data: dict[str, Any]) -> CategoricalSummary:
        """Fill this (empty) summary from `state_dict()` output; returns self."""
        try:
            self.records = int(data["records"])
            self.nulls = int(data["nulls"])
            self.mismatches = int(data["mismatches"])
            self.counts = np.asarray(data["counts"], dtype=np.int64)
            self.other = int(data["other"])
            self.clipped = int(data.get("clipped", 0))
            self._unseen = KeptCounts.from_counts(self.unseen_limit, data["unseen"],
                                                  int(data["unseen_overflow"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"malformed categorical summary: {exc!r}") from exc
        if len(self.counts) != len(self.vocabulary):
            raise ProfileError(
                f"malformed categorical summary: {len(self.counts)} counts for "
                f"{len(self.vocabulary)} categories")
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalSummary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"CategoricalSummary(count={self.count}, categories={len(self.vocabulary)})"


def _tally_codes(column: CodedLabels) -> tuple[dict[str, int], int]:
    """`bounds.tally_clipped` of coded values: one count per code (numpy), then per label.

    >>> _tally_codes(CodedLabels(np.array([0, 1, -1, 0, 2]), ["a", "3", "a"],
    ...                          np.zeros(5, bool), np.zeros(5, bool)))
    ({'a': 3, '3': 1}, 0)
    """
    codes = column.codes
    labels = column.labels
    counts = np.bincount(codes[codes >= 0], minlength=len(labels)) if len(codes) else ()
    tally: dict[str, int] = {}
    clipped = 0
    for code in np.flatnonzero(counts).tolist():
        value, n = labels[code], int(counts[code])
        if len(value) > MAX_VALUE_CHARS:
            clipped += n
            value = clip_value(value)
        tally[value] = tally.get(value, 0) + n
    return tally, clipped
