"""Valid records of one model and version held as columns: what the fast decoder produces.

A `ColumnGroup` answers the same questions as a `RecordGroup` (records.py) — length, timestamps,
the typed column of a feature, which feature names the records carry — so summaries and the
stream code take either. Its columns are tuples of raw values, one slot per record, with
`MISSING` where the record did not carry the feature (a null is `None`). Columns the decoder
typed as numbers (`numeric`) hold only ints, floats, None and `MISSING_NUMBER` (a NaN object
that only the decoder puts there: JSON has no NaN): they become float arrays in one numpy call
per batch, with no per-value type check, and missing and null are both NaN there, as both are
null for a summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from itertools import chain
from operator import is_
from types import NoneType
from typing import Any

import numpy as np
from msgspec import UNSET, UnsetType

from monitor.ingest.columns import LabelColumn, NumericColumn, column_for
from monitor.ingest.schema import PREDICTION, Kind

MISSING = UNSET  # the record does not carry this feature (a JSON null is None)
MISSING_NUMBER = float("nan")  # the same, in a numeric-typed column (told apart by identity)
_LABELS = frozenset({str, type(None)})
_is_none = partial(is_, None)


class ColumnGroup:
    """Records of one model and version as columns (see the module docstring)."""

    __slots__ = ("model", "version", "ts", "index", "columns", "predictions", "numeric",
                 "_types", "_block")

    def __init__(self, model: str, version: str, ts: np.ndarray, index: np.ndarray,
                 columns: dict[str, Sequence[Any]], predictions: Sequence[Any],
                 numeric: Iterable[str] = ()) -> None:
        self.model = model
        self.version = version
        self.ts = ts  # float64, one per record
        self.index = index  # int64: position of each record's message in the batch
        self.columns = columns
        self.predictions = predictions
        self.numeric = frozenset(numeric)  # columns that hold only numbers, None and MISSING
        self._types: dict[str, set[type]] = {}
        self._block: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def ts_array(self) -> np.ndarray:
        return self.ts

    def take(self, index: np.ndarray) -> ColumnGroup:
        """The records at `index` (a sorted array of positions), as a new group."""
        if len(index) == len(self):
            return self
        rows = index.tolist()
        return ColumnGroup(
            self.model, self.version, self.ts[index], self.index[index],
            {name: [col[i] for i in rows] for name, col in self.columns.items()},
            [self.predictions[i] for i in rows], self.numeric)

    # -- columns --------------------------------------------------------------------------------
    def types(self, name: str) -> set[type]:
        found = self._types.get(name)
        if found is None:
            found = self._types[name] = set(map(type, self.columns[name]))
        return found

    def carried(self, name: str) -> int:
        """How many records carry feature `name` (null or not)."""
        col = self.columns[name]
        if name in self.numeric:
            return len(col) - sum(1 for v in col if v is MISSING_NUMBER)
        return len(col) - col.count(MISSING) if UnsetType in self.types(name) else len(col)

    def _any_carried(self, name: str) -> bool:
        col = self.columns[name]
        if name in self.numeric:
            return col[0] is not MISSING_NUMBER or any(v is not MISSING_NUMBER for v in col)
        return UnsetType not in self.types(name) or col.count(MISSING) < len(col)

    def column(self, name: str) -> list[Any] | Sequence[Any]:
        """The raw values of one feature, one per record (None where null or missing)."""
        if name == PREDICTION or name.startswith(PREDICTION + "."):
            return _output(self.predictions, name)
        col = self.columns.get(name)
        if col is None:
            return [None] * len(self)
        if name in self.numeric:
            return [None if v is MISSING_NUMBER else v for v in col]
        if UnsetType in self.types(name):
            return [None if v is MISSING else v for v in col]
        return col

    def column_for(self, name: str, kind: Kind) -> Any:
        """The typed column of a feature of kind `kind` (ingest.columns)."""
        col = self.columns.get(name)
        if col is not None and name in self.numeric:
            if kind is Kind.NUMERIC:
                values = self._numeric_block()[name]
                null = np.isnan(values)  # null or missing: the decoder never reads a NaN
                return NumericColumn(values, null, np.zeros(len(values), dtype=bool))
        elif col is not None and kind is not Kind.NUMERIC and self.types(name) <= _LABELS:
            n = len(col)
            null = np.zeros(n, dtype=bool) if NoneType not in self.types(name) \
                else np.fromiter(map(_is_none, col), dtype=bool, count=n)
            return LabelColumn(col if type(col) is list else list(col), null,
                               np.zeros(n, dtype=bool))
        return column_for(kind, self.column(name))

    def _numeric_block(self) -> dict[str, np.ndarray]:
        """Every numeric-typed column as floats (one numpy call)."""
        if self._block is None:
            names = [n for n in sorted(self.numeric) if n in self.columns]
            block = np.array([self.columns[n] for n in names], dtype=np.float64) if names \
                else np.zeros((0, len(self)))
            self._block = dict(zip(names, block, strict=True))
        return self._block

    # -- names ----------------------------------------------------------------------------------
    def feature_tally(self, profiled: Any) -> tuple[set[str], dict[str, int], int]:
        """The profiled features present in at least one record, the records carrying each
        other name (outputs named `prediction[.key]`), and 0 names counted only (the fast path
        takes no record with unknown names)."""
        present: set[str] = set()
        tally: dict[str, int] = {}
        for name in self.columns:
            if name in profiled:
                if len(self) and self._any_carried(name):
                    present.add(name)
            else:
                carried = self.carried(name)
                if carried:
                    tally[name] = carried
        outputs, other = output_names(self.predictions, profiled)
        present |= outputs
        tally.update(other)
        return present, tally, 0

    # -- building -------------------------------------------------------------------------------
    def concat(self, other: ColumnGroup) -> ColumnGroup:
        """Both groups' records in message order (positions from the same batch)."""
        names = list(dict.fromkeys([*self.columns, *other.columns]))

        def col(group: ColumnGroup, name: str) -> list[Any]:
            values = group.columns.get(name)
            if values is None:
                return [MISSING] * len(group)
            if name in group.numeric:
                return [MISSING if v is MISSING_NUMBER else v for v in values]
            return list(values)

        order = np.argsort(np.concatenate([self.index, other.index]), kind="stable")
        rows = order.tolist()
        joined = {name: col(self, name) + col(other, name) for name in names}
        predictions = [*self.predictions, *other.predictions]
        return ColumnGroup(
            self.model, self.version, np.concatenate([self.ts, other.ts])[order],
            np.concatenate([self.index, other.index])[order],
            {name: [values[i] for i in rows] for name, values in joined.items()},
            [predictions[i] for i in rows])  # values from the reference path: typed per value

    @classmethod
    def join(cls, parts: list[ColumnGroup]) -> ColumnGroup:
        """Consecutive parts of one batch with the same columns (the fast decoder's chunks)."""
        first = parts[0]
        return cls(first.model, first.version, np.concatenate([p.ts for p in parts]),
                   np.concatenate([p.index for p in parts]),
                   {name: list(chain.from_iterable(p.columns[name] for p in parts))
                    for name in first.columns},
                   list(chain.from_iterable(p.predictions for p in parts)), first.numeric)

    @classmethod
    def from_rows(cls, model: str, version: str, ts: Sequence[float], index: Sequence[int],
                  features: Sequence[dict[str, Any]], predictions: Sequence[Any]) -> ColumnGroup:
        names: set[str] = set().union(*features)
        columns = {name: [f.get(name, MISSING) for f in features] for name in sorted(names)}
        return cls(model, version, np.asarray(ts, dtype=np.float64),
                   np.asarray(index, dtype=np.int64), columns, list(predictions))


def _output(predictions: Sequence[Any], name: str) -> list[Any] | Sequence[Any]:
    if name == PREDICTION:
        return predictions
    key = name[len(PREDICTION) + 1:]
    return [p.get(key) if type(p) is dict else None for p in predictions]


def output_names(predictions: Sequence[Any], profiled: Any) -> tuple[set[str], dict[str, int]]:
    """Model outputs as feature names: `prediction` for a scalar, `prediction.<key>` for each
    key of an object; the profiled ones present, and the records carrying each other one."""
    present: set[str] = set()
    tally: dict[str, int] = {}
    kinds = set(map(type, predictions))
    dicts = 0
    if dict in kinds:
        outputs = [p for p in predictions if type(p) is dict]
        dicts = len(outputs)
        counts: dict[str, int] = {}
        for p in outputs:
            for key in p:
                counts[key] = counts.get(key, 0) + 1
        for key, n in counts.items():
            name = f"{PREDICTION}.{key}"
            if name in profiled:
                present.add(name)
            else:
                tally[name] = n
    if kinds - {dict, type(None)}:
        if PREDICTION in profiled:
            present.add(PREDICTION)
        else:
            tally[PREDICTION] = len(predictions) - list(predictions).count(None) - dicts
    return present, tally
