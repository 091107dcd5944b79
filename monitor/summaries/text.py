"""Text summary: length and token-count histograms for every record, plus a bounded uniform
sample of texts for the costly checks (language, vocabulary), which run on the sample only.

The sample is a bottom-k sample: every text gets a uniform random key and the `sample_size`
texts with the smallest keys are kept, so two samples merge exactly into a uniform sample of the
union. Sampled texts are cut to `SAMPLE_CHARS` characters; a profile never stores the sample.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, ClassVar

import numpy as np

from monitor.errors import ProfileError
from monitor.ingest.columns import LabelColumn
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


class TextSummary:
    """Length, token count and a sample of a text feature.

    >>> from monitor.ingest.columns import label_column
    >>> s = TextSummary(length_edges=[1, 10, 100], token_edges=[1, 5, 20], seed=1)
    >>> s.update(label_column(["hello world", None, "a much longer text here"]))
    >>> s.count, s.nulls, s.length.mean, len(s.sample)
    (2, 1, 17.0, 2)
    """

    kind: ClassVar[str] = "text"
    __slots__ = ("records", "nulls", "mismatches", "length", "tokens", "sample_size",
                 "sample", "sample_keys", "_rng")

    def __init__(self, length_edges: Any = None, token_edges: Any = None, *,
                 sample_size: int = DEFAULT_SAMPLE_SIZE, seed: int = 0) -> None:
        self.records = 0
        self.nulls = 0
        self.mismatches = 0
        self.length = NumericSummary(None if length_edges is None else np.asarray(length_edges, float))
        self.tokens = NumericSummary(None if token_edges is None else np.asarray(token_edges, float))
        self.sample_size = int(sample_size)
        self.sample: list[str] = []
        self.sample_keys = np.zeros(0)
        self._rng = np.random.default_rng(seed)

    @property
    def count(self) -> int:
        return self.length.count

    def update(self, column: LabelColumn) -> None:
        self.records += column.size
        self.nulls += int(column.null.sum())
        self.mismatches += int(column.mismatch.sum())
        texts = [t for t in column.values if t is not None]
        if not texts:
            return
        self.length.update_finite(np.fromiter(map(len, texts), dtype=np.float64, count=len(texts)))
        self.tokens.update_finite(
            np.fromiter(map(len, map(str.split, texts)), dtype=np.float64, count=len(texts)))
        self._sample_in(texts, self._rng.random(len(texts)))

    def _sample_in(self, texts: list[str], keys: np.ndarray) -> None:
        k = self.sample_size
        if k <= 0:
            return
        if len(self.sample) >= k:  # full: only keys below the current largest can enter
            enter = np.flatnonzero(keys < self.sample_keys.max())
            if enter.size == 0:
                return
            texts = [texts[i] for i in enter]
            keys = keys[enter]
        if len(texts) > k:  # only the k smallest keys of this batch can enter the sample
            keep = np.argpartition(keys, k - 1)[:k]
            texts = [texts[i] for i in keep]
            keys = keys[keep]
        all_keys = np.concatenate((self.sample_keys, keys))
        all_texts = self.sample + [t[:SAMPLE_CHARS] for t in texts]
        if len(all_texts) > k:
            keep = np.sort(np.argpartition(all_keys, k - 1)[:k])
            all_texts = [all_texts[i] for i in keep]
            all_keys = all_keys[keep]
        self.sample, self.sample_keys = all_texts, all_keys

    def merge(self, other: TextSummary) -> TextSummary:
        self.records += other.records
        self.nulls += other.nulls
        self.mismatches += other.mismatches
        self.length.merge(other.length)
        self.tokens.merge(other.tokens)
        self._sample_in(list(other.sample), other.sample_keys.copy())
        return self

    def __iadd__(self, other: TextSummary) -> TextSummary:
        return self.merge(other)

    def __add__(self, other: TextSummary) -> TextSummary:
        return self.copy().merge(other)

    def copy(self) -> TextSummary:
        return TextSummary.from_dict(self.to_dict())

    def empty_like(self) -> TextSummary:
        return TextSummary(self.length.edges, self.tokens.edges, sample_size=self.sample_size)

    def token_counts(self) -> Counter[str]:
        """Word counts over the sampled texts."""
        tally: Counter[str] = Counter()
        for text in self.sample:
            tally.update(tokens(text))
        return tally

    def to_dict(self, *, include_sample: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "records": self.records,
            "nulls": self.nulls,
            "mismatches": self.mismatches,
            "length": self.length.to_dict(),
            "tokens": self.tokens.to_dict(),
            "sample_size": self.sample_size,
        }
        if include_sample:
            data["sample"] = list(self.sample)
            data["sample_keys"] = self.sample_keys.tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextSummary:
        try:
            s = cls(sample_size=int(data["sample_size"]))
            s.records = int(data["records"])
            s.nulls = int(data["nulls"])
            s.mismatches = int(data["mismatches"])
            s.length = NumericSummary.from_dict(data["length"])
            s.tokens = NumericSummary.from_dict(data["tokens"])
            s.sample = [str(t) for t in data.get("sample", [])]
            s.sample_keys = np.asarray(data.get("sample_keys", []), dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"malformed text summary: {exc!r}") from exc
        if len(s.sample) != len(s.sample_keys):
            raise ProfileError("malformed text summary: sample and keys differ in length")
        return s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextSummary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TextSummary(count={self.count}, nulls={self.nulls}, sample={len(self.sample)})"

