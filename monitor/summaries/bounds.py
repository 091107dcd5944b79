"""Bounds on what a summary keeps, and stable hash keys that make the choice order-independent.

Every string a summary keeps (category values, unseen values, feature names) is cut to
`MAX_VALUE_CHARS` characters, with the original length noted (`clip_value`). Sets of strings that
could grow without bound (unseen categories, unexpected feature names) keep at most a fixed number
of values: those with the smallest stable hash key (`KeptCounts`, a bottom-k sketch). Which values
are kept depends only on which values occurred, never on their order or on how the records were
split into batches or partitions, so two summaries merge into exactly the summary of the union.
"""

from __future__ import annotations

import hashlib
import operator
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

MAX_VALUE_CHARS = 200
_CLIPPED = re.compile(r"…\(\d+ chars\)")
_ENCODE = operator.methodcaller("encode", "utf-8", "surrogatepass")  # JSON allows lone surrogates


def clip_value(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`value`, or its first `limit` characters and its original length; a clipped value is
    left as it is (clipping is idempotent).

    >>> clip_value("CA"), clip_value("x" * 300, 4), clip_value(clip_value("x" * 300, 4), 4)
    ('CA', 'xxxx…(300 chars)', 'xxxx…(300 chars)')
    """
    if len(value) <= limit or (len(value) <= limit + 32 and _CLIPPED.fullmatch(value, limit)):
        return value
    return f"{value[:limit]}…({len(value)} chars)"


def value_key(value: str) -> int:
    """A stable 63-bit hash of a string (the same in every process and on every machine).

    >>> value_key("CA") == value_key("CA") != value_key("NY")
    True
    """
    digest = hashlib.blake2b(_ENCODE(value), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MUL1
    x = (x ^ (x >> np.uint64(27))) * _MUL2
    return x ^ (x >> np.uint64(31))


def record_keys(texts: Sequence[str], salts: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Stable 63-bit keys (int64) of records: a hash of the text mixed with a per-record salt
    (the record's timestamp, or its row in a file), so that equal texts in different records get
    independent keys and a bottom-k over the keys is a uniform sample of records. Equal text and
    salt give equal keys: such records are interchangeable. `seed` draws another sample.

    >>> k = record_keys(["a", "a", "b"], np.array([1.0, 2.0, 1.0]))
    >>> k.dtype, bool(k[0] != k[1]), bool((k >= 0).all())
    (dtype('int64'), True, True)
    """
    return mix_keys(text_hashes(texts), salts, seed)


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """CRC-32 of each text's UTF-8 bytes (uint64): the text's part of its record's key."""
    n = len(texts)
    try:
        return np.fromiter(map(zlib.crc32, map(str.encode, texts)), dtype=np.uint64, count=n)
    except UnicodeEncodeError:  # a lone surrogate (JSON allows them): encode them as they are
        return np.fromiter(map(zlib.crc32, map(_ENCODE, texts)), dtype=np.uint64, count=n)


def mix_keys(text_hash: np.ndarray, salts: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """`record_keys` of texts whose `text_hashes` are `text_hash`."""
    n = len(text_hash)
    text_hash = text_hash.astype(np.uint64, copy=False)
    if salts is None:
        salt_bits = np.zeros(n, dtype=np.uint64)
    else:
        salts = np.ascontiguousarray(salts)
        salt_bits = salts.astype(np.float64).view(np.uint64) if salts.dtype.kind == "f" \
            else salts.astype(np.int64).view(np.uint64)
    salt_bits = _mix(salt_bits ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    return (_mix(text_hash ^ salt_bits) >> np.uint64(1)).astype(np.int64)


class KeptCounts:
    """Counts of distinct strings, at most `limit` of them: those with the smallest
    `value_key`; the counts of the others are pooled in `overflow`. Merging is exact: a value
    kept in the union is kept in every part (fewer than `limit` values have a smaller key there).

    >>> a, b = KeptCounts(2), KeptCounts(2)
    >>> a.add({"x": 1, "y": 2, "z": 3}); b.add({"z": 1, "w": 5})
    >>> merged = a.copy().merge(b)
    >>> whole = KeptCounts(2); whole.add({"x": 1, "y": 2, "z": 4, "w": 5})
    >>> merged.to_dict() == whole.to_dict(), merged.total == 12
    (True, True)
    """

    __slots__ = ("limit", "counts", "overflow", "_keys")

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f'"limit" must be >= 0: {limit}')
        self.limit = limit
        self.counts: dict[str, int] = {}
        self.overflow = 0  # occurrences of values that are not kept
        self._keys: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.overflow

    def __len__(self) -> int:
        return len(self.counts)

    def add(self, tally: Mapping[str, int]) -> None:
        """Add `value -> occurrences`; values must already be clipped."""
        full_below = self._largest_key() if len(self.counts) >= self.limit else None
        grew = False
        for value, n in tally.items():
            if value in self.counts:
                self.counts[value] += n
                continue
            key = value_key(value)
            if full_below is not None and (key, value) > full_below:
                self.overflow += n
                continue
            self.counts[value] = n
            self._keys[value] = key
            grew = True
        if grew and len(self.counts) > self.limit:
            self._evict()

    def _largest_key(self) -> tuple[int, str] | None:
        if not self.counts:
            return None
        return max((k, v) for v, k in self._keys.items())

    def _evict(self) -> None:
        ranked = sorted((k, v) for v, k in self._keys.items())
        for _, value in ranked[self.limit:]:
            self.overflow += self.counts.pop(value)
            del self._keys[value]

    def merge(self, other: KeptCounts) -> KeptCounts:
        if other.limit != self.limit:
            raise ValueError(f"cannot merge kept values with limits {self.limit} and {other.limit}")
        self.overflow += other.overflow
        self.add(other.counts)
        return self

    def copy(self) -> KeptCounts:
        c = KeptCounts(self.limit)
        c.counts, c.overflow, c._keys = dict(self.counts), self.overflow, dict(self._keys)
        return c

    def top(self, k: int) -> list[tuple[str, int]]:
        """The `k` most frequent kept values (ties broken by value, for determinism)."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def to_dict(self) -> dict[str, Any]:
        return {"values": dict(sorted(self.counts.items())), "overflow": self.overflow}

    @classmethod
    def from_counts(cls, limit: int, counts: Mapping[str, Any], overflow: int) -> KeptCounts:
        """Load saved counts (clipped and bounded again, in case they were saved by an older
        version with other bounds)."""
        kept = cls(limit)
        tally: dict[str, int] = {}
        for value, n in counts.items():
            clipped = clip_value(str(value))
            tally[clipped] = tally.get(clipped, 0) + int(n)
        kept.add(tally)
        kept.overflow += int(overflow)
        return kept


def tally_clipped(values: Iterable[str | None]) -> tuple[dict[str, int], int]:
    """Occurrences of each value (clipped; None ignored), and how many occurrences were clipped.

    >>> tally, clipped = tally_clipped(["a", "a", "b" * 300])
    >>> [(v[-12:], n) for v, n in tally.items()], clipped
    ([('a', 2), ('…(300 chars)', 1)], 1)
    """
    raw = Counter(values)
    raw.pop(None, None)  # type: ignore[call-overload]
    long = [v for v in raw if len(v) > MAX_VALUE_CHARS]
    if not long:
        return dict(raw), 0
    clipped_n = 0
    for value in long:
        n = raw.pop(value)
        clipped_n += n
        short = clip_value(value)
        raw[short] = raw.get(short, 0) + n
    return dict(raw), clipped_n
