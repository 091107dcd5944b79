"""The fast path of `parse_messages`: messages decoded straight into typed structs, then columns.

For every profiled model a msgspec struct is generated from the profiles' schemas (its feature
names, numbers typed as numbers), and one decoder reads a message of any of those models (a
tagged union on `model`) or an array of them. A batch of records becomes one `ColumnGroup` per
model and version: columns are transposed from the structs in C (`zip(*map(astuple, ...))`), no
dict is built per record, and numeric columns need no per-value type check.

The fast path only accepts what it can vouch for; every other message goes, whole, to the
reference path in `records.py` (which gives it its reason, or reads it in full): a model with
no profile, a feature no version of its profile knows, a nested value, a boolean or string in a
numeric feature, an integer beyond 64 bits, NaN or Infinity, invalid UTF-8, a version or `ts`
the reference would refuse, and anything that is not a record. What it accepts it reads exactly
as the reference would (tests/test_fast_decode.py checks both on random and adversarial
batches), so which path a record took never changes a figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Annotated, Any, Union

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType
from msgspec.structs import astuple

from monitor.ingest.column_group import MISSING_NUMBER, ColumnGroup
from monitor.ingest.native_decode import NativeDecoder, available
from monitor.ingest.schema import PREDICTION, Kind
from monitor.ingest.timestamps import parse_ts

MAX_NAME_CHARS = 200  # as records.MAX_NAME_CHARS (imported there from here)
CHUNK = 500  # messages decoded and transposed at a time
# orjson reads integers beyond 64 bits as floats; the fast path leaves them to it.
Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Scalar = str | Int | float | bool | None
Number = Int | float | None
ModelKey = tuple[str, str]
_ERRORS = (msgspec.MsgspecError, ValueError)
_FEATURES = attrgetter("features")
_VERSION = attrgetter("version")
_TS = attrgetter("ts")
_PREDICTION = attrgetter("prediction")


class _NoModel(msgspec.Struct, tag_field="model", tag=""):
    """Never a valid record: it keeps the union a union (a lone tagged struct would accept a
    record with no `model` at all)."""


class FastDecoder:
    """Decodes batches of messages of the models in `schemas` (model -> feature -> kind, over
    all versions of the model's profiles)."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Kind]], *,
                 native: bool | None = None) -> None:
        """`native`: decode with the compiled decoder (`native_decode.py`); by default when it
        is installed and not switched off."""
        self._native = NativeDecoder(schemas, MAX_NAME_CHARS) \
            if (available() if native is None else native) else None
        self._layout: dict[type, tuple[str, tuple[str, ...], frozenset[str]]] = {}
        records: list[Any] = [_NoModel]
        for i, (model, kinds) in enumerate(sorted(schemas.items())):
            if not model or len(model) > MAX_NAME_CHARS:
                continue  # never a valid record: the reference says why
            names = tuple(n for n in kinds if n != PREDICTION
                          and not n.startswith(PREDICTION + "."))
            fields = [(f"f{j}", Number, MISSING_NUMBER) if kinds[n] is Kind.NUMERIC
                      else (f"f{j}", Scalar | UnsetType, UNSET) for j, n in enumerate(names)]
            features = msgspec.defstruct(
                f"Features{i}", fields, rename={f"f{j}": n for j, n in enumerate(names)},
                forbid_unknown_fields=True, gc=False)
            record = msgspec.defstruct(
                f"Record{i}", [("version", str | Int | float), ("ts", float | Int | str),
                               ("features", features), ("prediction", Scalar | dict, None)],
                tag_field="model", tag=model, gc=False)
            numeric = frozenset(n for n in names if kinds[n] is Kind.NUMERIC)
            self._layout[record] = (model, names, numeric)
            records.append(record)
        union = Union[tuple(records)]  # noqa: UP007 - a runtime union of generated types
        self._decode = msgspec.json.Decoder(union | list[union]).decode  # type: ignore[valid-type]

    @property
    def models(self) -> list[str]:
        return [model for model, _, _ in self._layout.values()]

    @property
    def native(self) -> bool:
        """Whether the compiled decoder decodes."""
        return self._native is not None

    def decode(self, messages: Sequence[bytes], latest: float
               ) -> tuple[dict[ModelKey, Any], list[int]]:
        """Groups of the records it accepts, and the positions of the messages it leaves to
        the reference path (in order). `latest`: the newest acceptable `ts`.

        Messages are decoded CHUNK at a time, each chunk's structs turned into columns while
        they are still in the CPU's cache (a third faster than one pass over 5,000)."""
        if self._native is not None:
            return self._native.decode(messages, latest)
        refused: set[int] = set()
        parts: dict[ModelKey, list[ColumnGroup]] = {}
        for start in range(0, len(messages), CHUNK):
            for key, group in self._decode_part(messages[start:start + CHUNK], start, latest,
                                                refused).items():
                parts.setdefault(key, []).append(group)
        groups = {key: found[0] if len(found) == 1 else ColumnGroup.join(found)
                  for key, found in parts.items()}
        if len(groups) > 1:  # first appearance order, as the reference path
            groups = dict(sorted(groups.items(), key=lambda kv: int(kv[1].index[0])))
        return groups, sorted(refused)

    def _decode_part(self, messages: Sequence[bytes], start: int, latest: float,
                     refused: set[int]) -> dict[ModelKey, ColumnGroup]:
        decode = self._decode
        records: list[Any] = []
        positions: list[int] = []
        arrays = False
        for i, message in enumerate(messages, start):
            try:
                obj = decode(message)
            except _ERRORS:
                refused.add(i)
                continue
            kind = type(obj)
            if kind is list:
                if any(type(r) is _NoModel for r in obj):
                    refused.add(i)
                    continue
                arrays = True
                records.extend(obj)
                positions.extend([i] * len(obj))
            elif kind is _NoModel:
                refused.add(i)
            else:
                records.append(obj)
                positions.append(i)
        if not records:
            return {}
        accepted: dict[ModelKey, tuple[type, list[int], list[np.ndarray]]] = {}
        for (kind, raw_version), rows in _buckets(records).items():
            version = _version(raw_version)
            layout = self._layout.get(kind)
            if version is None or layout is None:
                refused.update(positions[j] for j in rows)
                continue
            ts, bad = _timestamps([records[j].ts for j in rows] if len(rows) != len(records)
                                  else list(map(_TS, records)), latest)
            if bad:
                refused.update(positions[rows[j]] for j in bad)
            entry = accepted.setdefault((layout[0], version), (kind, [], []))
            entry[1].extend(rows)  # version 1 and "1" are one key
            entry[2].append(ts)
        index_all = np.asarray(positions, dtype=np.int64)
        groups: dict[ModelKey, ColumnGroup] = {}
        for key, (kind, rows, parts) in accepted.items():
            ts = parts[0] if len(parts) == 1 else np.concatenate(parts)
            if len(parts) > 1:
                order = np.argsort(np.asarray(rows), kind="stable")
                rows, ts = [rows[k] for k in order.tolist()], ts[order]
            if refused:
                keep = [k for k, j in enumerate(rows) if positions[j] not in refused]
                if not keep:
                    continue
                if len(keep) != len(rows):
                    rows = [rows[k] for k in keep]
                    ts = ts[keep]
            chosen = records if len(rows) == len(records) else [records[j] for j in rows]
            groups[key] = self._group(key, kind, chosen, ts, index_all[rows])
        if arrays or len(groups) > 1:  # first appearance order, as the reference path
            groups = dict(sorted(groups.items(), key=lambda kv: int(kv[1].index[0])))
        return groups

    def _group(self, key: ModelKey, kind: type, records: list[Any], ts: np.ndarray,
               index: np.ndarray) -> ColumnGroup:
        _, names, numeric = self._layout[kind]
        transposed = list(zip(*map(astuple, map(_FEATURES, records)), strict=True)) if names \
            else []
        columns = dict(zip(names, transposed, strict=True))
        return ColumnGroup(key[0], key[1], ts, index, columns,
                           list(map(_PREDICTION, records)), numeric)


def _buckets(records: list[Any]) -> dict[tuple[type, Any], list[int]]:
    """Record rows by (struct type, raw version); one bucket without a loop when all agree."""
    kinds = list(map(type, records))
    versions = list(map(_VERSION, records))
    distinct = set(zip(kinds, versions, strict=True))
    if len(distinct) == 1:
        return {distinct.pop(): list(range(len(records)))}
    buckets: dict[tuple[type, Any], list[int]] = {}
    for j, key in enumerate(zip(kinds, versions, strict=True)):
        rows = buckets.get(key)
        if rows is None:
            buckets[key] = [j]
        else:
            rows.append(j)
    return buckets


def _version(value: Any) -> str | None:
    """The version as the reference reads it, or None when the reference would refuse it
    (version 1 and "1" are both "1")."""
    if type(value) is not str:
        value = str(value)  # an int or a float (never a bool here)
    return value if 0 < len(value) <= MAX_NAME_CHARS else None


def _timestamps(values: list[Any], latest: float) -> tuple[np.ndarray, list[int]]:
    """Epoch seconds of each record, and the rows whose `ts` the reference would refuse."""
    types = set(map(type, values))
    if types <= {float, int}:
        ts = np.array(values, dtype=np.float64)  # finite: JSON has no NaN or Infinity
        bad = np.flatnonzero(ts > latest).tolist()
        return ts, bad
    ts = np.empty(len(values))
    bad = []
    for j, value in enumerate(values):
        try:
            ts[j] = parse_ts(value, latest)
        except ValueError:
            ts[j] = 0.0
            bad.append(j)
    return ts, bad
