"""Categorical summary: a count per training category, an 'other' bucket and unseen values.

The vocabulary (at most `max_categories` training values, most frequent first) is fixed by the
training profile. When the training data had no more distinct values than that, the vocabulary is
complete and a value outside it is *unseen* (novel): those are counted by value, up to
`MAX_TRACKED_UNSEEN` distinct values, the rest in `unseen_overflow`. When the vocabulary was
truncated, a value outside it may be a rare training value, so it is counted in `other` and never
called novel.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import numpy as np

from monitor.errors import ProfileError
from monitor.ingest.columns import LabelColumn

MAX_TRACKED_UNSEEN = 1000


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
                 "counts", "other", "unseen", "unseen_overflow")

    def __init__(self, vocabulary: list[str] | tuple[str, ...] = (), *, complete: bool = True) -> None:
        self.vocabulary = tuple(vocabulary)
        self.complete = complete
        self._index = {v: i for i, v in enumerate(self.vocabulary)}
        self.records = 0
        self.nulls = 0
        self.mismatches = 0
        self.counts = np.zeros(len(self.vocabulary), dtype=np.int64)
        self.other = 0
        self.unseen: dict[str, int] = {}
        self.unseen_overflow = 0

    def update(self, column: LabelColumn) -> None:
        self.records += column.size
        self.nulls += int(column.null.sum())
        self.mismatches += int(column.mismatch.sum())
        tally = Counter(column.values)
        tally.pop(None, None)
        self._add_counts(tally)

    def _add_counts(self, tally: dict[str, int]) -> None:
        index = self._index
        for value, n in tally.items():
            i = index.get(value)
            if i is not None:
                self.counts[i] += n
            elif not self.complete:
                self.other += n
            elif value in self.unseen or len(self.unseen) < MAX_TRACKED_UNSEEN:
                self.unseen[value] = self.unseen.get(value, 0) + n
            else:
                self.unseen_overflow += n

    def merge(self, other: CategoricalSummary) -> CategoricalSummary:
        if self.vocabulary != other.vocabulary or self.complete != other.complete:
            raise ValueError("cannot merge categorical summaries with different vocabularies")
        self.records += other.records
        self.nulls += other.nulls
        self.mismatches += other.mismatches
        self.counts = self.counts + other.counts
        self.other += other.other
        self.unseen_overflow += other.unseen_overflow
        self._add_counts(other.unseen)
        return self

    def __iadd__(self, other: CategoricalSummary) -> CategoricalSummary:
        return self.merge(other)

    def __add__(self, other: CategoricalSummary) -> CategoricalSummary:
        return self.copy().merge(other)

    def copy(self) -> CategoricalSummary:
        return CategoricalSummary.from_dict(self.to_dict())

    def empty_like(self) -> CategoricalSummary:
        return CategoricalSummary(self.vocabulary, complete=self.complete)

    @property
    def count(self) -> int:
        """Non-null values of the right type."""
        return int(self.counts.sum()) + self.other + self.unseen_total

    @property
    def unseen_total(self) -> int:
        return sum(self.unseen.values()) + self.unseen_overflow

    def top_unseen(self, k: int = 5) -> list[tuple[str, int]]:
        """The `k` most frequent unseen values (ties broken by value, for determinism)."""
        return sorted(self.unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "vocabulary": list(self.vocabulary),
            "complete": self.complete,
            "records": self.records,
            "nulls": self.nulls,
            "mismatches": self.mismatches,
            "counts": self.counts.tolist(),
            "other": self.other,
            "unseen": dict(sorted(self.unseen.items())),
            "unseen_overflow": self.unseen_overflow,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalSummary:
        try:
            s = cls(data["vocabulary"], complete=bool(data["complete"]))
            s.records = int(data["records"])
            s.nulls = int(data["nulls"])
            s.mismatches = int(data["mismatches"])
            s.counts = np.asarray(data["counts"], dtype=np.int64)
            s.other = int(data["other"])
            s.unseen = {str(k): int(v) for k, v in data["unseen"].items()}
            s.unseen_overflow = int(data["unseen_overflow"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"malformed categorical summary: {exc!r}") from exc
        if len(s.counts) != len(s.vocabulary):
            raise ProfileError(
                f"malformed categorical summary: {len(s.counts)} counts for "
                f"{len(s.vocabulary)} categories")
        return s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalSummary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"CategoricalSummary(count={self.count}, categories={len(self.vocabulary)})"
