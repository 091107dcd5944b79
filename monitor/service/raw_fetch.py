"""A partition's fetched records read where they lie in the fetch response, for the topics
registered with `read_raw` (the predictions topic).

aiokafka makes a `ConsumerRecord` per record on the event loop, about 1.5 µs each: a third of
that thread's work in a worker that reads a million records. For a registered topic, the
records of one fetch response's partition come instead as one `Fetched`: the response's buffer
with the positions of each record's value and key and its offset, which `drift_native` reads
out of the record batches without a Python object per record, and which the compiled decoder
then decodes in place. `Fetched` is a sequence of records (`FetchedRecord`, made only when one
is asked for: a dead letter's coordinates), so the code that takes a list of `ConsumerRecord`
takes it too.

Only what that path has read the same way goes through it: batches of message format v2 whose
CRC-32C matches (compressed ones decompressed first, with aiokafka's codecs), no deserializers,
read-uncommitted isolation. Any other fetch response (the old formats, a codec not installed, a
corrupt batch, which aiokafka then reports) is read by aiokafka as before, and so is every
topic not registered. Header keys are not read: one that is not UTF-8 (the broker takes it)
made aiokafka raise out of `getmany`, and the worker stop at every start.
tests/test_raw_fetch.py checks both paths on random and adversarial batches.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, overload

import numpy as np
from aiokafka import codec as _codec
from aiokafka.consumer import fetcher as _fetcher
from aiokafka.record.default_records import DefaultRecordBatch

from monitor.ingest.native_decode import LineBatch, available

try:
    import drift_native
except ImportError:  # not built: aiokafka reads every record
    drift_native = None

log = logging.getLogger(__name__)

NULL = np.uint64(2**64 - 1)  # the span of a null key or value
_BATCH_HEADER = 61  # bytes of a v2 record batch before its records
_CODECS = {1: (_codec.gzip_decode, _codec.has_gzip), 2: (_codec.snappy_decode, _codec.has_snappy),
           3: (_codec.lz4_decode, _codec.has_lz4), 4: (_codec.zstd_decode, _codec.has_zstd)}
_RAW_TOPICS: set[str] = set()


class FetchedRecord(NamedTuple):
    """One record of a `Fetched` (the fields of a `ConsumerRecord` the worker reads)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Fetched(Sequence[FetchedRecord]):
    """Records of one partition, in offset order, where they lie in `buffer`: `values` and `keys`
    (n, 2) arrays of (start, end), a null value read as empty, a null key as (NULL, NULL)."""

    __slots__ = ("buffer", "keys", "offsets", "partition", "topic", "values")

    def __init__(self, topic: str, partition: int, buffer: bytes, values: np.ndarray,
                 keys: np.ndarray, offsets: np.ndarray) -> None:
        self.topic, self.partition, self.buffer = topic, partition, buffer
        self.values, self.keys, self.offsets = values, keys, offsets

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, i: int) -> FetchedRecord: ...
    @overload
    def __getitem__(self, i: slice) -> Fetched: ...
    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return self.take(i)
        start, end = self.keys[i].tolist()
        key = None if start == NULL else self.buffer[start:end]
        return FetchedRecord(self.topic, self.partition, int(self.offsets[i]), key,
                             self.messages[i])

    def take(self, which: Any) -> Fetched:
        """The records at `which` (a slice, or positions in order)."""
        return Fetched(self.topic, self.partition, self.buffer, self.values[which],
                       self.keys[which], self.offsets[which])

    @property
    def messages(self) -> LineBatch:
        """The values, read in place by the compiled decoder."""
        return LineBatch(self.buffer, self.values)

    def sizes(self) -> list[int]:
        return (self.values[:, 1] - self.values[:, 0]).tolist()


def read_raw(topic: str) -> bool:
    """Read `topic`'s fetches into `Fetched` from now on, in this process; False when this
    aiokafka or this build cannot (then aiokafka reads them as usual)."""
    if not _install():
        return False
    _RAW_TOPICS.add(topic)
    return True


_installed: bool | None = None


def _install() -> bool:
    global _installed
    if _installed is None:
        _installed = _patch()
    return _installed


def _patch() -> bool:
    if drift_native is None or not available() or not hasattr(drift_native, "kafka_records"):
        return False
    records = getattr(_fetcher, "PartitionRecords", None)
    memory = getattr(_fetcher, "MemoryRecords", None)
    expected = ["self", "tp", "records", "aborted_transactions", "fetch_offset",
                "key_deserializer", "value_deserializer", "check_crcs", "isolation_level"]
    if (records is None or memory is None or not hasattr(records, "_unpack_records")
            or list(inspect.signature(records.__init__).parameters) != expected):
        log.info("aiokafka %s is not the one raw fetches were written for: it reads every "
                 "record itself", getattr(_fetcher, "__version__", "?"))
        return False

    class KeptMemoryRecords(memory):  # type: ignore[misc, valid-type]
        """aiokafka's record batches, keeping the bytes they read."""

        def __init__(self, data: bytes) -> None:
            super().__init__(data)
            self.data = data

    class RawPartitionRecords(records):  # type: ignore[misc, valid-type]
        def __init__(self, tp: Any, records: Any, aborted_transactions: Any, fetch_offset: int,
                     key_deserializer: Any, value_deserializer: Any, check_crcs: bool,
                     isolation_level: int) -> None:
            super().__init__(tp, records, aborted_transactions, fetch_offset, key_deserializer,
                             value_deserializer, check_crcs, isolation_level)
            data = getattr(records, "data", None)
            if (tp.topic in _RAW_TOPICS and type(data) is bytes and key_deserializer is None
                    and value_deserializer is None
                    and isolation_level == _fetcher.READ_UNCOMMITTED):
                self._records_iterator = self._fetched(tp, data, fetch_offset, check_crcs)

        def _fetched(self, tp: Any, data: bytes, fetch_offset: int,
                     check_crcs: bool) -> Iterator[Any]:
            read = read_records(data, fetch_offset, check_crcs)
            if read is None:  # aiokafka reads it (and reports what is wrong with it)
                yield from self._unpack_records()
                return
            data, (values, keys, offsets, next_offset) = read
            fetched = Fetched(tp.topic, tp.partition, data, _spans(values, empty=True),
                              _spans(keys), np.frombuffer(offsets, dtype=np.int64))
            # Set before the records are handed out: aiokafka moves the position to it as soon
            # as it has taken what it asked for.
            self.next_fetch_offset = max(self.next_fetch_offset, next_offset)
            if len(fetched):
                yield fetched

    _fetcher.MemoryRecords = KeptMemoryRecords
    _fetcher.PartitionRecords = RawPartitionRecords
    return True


def read_records(data: bytes, start: int, check_crcs: bool) -> tuple[bytes, Any] | None:
    """`drift_native.kafka_records` of a fetch response, compressed batches included: those are
    decompressed here (aiokafka's codecs) and read like the others. (buffer read, found), or
    None for what only aiokafka reads (old formats, a codec not installed, a corrupt batch)."""
    found = drift_native.kafka_records(data, start, check_crcs)
    if found is not None:
        return data, found
    plain = decompressed(data, check_crcs)
    if plain is None:
        return None
    found = drift_native.kafka_records(plain, start, False)  # CRCs checked before decompressing
    return None if found is None else (plain, found)


def decompressed(data: bytes, check_crcs: bool) -> bytes | None:
    """The record batches of `data` with each compressed one made the same batch uncompressed
    (its header kept, but the length and the codec bits; its CRC, checked before, no longer
    holds). A batch cut short at the end stays out. None: a batch not of format v2, a codec not
    installed, a CRC that does not match, data that does not decompress.

    aiokafka reads a compressed batch itself only if every record's header keys are UTF-8 (the
    broker does not check them): one that is not stopped the worker at every start."""
    out: list[bytes] = []
    at = 0
    while len(data) - at >= _BATCH_HEADER:
        length = int.from_bytes(data[at + 8:at + 12], "big", signed=True)
        end = at + 12 + length
        if data[at + 16] != 2 or length < _BATCH_HEADER - 12:
            return None
        if end > len(data):
            break
        batch = data[at:end]
        if check_crcs and not DefaultRecordBatch(batch).validate_crc():
            return None
        attributes = int.from_bytes(batch[21:23], "big")
        codec = attributes & 0x07
        if codec:
            decode, installed = _CODECS.get(codec, (None, None))
            if decode is None or not installed():
                return None
            try:
                records = decode(batch[_BATCH_HEADER:])
            except Exception:  # noqa: BLE001 - corrupt: aiokafka reads it and reports it
                return None
            out += [batch[:8], (_BATCH_HEADER - 12 + len(records)).to_bytes(4, "big"),
                    batch[12:21], (attributes & ~0x07).to_bytes(2, "big"),
                    batch[23:_BATCH_HEADER], records]
        else:
            out.append(batch)
        at = end
    return b"".join(out)


def _spans(raw: bytes, *, empty: bool = False) -> np.ndarray:
    spans = np.frombuffer(raw, dtype=np.uint64).reshape(-1, 2)
    if empty:  # a null value reads as an empty message (a tombstone: invalid, as before)
        spans = np.where(spans == NULL, np.uint64(0), spans)
    return spans


def records_of(batch: Sequence[Any]) -> Sequence[Any]:
    """A runner's batch as one sequence of records: a list of `ConsumerRecord`, or the
    `Fetched` it holds (a getmany drains one fetch response per partition, so one; more are
    joined into a list, should an aiokafka ever hand them over)."""
    if not batch or not isinstance(batch[0], Fetched):
        return batch
    if len(batch) == 1:
        return batch[0]
    return _joined(batch)


def in_batches(batch: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """A runner's batch in batches of at most `size` records: aiokafka counts a `Fetched` as
    one item of `max_records`, so a fetch response's records are cut here (views of it, in
    offset order); a list of `ConsumerRecord`s comes whole (aiokafka bounded it already)."""
    if not batch or not isinstance(batch[0], Fetched):
        yield batch
        return
    for part in batch:
        for start in range(0, len(part), max(size, 1)):
            yield [part[start:start + max(size, 1)]]


def _joined(parts: Sequence[Any]) -> Sequence[Any]:
    """Fetched parts of different buffers, or a mix with `ConsumerRecord`s, as one list."""
    out: list[Any] = []
    for part in parts:
        if isinstance(part, Fetched):
            out.extend(part[i] for i in range(len(part)))
        else:
            out.append(part)
    return out
