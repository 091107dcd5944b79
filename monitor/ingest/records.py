"""Prediction-log records: decode a batch of Kafka messages (or JSONL lines) and group the valid
records by model and version; every invalid one comes back with its reason and original bytes.

A record (README.md, "Message formats"):
    {"model": "churn", "version": "3", "ts": "2026-11-26T12:00:00.250Z", "id": "req-8812",
     "features": {"age": 41, "state": "CA"}, "prediction": 0.83}
One message holds one record or a JSON array of records.

Two paths give the same groups: the fast path (`fast_decode.FastDecoder`, built from the
profiles' schemas) decodes the messages it can vouch for straight into columns; this module's
per-record path reads every other message and is the reference the fast path is tested against.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import numpy as np
import orjson

from monitor.ingest.column_group import ColumnGroup, output_names
from monitor.ingest.columns import LabelColumn, NumericColumn, column_for
from monitor.ingest.fast_decode import MAX_NAME_CHARS, FastDecoder
from monitor.ingest.schema import PREDICTION, Kind
from monitor.ingest.timestamps import MAX_FUTURE_SECONDS, parse_ts

ModelKey = tuple[str, str]
WIDE_RECORD_NAMES = 1_000  # a record with more feature keys has its unprofiled ones counted only
# Model and version name a profile, key the engine's state and appear in every alert and metric:
# longer ones (MAX_NAME_CHARS) are refused (dead-lettered with the reason), so no record can
# bloat those.
__all__ = ["MAX_NAME_CHARS", "ColumnGroup", "InvalidRecord", "ParsedBatch", "RecordGroup",
           "parse_messages"]


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    reason: str
    raw: bytes
    model: str | None = None  # when it could be read, so that the model's counters can say it
    index: int = -1  # position of its message in the batch (-1: unknown)


@dataclass(slots=True)
class RecordGroup:
    """Valid records of one model and version, in arrival order, as parallel lists."""

    model: str
    version: str
    ts: list[float] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    index: list[int] = field(default_factory=list)  # position of each record's message in the batch

    def __len__(self) -> int:
        return len(self.ts)

    def append(self, ts: float, features: dict[str, Any], prediction: Any,
               index: int = -1) -> None:
        self.ts.append(ts)
        self.features.append(features)
        self.predictions.append(prediction)
        self.index.append(index)

    def ts_array(self) -> np.ndarray:
        return np.asarray(self.ts, dtype=np.float64)

    def take(self, index: np.ndarray) -> RecordGroup:
        """The records at `index` (a sorted array of positions), as a new group."""
        if len(index) == len(self.ts):
            return self
        return RecordGroup(self.model, self.version, [self.ts[i] for i in index],
                           [self.features[i] for i in index],
                           [self.predictions[i] for i in index],
                           [self.index[i] for i in index])

    def column(self, name: str) -> list[Any]:
        """The raw values of one feature, one per record (None where missing)."""
        if name == PREDICTION:
            return self.predictions
        if name.startswith(PREDICTION + "."):
            key = name[len(PREDICTION) + 1:]
            return [p.get(key) if type(p) is dict else None for p in self.predictions]
        return list(map(dict.get, self.features, repeat(name)))

    def column_for(self, name: str, kind: Kind) -> NumericColumn | LabelColumn:
        return column_for(kind, self.column(name))

    def feature_tally(self, profiled: Any) -> tuple[set[str], dict[str, int], int]:
        """The profiled features present in at least one record, the records carrying each
        other name (outputs named `prediction[.key]`), and the other names of wide records
        (more than WIDE_RECORD_NAMES keys: 10,000 junk keys would cost microseconds each to
        track), counted only. Counting per record only runs for unexpected names."""
        features = self.features
        untracked = 0
        wide_present: set[str] = set()
        if any(len(f) > WIDE_RECORD_NAMES for f in features):
            wide = [f for f in features if len(f) > WIDE_RECORD_NAMES]
            features = [f for f in features if len(f) <= WIDE_RECORD_NAMES]
            seen = [profiled & f.keys() for f in wide]
            untracked = sum(len(f) - len(p) for f, p in zip(wide, seen, strict=True))
            wide_present = set().union(*seen)
        keys: set[str] = set().union(*features) | wide_present
        odd = keys - profiled
        tally: dict[str, int] = {}
        if odd:
            counts = Counter(chain.from_iterable(features))
            tally = {k: counts[k] for k in odd}
        outputs, other = output_names(self.predictions, profiled)
        tally.update(other)
        return (keys & profiled) | outputs, tally, untracked

    def to_columns(self) -> ColumnGroup:
        return ColumnGroup.from_rows(self.model, self.version, self.ts, self.index,
                                     self.features, self.predictions)

    def feature_names(self) -> set[str]:
        """Every feature name present in at least one record, outputs as `prediction[.key]`."""
        names: set[str] = set().union(*self.features)
        kinds = set(map(type, self.predictions))
        if dict in kinds:
            for p in self.predictions:
                if type(p) is dict:
                    names.update(f"{PREDICTION}.{k}" for k in p)
        if kinds - {dict, type(None)}:
            names.add(PREDICTION)
        return names


@dataclass(slots=True)
class ParsedBatch:
    groups: dict[ModelKey, RecordGroup | ColumnGroup] = field(default_factory=dict)
    invalid: list[InvalidRecord] = field(default_factory=list)

    @property
    def valid_count(self) -> int:
        return sum(len(g) for g in self.groups.values())


def _decode(message: bytes) -> Any:
    try:
        return orjson.loads(message)
    except orjson.JSONDecodeError as fast_error:
        # The stdlib accepts NaN and Infinity, which Python's json.dumps writes by default.
        try:
            text = bytes(message).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"message is not valid UTF-8 (byte {exc.start})") from None
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ValueError(f"not valid JSON: {fast_error}") from None


def _check_record(obj: Any, latest: float) -> tuple[str, str, float, dict[str, Any], Any]:
    """The parts of a valid record, or ValueError with the reason."""
    if type(obj) is not dict:
        raise ValueError(f"record is not a JSON object but {type(obj).__name__}")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("missing or empty 'model' (a string)" if model in (None, "")
                         else f"'model' must be a string, got {type(model).__name__}")
    version = obj.get("version")
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)
    elif not isinstance(version, str) or not version:
        raise ValueError("missing or empty 'version' (a string or number)")
    for field_name, value in (("model", model), ("version", version)):
        if len(value) > MAX_NAME_CHARS:
            raise ValueError(f"'{field_name}' is longer than {MAX_NAME_CHARS} characters "
                             f"({len(value):,}): a name, not data")
    if "ts" not in obj:
        raise ValueError("missing 'ts'")
    ts = parse_ts(obj["ts"], latest)
    features = obj.get("features", {})
    if type(features) is not dict:
        raise ValueError(f"'features' must be an object, got {type(features).__name__}")
    prediction = obj.get("prediction")
    if type(prediction) in (list,):
        raise ValueError("'prediction' must be a number, a string or an object, not a list")
    return model, version, ts, features, prediction


def parse_messages(messages: Iterable[bytes], decoder: FastDecoder | None = None, *,
                   latest: float | None = None) -> ParsedBatch:
    """Decode and validate a batch of messages; never raises on bad input. With a `decoder`
    the messages it accepts take the fast path (their groups are `ColumnGroup`s); the others,
    and every message without one, take the per-record path here. `latest`: the newest
    acceptable `ts` (default: a day from now).

    >>> b = parse_messages([b'{"model":"m","version":1,"ts":0,"features":{"x":1}}', b'{"oops'])
    >>> len(b.groups[("m", "1")]), b.invalid[0].reason.split(":")[0]
    (1, 'not valid JSON')
    """
    latest = time.time() + MAX_FUTURE_SECONDS if latest is None else latest
    if decoder is None:
        return _parse_records(messages, latest)
    messages = messages if isinstance(messages, Sequence) else list(messages)
    groups, refused = decoder.decode(messages, latest)
    if not refused:
        return ParsedBatch(dict(groups))
    rest = _parse_records([messages[i] for i in refused], latest, refused)
    for key, group in rest.groups.items():
        fast = groups.get(key)
        groups[key] = group if fast is None else fast.concat(group.to_columns())
    if len(groups) > 1:  # first appearance order, as the reference path; models first seen
        # in the same (refused, so reference-read) array message in their order there
        rank = {key: i for i, key in enumerate(rest.groups)}
        groups = dict(sorted(groups.items(),
                             key=lambda kv: (int(kv[1].index[0]), rank.get(kv[0], 0))))
    return ParsedBatch(dict(groups), rest.invalid)


def _parse_records(messages: Iterable[bytes], latest: float,
                   positions: Sequence[int] | None = None) -> ParsedBatch:
    """The per-record path (the reference); `positions`: each message's place in the batch."""
    batch = ParsedBatch()
    groups = batch.groups
    for position, message in enumerate(messages):
        if positions is not None:
            position = positions[position]
        try:
            obj = _decode(message)
        except ValueError as exc:
            batch.invalid.append(InvalidRecord(str(exc), bytes(message), None, position))
            continue
        items = obj if type(obj) is list else (obj,)
        for item in items:
            # Fast path for the common, well-formed record; anything else gets the full check.
            if type(item) is dict:
                model = item.get("model")
                version = item.get("version")
                ts = item.get("ts")
                features = item.get("features")
                prediction = item.get("prediction")
                if (type(model) is str and 0 < len(model) <= MAX_NAME_CHARS
                        and type(version) is str and 0 < len(version) <= MAX_NAME_CHARS
                        and type(ts) is float and ts - ts == 0.0 and ts <= latest
                        and type(features) is dict
                        and type(prediction) is not list):
                    _group(groups, model, version).append(ts, features, prediction, position)
                    continue
            try:
                model, version, ts, features, prediction = _check_record(item, latest)
            except ValueError as exc:
                raw = _encode_item(item) if items is obj else bytes(message)
                name = item.get("model") if type(item) is dict else None
                name = name if isinstance(name, str) and len(name) <= MAX_NAME_CHARS else None
                batch.invalid.append(InvalidRecord(str(exc), bytes(raw), name, position))
                continue
            _group(groups, model, version).append(ts, features, prediction, position)
    return batch


def _group(groups: dict[ModelKey, Any], model: str, version: str) -> RecordGroup:
    group = groups.get((model, version))
    if group is None:
        group = groups[(model, version)] = RecordGroup(model, version)
    return group


def _encode_item(item: Any) -> bytes:
    """One element of an array message, re-encoded on its own for the dead-letter topic."""
    try:
        return orjson.dumps(item)
    except (TypeError, orjson.JSONEncodeError):  # NaN/inf that came through the stdlib
        return json.dumps(item).encode()
