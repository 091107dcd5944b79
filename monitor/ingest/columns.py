"""Typed columns: turn a batch of raw values (from JSON, CSV or Parquet) into numpy arrays.

Every summary is updated from one of these columns, never from single records. A column keeps
the batch's row alignment (one slot per record) so that per-record rules (edge records) can
combine several features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.ingest.schema import Kind

_NUMBER_TYPES = frozenset({int, float})
_NUMBER_OR_NULL = frozenset({int, float, type(None)})
_STR_OR_NULL = frozenset({str, type(None)})


@dataclass(frozen=True, slots=True)
class NumericColumn:
    """`values` holds NaN where the record had a null or a value of another type."""

    values: np.ndarray  # float64, one per record
    null: np.ndarray  # bool: null or missing
    mismatch: np.ndarray  # bool: present but not a number (a string in a numeric feature)

    @property
    def size(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True, slots=True)
class LabelColumn:
    """Categorical or text values as Python strings; None where null, missing or mismatched."""

    values: list[str | None]
    null: np.ndarray
    mismatch: np.ndarray

    @property
    def size(self) -> int:
        return len(self.values)


@dataclass(frozen=True, slots=True)
class CodedLabels:
    """Categorical values as codes into `labels` (-1 where null or mismatched): what the
    compiled decoder gives (labels may repeat: 3 and "3" are both "3").

    >>> c = CodedLabels(np.array([0, -1, 1, 0]), ["CA", "NY"], np.array([0, 1, 0, 0], bool),
    ...                 np.zeros(4, bool))
    >>> c.size, c.values
    (4, ['CA', None, 'NY', 'CA'])
    """

    codes: np.ndarray  # int32 or int64, one per record
    labels: list[str]
    null: np.ndarray
    mismatch: np.ndarray

    @property
    def size(self) -> int:
        return int(self.codes.shape[0])

    @property
    def values(self) -> list[str | None]:
        """As a `LabelColumn`'s values (one Python object per record: for tests and reports)."""
        labels = self.labels
        return [labels[c] if c >= 0 else None for c in self.codes.tolist()]


class TextColumn:
    """Texts as the text summary measures them, for the present records only (neither null nor
    mismatched): length in code points, `len(text.split())`, CRC-32 of the UTF-8 bytes, and the
    texts themselves (`texts`: a sequence, possibly made on demand)."""

    __slots__ = ("lengths", "tokens", "hashes", "texts", "null", "mismatch")

    def __init__(self, lengths: np.ndarray, tokens: np.ndarray, hashes: np.ndarray,
                 texts: Sequence[str], null: np.ndarray, mismatch: np.ndarray) -> None:
        self.lengths = lengths
        self.tokens = tokens
        self.hashes = hashes  # uint64
        self.texts = texts
        self.null = null
        self.mismatch = mismatch

    @property
    def size(self) -> int:
        return int(self.null.shape[0])


def numeric_column(raw: Sequence[Any] | np.ndarray) -> NumericColumn:
    """Numbers (ints, floats, NaN, inf) are values; None is null; anything else is a mismatch.

    >>> c = numeric_column([1, None, "x", 2.5, float("inf")])
    >>> c.values[[0, 3, 4]].tolist(), c.null.tolist(), c.mismatch.tolist()
    ([1.0, 2.5, inf], [False, True, False, False, False], [False, False, True, False, False])
    """
    if isinstance(raw, NumericColumn):
        return raw
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "fiu":
        values = raw.astype(np.float64, copy=False)
        n = values.shape[0]
        return NumericColumn(values, np.zeros(n, bool), np.zeros(n, bool))
    seq = raw if isinstance(raw, list | tuple) else list(raw)
    n = len(seq)
    types = set(map(type, seq))
    try:
        if types <= _NUMBER_TYPES:
            return NumericColumn(np.array(seq, dtype=np.float64), np.zeros(n, bool),
                                 np.zeros(n, bool))
        if types <= _NUMBER_OR_NULL and float not in types:
            values = np.array(seq, dtype=np.float64)  # None becomes NaN; ints cannot be NaN
            return NumericColumn(values, np.isnan(values), np.zeros(n, bool))
    except OverflowError:  # an integer beyond the float range (the stdlib JSON reads any)
        pass
    # Slow path, only for batches that hold nulls among floats or values of the wrong type.
    values = np.full(n, np.nan)
    null = np.zeros(n, bool)
    mismatch = np.zeros(n, bool)
    for i, v in enumerate(seq):
        if v is None:
            null[i] = True
        elif type(v) is int:
            values[i] = _int_value(v)
        elif type(v) is float:
            values[i] = v
        elif isinstance(v, np.floating | np.integer):
            values[i] = float(v)
        else:
            mismatch[i] = True
    return NumericColumn(values, null, mismatch)


def _int_value(v: int) -> float:
    """An integer as a float; beyond the float range it is infinite (as JSON's 1e999 is).

    >>> _int_value(3), _int_value(-10 ** 400)
    (3.0, -inf)
    """
    try:
        return float(v)
    except OverflowError:
        return float("inf") if v > 0 else float("-inf")


def column_for(kind: Kind, raw: Any) -> NumericColumn | LabelColumn | CodedLabels | TextColumn:
    """The typed column of a feature of `kind` from its raw values (or an already typed one)."""
    if isinstance(raw, CodedLabels | TextColumn):
        return raw
    if kind is Kind.NUMERIC:
        return numeric_column(raw)
    return label_column(raw, numbers_as_labels=kind is Kind.CATEGORICAL)


def label_column(raw: Sequence[Any], *, numbers_as_labels: bool = True) -> LabelColumn:
    """Strings are values; None is null. For categorical features ints and bools are labels too
    (`3` -> "3", `True` -> "true"); objects, lists and floats are mismatches.

    >>> c = label_column(["CA", None, 3, True, {"a": 1}])
    >>> c.values, c.null.tolist(), c.mismatch.tolist()
    (['CA', None, '3', 'true', None], [False, True, False, False, False], [False, False, False, False, True])
    """
    if isinstance(raw, LabelColumn):
        return raw
    if isinstance(raw, NumericColumn):  # numbers read from CSV/Parquet used as labels
        raw = [None if null else v for v, null in zip(raw.values.tolist(), raw.null.tolist(), strict=True)]
    seq = raw if isinstance(raw, list) else list(raw)
    n = len(seq)
    types = set(map(type, seq))
    if types <= {str}:
        return LabelColumn(seq, np.zeros(n, bool), np.zeros(n, bool))
    if types <= _STR_OR_NULL:
        null = np.fromiter((v is None for v in seq), dtype=bool, count=n)
        return LabelColumn(seq, null, np.zeros(n, bool))
    values: list[str | None] = [None] * n
    null = np.zeros(n, bool)
    mismatch = np.zeros(n, bool)
    for i, v in enumerate(seq):
        if v is None:
            null[i] = True
        elif isinstance(v, str):
            values[i] = v
        elif numbers_as_labels and isinstance(v, bool):
            values[i] = "true" if v else "false"
        elif numbers_as_labels and isinstance(v, int | np.integer):
            values[i] = str(int(v))
        elif numbers_as_labels and isinstance(v, float | np.floating) and float(v).is_integer():
            values[i] = str(int(v))  # a CSV column of integer codes read as floats
        else:
            mismatch[i] = True
    return LabelColumn(values, null, mismatch)
