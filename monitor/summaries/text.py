"""Text summary: length and token-count histograms for every record, plus a bounded uniform
sample of texts for the costly checks (language, vocabulary), which run on the sample only.

The sample is a bottom-k sample on stable keys: every record's key is a hash of its text mixed
with the record's own salt (its timestamp in a stream, its row in a file; `bounds.record_keys`),
and the `sample_size` records with the smallest (key, text) are kept. The keys depend on the
records only, never on their order, batching or partitioning, and there is no random state: any
split of the same records, merged in any order, gives the same sample. Sampled texts are cut to
`SAMPLE_CHARS` characters (their full length counts in `length`); a profile never stores the
sample. Length and token counts are integers: their moments are exact (centre 0, quantum 1).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from monitor.errors import ProfileError
from monitor.ingest.columns import LabelColumn, TextColumn
from monitor.summaries.bounds import mix_keys, text_hashes
from monitor.summaries.numeric import NumericSummary

SAMPLE_CHARS = 1000
DEFAULT_SAMPLE_SIZE = 500
_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens.

    >>> tokens("Great product, GREAT price!")
    ['great', 'product', 'great', 'price']
    """
    return _TOKEN.findall(text.lower())


def measure_texts(column: LabelColumn) -> TextColumn:
    """What the summary reads of a label column's present texts (neither null nor mismatched).

    >>> from monitor.ingest.columns import label_column
    >>> t = measure_texts(label_column(["a b", None, "ccc"], numbers_as_labels=False))
    >>> t.lengths.tolist(), t.tokens.tolist(), t.size
    ([3, 3], [2, 1], 3)
    """
    values = column.values
    texts = values if not (column.null.any() or column.mismatch.any()) else \
        [t for t in values if t is not None]
    n = len(texts)
    return TextColumn(np.fromiter(map(len, texts), dtype=np.int64, count=n),
                      np.fromiter(map(len, map(str.split, texts)), dtype=np.int64, count=n),
                      text_hashes(texts), texts, column.null, column.mismatch)


def _integer_summary(edges: Any) -> NumericSummary:
    return NumericSummary(None if edges is None else np.asarray(edges, float),
                          center=0.0, quantum=1.0)


class TextSummary:
    """Length, token count and a sample of a text feature.

    >>> from monitor.ingest.columns import label_column
    >>> s = TextSummary(length_edges=[1, 10, 100], token_edges=[1, 5, 20])
    >>> s.update(label_column(["hello world", None, "a much longer text here"]))
    >>> s.count, s.nulls, s.length.mean, len(s.sample)
    (2, 1, 17.0, 2)
    """

    kind: ClassVar[str] = "text"
    __slots__ = ("records", "nulls", "mismatches", "length", "tokens", "sample_size", "seed",
                 "_items")

    def __init__(self, length_edges: Any = None, token_edges: Any = None, *,
                 sample_size: int = DEFAULT_SAMPLE_SIZE, seed: int = 0) -> None:
        self.records = 0
        self.nulls = 0
        self.mismatches = 0
        self.length = _integer_summary(length_edges)
        self.tokens = _integer_summary(token_edges)
        self.sample_size = int(sample_size)
        self.seed = int(seed)  # mixed into the keys: another seed draws another sample
        self._items: list[tuple[int, str]] = []  # (key, text), sorted: the sample

    @property
    def count(self) -> int:
        return self.length.count

    @property
    def sample(self) -> list[str]:
        """The sampled texts, in key order."""
        return [text for _, text in self._items]

    @property
    def sample_keys(self) -> list[int]:
        return [key for key, _ in self._items]

    def update(self, column: LabelColumn | TextColumn, salts: np.ndarray | None = None) -> None:
        """Fold in a column; `salts` (one per record, e.g. timestamps) make equal texts in
        different records distinct for sampling; without them equal texts share a key."""
        if not isinstance(column, TextColumn):
            column = measure_texts(column)
        self.records += column.size
        nulls, mismatches = int(column.null.sum()), int(column.mismatch.sum())
        self.nulls += nulls
        self.mismatches += mismatches
        if not len(column.lengths):
            return
        self.length.update_finite(column.lengths.astype(np.float64))
        self.tokens.update_finite(column.tokens.astype(np.float64))
        if self.sample_size > 0:
            salt = None if salts is None else np.asarray(salts)
            if salt is not None and (nulls or mismatches):
                salt = salt[~(column.null | column.mismatch)]
            self._sample_in(column.texts, mix_keys(column.hashes, salt, self.seed))

    def _sample_in(self, texts: Sequence[str], keys: np.ndarray) -> None:
        k = self.sample_size
        if len(self._items) >= k:  # full: only keys up to the current largest can enter
            chosen = np.flatnonzero(keys <= self._items[-1][0])
        else:
            chosen = np.arange(len(keys))
        if chosen.size > k:  # the k smallest keys of the batch, and any ties with the k-th
            kth = np.partition(keys[chosen], k - 1)[k - 1]
            chosen = chosen[keys[chosen] <= kth]
        if chosen.size == 0:
            return
        rows = chosen.tolist()
        pick = getattr(texts, "pick", None)  # the compiled decoder's texts read in one go
        picked = pick(rows) if pick is not None else [texts[i] for i in rows]
        new = sorted(zip(keys[chosen].tolist(), [t[:SAMPLE_CHARS] for t in picked], strict=True))
        self._items = sorted(self._items + new)[:k]  # timsort merges the two sorted runs

    def merge(self, other: TextSummary) -> TextSummary:
        if (self.sample_size, self.seed) != (other.sample_size, other.seed):
            raise ValueError("cannot merge text summaries with different sample sizes or seeds")
        self.records += other.records
        self.nulls += other.nulls
        self.mismatches += other.mismatches
        self.length.merge(other.length)
        self.tokens.merge(other.tokens)
        self._items = sorted(self._items + other._items)[:self.sample_size]
        return self

    def __iadd__(self, other: TextSummary) -> TextSummary:
        return self.merge(other)

    def __add__(self, other: TextSummary) -> TextSummary:
        return self.copy().merge(other)

    def copy(self) -> TextSummary:
        return TextSummary.from_dict(self.to_dict())

    def empty_like(self) -> TextSummary:
        return TextSummary(self.length.edges, self.tokens.edges, sample_size=self.sample_size,
                           seed=self.seed)

    def token_counts(self) -> Counter[str]:
        """Word counts over the sampled texts."""
        tally: Counter[str] = Counter()
        for text in self.sample:
            tally.update(tokens(text))
        return tally

    def to_dict(self, *, include_sample: bool = True) -> dict[str, Any]:
        data = self.state_dict(include_sample=include_sample)
        data.update(kind=self.kind, length=self.length.to_dict(), tokens=self.tokens.to_dict())
        return data

    def state_dict(self, *, include_sample: bool = True) -> dict[str, Any]:
        """What a window adds to the edges it shares with its profile."""
        data: dict[str, Any] = {
            "records": self.records,
            "nulls": self.nulls,
            "mismatches": self.mismatches,
            "length": self.length.state_dict(),
            "tokens": self.tokens.state_dict(),
            "sample_size": self.sample_size,
            "seed": self.seed,
        }
        if include_sample:
            data["sample"] = [[key, text] for key, text in self._items]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextSummary:
        try:
            length = NumericSummary.from_dict(data["length"])
            tokens_ = NumericSummary.from_dict(data["tokens"])
            s = cls(length.edges, tokens_.edges, sample_size=int(data["sample_size"]),
                    seed=int(data.get("seed", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"malformed text summary: {exc!r}") from exc
        return s.load_state(data)

    def load_state(self, data: dict[str, Any]) -> TextSummary:
        """Fill this (empty) summary from `state_dict()` output; returns self."""
        try:
            self.records = int(data["records"])
            self.nulls = int(data["nulls"])
            self.mismatches = int(data["mismatches"])
            self.length.load_state(data["length"])
            self.tokens.load_state(data["tokens"])
            items = [(int(key), str(text)[:SAMPLE_CHARS]) for key, text in data.get("sample", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"malformed text summary: {exc!r}") from exc
        self._items = sorted(items)[:self.sample_size]
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextSummary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TextSummary(count={self.count}, nulls={self.nulls}, sample={len(self._items)})"
