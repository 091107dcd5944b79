"""Records of one model and version as the compiled decoder (`drift_native`) returns them.

Each feature and model output is a `NativeColumn`: one tag per record (missing, null, false,
true, int, float, string, nested) and 8 raw bytes (the int or the double), strings coded into
the batch's distinct values or, for a text feature, measured as the text summary measures them
(code points, tokens, CRC-32) with their bytes kept to make the few sampled texts from. A
`NativeGroup` answers what a `RecordGroup` answers (length, times, typed columns, names carried)
with numpy, no Python object per value; `column()` rebuilds the raw values for the rare uses
that need them (a feature read as another kind than the decoder's schema says, a batch that
mixes both paths).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.ingest.column_group import MISSING, ColumnGroup
from monitor.ingest.columns import CodedLabels, NumericColumn, TextColumn, column_for
from monitor.ingest.schema import PREDICTION, Kind

TAG_MISSING, TAG_NULL, TAG_FALSE, TAG_TRUE, TAG_INT, TAG_FLOAT, TAG_STR, TAG_NESTED = range(8)
NESTED = {}  # stands for any object or array value: a mismatch for every kind  # noqa: RUF012


class NativeColumn:
    """One name's values in a group (see the module docstring)."""

    __slots__ = ("tags", "raw", "codes", "words", "text", "_counts")

    def __init__(self, tags: np.ndarray, raw: np.ndarray, codes: np.ndarray | None,
                 words: list[str] | None, text: tuple[Any, ...] | None) -> None:
        self.tags = tags  # uint8
        self.raw = raw  # uint64: int64 or float64 bits
        self.codes = codes  # int32 per record into words (strings of a non-text feature)
        self.words = words
        self.text = text  # (buffer, starts, sizes, lengths, tokens, crcs) of a text feature
        self._counts: np.ndarray | None = None

    @classmethod
    def of(cls, text: bool, tags: bytes, raw: bytes, strings: tuple[Any, ...]) -> NativeColumn:
        if text:
            buf, starts, sizes, lengths, tokens, crcs = strings
            return cls(np.frombuffer(tags, np.uint8), np.frombuffer(raw, np.uint64), None, None,
                       (buf, np.frombuffer(starts, np.uint64), np.frombuffer(sizes, np.uint32),
                        np.frombuffer(lengths, np.uint32), np.frombuffer(tokens, np.uint32),
                        np.frombuffer(crcs, np.uint32)))
        codes, words = strings
        return cls(np.frombuffer(tags, np.uint8), np.frombuffer(raw, np.uint64),
                   np.frombuffer(codes, np.int32), words, None)

    def take(self, index: np.ndarray) -> NativeColumn:
        text = self.text
        if text is not None:
            text = (text[0], *(a[index] for a in text[1:]))
        return NativeColumn(self.tags[index], self.raw[index],
                            None if self.codes is None else self.codes[index], self.words, text)

    @property
    def counts(self) -> np.ndarray:
        """Records per tag."""
        if self._counts is None:
            self._counts = np.bincount(self.tags, minlength=8)
        return self._counts

    def carried(self, output: bool = False) -> int:
        """Records carrying the name (null or not); for the scalar output `prediction`, records
        whose prediction is a scalar (an object's keys are outputs of their own)."""
        c = self.counts
        n = int(self.tags.shape[0]) - int(c[TAG_MISSING])
        return n - int(c[TAG_NULL]) - int(c[TAG_NESTED]) if output else n

    # -- typed columns ----------------------------------------------------------------------
    def numeric(self) -> NumericColumn:
        tags, c = self.tags, self.counts
        n = int(tags.shape[0])
        if c[TAG_FLOAT] == n:
            return NumericColumn(self.raw.view(np.float64), np.zeros(n, bool), np.zeros(n, bool))
        values = np.full(n, np.nan)
        if c[TAG_FLOAT]:
            floats = tags == TAG_FLOAT
            values[floats] = self.raw.view(np.float64)[floats]
        if c[TAG_INT]:
            ints = tags == TAG_INT
            values[ints] = self.raw.view(np.int64)[ints].astype(np.float64)
        null = tags <= TAG_NULL
        mismatch = (tags == TAG_FALSE) | (tags == TAG_TRUE) | (tags >= TAG_STR)
        return NumericColumn(values, null, mismatch)

    def labels(self) -> CodedLabels:
        """As `columns.label_column` reads a categorical feature: strings, ints, bools and
        integral floats are labels; objects, arrays and other floats are mismatches."""
        tags, c = self.tags, self.counts
        n = int(tags.shape[0])
        assert self.codes is not None and self.words is not None
        null = tags <= TAG_NULL
        if c[TAG_STR] + c[TAG_MISSING] + c[TAG_NULL] == n:
            return CodedLabels(self.codes, self.words, null, np.zeros(n, bool))
        codes = self.codes.copy()
        labels = list(self.words)
        mismatch = tags == TAG_NESTED
        others = np.flatnonzero((tags >= TAG_FALSE) & (tags <= TAG_FLOAT))
        code_of: dict[str, int] = {}
        for row in others.tolist():
            label = _label(int(tags[row]), int(self.raw[row]))
            if label is None:
                mismatch[row] = True
                continue
            code = code_of.get(label)
            if code is None:
                code = code_of[label] = len(labels)
                labels.append(label)
            codes[row] = code
        return CodedLabels(codes, labels, null, mismatch)

    def texts(self) -> TextColumn:
        """As a text feature is read: strings are texts, anything else but null a mismatch."""
        assert self.text is not None
        buf, starts, sizes, lengths, tokens, crcs = self.text
        tags = self.tags
        null = tags <= TAG_NULL
        present = tags == TAG_STR
        n = int(tags.shape[0])
        if self.counts[TAG_STR] == n:
            return TextColumn(lengths, tokens, crcs, _Texts(buf, starts, sizes), null,
                              np.zeros(n, bool))
        return TextColumn(lengths[present], tokens[present], crcs[present],
                          _Texts(buf, starts[present], sizes[present]), null, ~(null | present))

    # -- raw values -------------------------------------------------------------------------
    def values(self, missing: Any = None) -> list[Any]:
        """One Python value per record (`missing` where the record lacks the name; objects and
        arrays as `NESTED`)."""
        out: list[Any] = []
        raw = self.raw.tolist()
        codes = None if self.codes is None else self.codes.tolist()
        for row, tag in enumerate(self.tags.tolist()):
            if tag == TAG_MISSING:
                out.append(missing)
            elif tag == TAG_STR:
                out.append(self.words[codes[row]] if codes is not None  # type: ignore[index]
                           else self._text(row))
            elif tag == TAG_NESTED:
                out.append(NESTED)
            else:
                out.append(_scalar(tag, raw[row]))
        return out

    def _text(self, row: int) -> str:
        buf, starts, sizes = self.text[:3]  # type: ignore[index]
        start = int(starts[row])
        return buf[start:start + int(sizes[row])].decode("utf-8")


class _Texts(Sequence[str]):
    """Texts made from the decoder's buffer when asked for (only the sampled ones are)."""

    __slots__ = ("buf", "starts", "sizes")

    def __init__(self, buf: bytes, starts: np.ndarray, sizes: np.ndarray) -> None:
        self.buf, self.starts, self.sizes = buf, starts, sizes

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        start = int(self.starts[i])
        return self.buf[start:start + int(self.sizes[i])].decode("utf-8")

    def pick(self, rows: list[int]) -> list[str]:
        """The texts at `rows` (one conversion of the offsets, not one per text)."""
        buf = self.buf
        starts, sizes = self.starts[rows].tolist(), self.sizes[rows].tolist()
        return [buf[a:a + n].decode("utf-8") for a, n in zip(starts, sizes, strict=True)]


def _scalar(tag: int, raw: int) -> Any:
    if tag == TAG_NULL:
        return None
    if tag in (TAG_FALSE, TAG_TRUE):
        return tag == TAG_TRUE
    bits = np.array([raw], dtype=np.uint64)
    return int(bits.view(np.int64)[0]) if tag == TAG_INT else float(bits.view(np.float64)[0])


def _label(tag: int, raw: int) -> str | None:
    """The label of a bool, int or float (None: a mismatch), as `columns.label_column`."""
    value = _scalar(tag, raw)
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    return str(int(value)) if value.is_integer() else None


class NativeGroup:
    """Valid records of one model and version from the compiled decoder."""

    __slots__ = ("model", "version", "ts", "index", "columns")

    def __init__(self, model: str, version: str, ts: np.ndarray, index: np.ndarray,
                 columns: dict[str, NativeColumn]) -> None:
        self.model = model
        self.version = version
        self.ts = ts
        self.index = index
        self.columns = columns

    @classmethod
    def of(cls, model: str, version: str, ts: bytes, index: bytes,
           columns: list[tuple[str, bool, bytes, bytes, tuple[Any, ...]]]) -> NativeGroup:
        return cls(model, version, np.frombuffer(ts, np.float64), np.frombuffer(index, np.int64),
                   {name: NativeColumn.of(text, tags, raw, strings)
                    for name, text, tags, raw, strings in columns})

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def ts_array(self) -> np.ndarray:
        return self.ts

    def take(self, index: np.ndarray) -> NativeGroup:
        """The records at `index` (a sorted array of positions), as a new group."""
        if len(index) == len(self):
            return self
        return NativeGroup(self.model, self.version, self.ts[index], self.index[index],
                           {name: c.take(index) for name, c in self.columns.items()})

    def column_for(self, name: str, kind: Kind) -> Any:
        """The typed column of a feature of kind `kind`."""
        col = self.columns.get(name)
        if col is None:
            return column_for(kind, [None] * len(self))
        if kind is Kind.NUMERIC:
            return col.numeric()
        if kind is Kind.TEXT and col.text is not None:
            return col.texts()
        if kind is Kind.CATEGORICAL and col.text is None:
            return col.labels()
        return column_for(kind, self.column(name))  # read as another kind than decoded

    def column(self, name: str) -> list[Any]:
        """The raw values of one name, one per record (None where null or missing)."""
        col = self.columns.get(name)
        return [None] * len(self) if col is None else col.values()

    def feature_tally(self, profiled: Any) -> tuple[set[str], dict[str, int], int]:
        """The profiled names carried by at least one record, the records carrying each other
        name, and 0 names counted only (the decoder takes no record with unknown names)."""
        present: set[str] = set()
        tally: dict[str, int] = {}
        for name, col in self.columns.items():
            carried = col.carried(output=name == PREDICTION)
            if not carried:
                continue
            if name in profiled:
                present.add(name)
            else:
                tally[name] = carried
        return present, tally, 0

    # -- mixing with the reference path ------------------------------------------------------
    def to_columns(self) -> ColumnGroup:
        """The same records as a `ColumnGroup` of raw values."""
        features = {name: col.values(MISSING) for name, col in self.columns.items()
                    if name != PREDICTION and not name.startswith(PREDICTION + ".")}
        return ColumnGroup(self.model, self.version, self.ts, self.index, features,
                           self._predictions())

    def _predictions(self) -> list[Any]:
        n = len(self)
        scalar = self.columns.get(PREDICTION)
        out: list[Any] = [None] * n if scalar is None else scalar.values()
        keys = [(name[len(PREDICTION) + 1:], col) for name, col in self.columns.items()
                if name.startswith(PREDICTION + ".")]
        objects = [] if scalar is None else np.flatnonzero(scalar.tags == TAG_NESTED).tolist()
        if objects:
            values = [(key, col.values(MISSING)) for key, col in keys]
            for row in objects:
                out[row] = {key: v[row] for key, v in values if v[row] is not MISSING}
        return out

    def concat(self, other: Any) -> ColumnGroup:
        """Both groups' records in message order (`other`: a `ColumnGroup`)."""
        return self.to_columns().concat(other)


def join(groups: Sequence[NativeGroup | ColumnGroup]) -> ColumnGroup:
    """Groups of one key from one batch (versions 1 and "1"), as one group in message order."""
    first = groups[0]
    joined = first.to_columns() if isinstance(first, NativeGroup) else first
    for group in groups[1:]:
        joined = joined.concat(group.to_columns() if isinstance(group, NativeGroup) else group)
    return joined
