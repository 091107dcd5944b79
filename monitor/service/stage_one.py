"""Stage one's processor for one input partition: Kafka records in, decisions out (synchronous).

It skips records its checkpoint already covers, parses the rest (one message may hold an array of
records), folds them with a `PartitionFolder`, and says what to do: dead letters (bad records
with their reasons and source coordinates), and an outbox of partials and watermarks for the
partials topic. A message above `max_message_bytes` is a dead letter without being parsed (its
first `TOO_LARGE_KEPT_BYTES` go to the dead-letter topic, the whole of it stays at its source
offset), and a batch is parsed in slices of at most `PARSE_SLICE_BYTES`, so the memory a batch
takes while parsed is bounded whatever its messages hold. `prepare` parses a batch's first slice
ahead (the runner calls it as soon as the fetch returns): the columns parsed ahead are those of
one fetch at most, whose size the consumer's fetch limit bounds. A watermark crossing a window
boundary is urgent (a window may close); running counts ride along with the next checkpoint.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np

from monitor.ingest.records import ModelKey, ParsedBatch, parse_messages
from monitor.profile.store import ProfileStore
from monitor.service.raw_fetch import Fetched, records_of
from monitor.service.runner import Step
from monitor.service.state_store import Loaded
from monitor.stream.folder import PartitionFolder
from monitor.stream.messages import Message, Progress
from monitor.stream.messages import encode as encode_message

KEEPALIVE_SECONDS = 10.0  # progress is sent at least this often, changed or not
TOO_LARGE_KEPT_BYTES = 64 * 1024  # of a message too large, what the dead letter carries
PARSE_SLICE_BYTES = 4 << 20  # messages parsed (then folded) together, at most
_VALUE, _OFFSET = attrgetter("value"), attrgetter("offset")


@dataclass
class DeadLetter:
    record: Any  # the source ConsumerRecord
    reason: str
    raw: bytes  # the message, or the one bad element of an array message
    model: str | None
    size: int | None = None  # of the whole message, when `raw` is only its beginning


@dataclass
class Outgoing:
    partition: int  # of the partials topic
    key: bytes
    value: bytes


@dataclass
class Prepared:
    """A batch as `FoldProcessor.prepare` found it: its fresh records after offset `done`,
    their messages and sizes, and the first slice parsed with `decoder` (None: parse it when
    folding; a batch with a message too large is sorted first)."""

    owner: FoldProcessor
    source: Sequence[Any]  # the batch as the runner had it
    done: int  # the owner's offset when prepared
    fresh: Sequence[Any]
    raws: Sequence[bytes]
    sizes: list[int]
    decoder: Any
    first: ParsedBatch | None

    def still_valid(self) -> bool:
        """Whether folding it now folds what `process` of the source would: same records fresh
        (the owner's offset has not reached into them since: offsets only grow) and the same
        decoder (profiles reloaded meanwhile make another)."""
        owner = self.owner
        now = owner.folder.offset
        return ((now == self.done or not len(self.fresh) or self.fresh[0].offset > now)
                and (self.first is None or owner._decoder() is self.decoder))


class FoldProcessor:
    def __init__(self, partition: int, folder: PartitionFolder, *, partials_partitions: int,
                 route: Callable[[str], int], loaded: Loaded | None = None,
                 max_message_bytes: int = 1 << 20,
                 sources: Callable[[], int] | None = None) -> None:
        self.partition = partition
        self.max_message_bytes = max_message_bytes
        self.sources = sources  # input partitions now (they can be added while running)
        self.folder = folder
        self.partials_partitions = partials_partitions
        self.route = route
        self.session = _zero()
        self.warnings: list[str] = []
        if loaded is not None:
            self.warnings = folder.restore(loaded.header, loaded.models)
            folder.offset = loaded.offset
        self._sent_marks: dict[Any, int] = {}
        self._sent_counts: Any = None
        self._saved: dict[int, Progress] | None = None  # progress as of the last checkpoint
        self._sent_at = -math.inf
        self._wall: float | None = None
        self._caught_up = False

    @property
    def offset(self) -> int:
        return self.folder.offset

    # -- decisions ------------------------------------------------------------------------------
    def prepare(self, records: Sequence[Any]) -> Prepared:
        """What `process` does before it folds, which changes nothing here and may run ahead in
        another thread (the runner's `ahead`) while the previous batch is folded: the records
        after the checkpoint's offset, their messages, and the first slice parsed."""
        done = self.folder.offset
        source = records
        fresh = self._fresh(records_of(records), done)
        if not len(fresh):
            return Prepared(self, source, done, fresh, [], [], None, None)
        raws, sizes = _messages(fresh)
        slices = _slices(sizes, PARSE_SLICE_BYTES)
        decoder = self._decoder()
        first = None
        if max(sizes) <= self.max_message_bytes:  # else `process` sorts out the too large first
            start, end = slices[0]
            first = parse_messages(_part_messages(fresh, raws, start, end), decoder)
        return Prepared(self, source, done, fresh, raws, sizes, decoder, first)

    def process(self, records: Sequence[Any] | Prepared, wall: float) -> Step:
        """Fold a batch of records (`ConsumerRecord`s, the `Fetched` of a raw fetch, or what
        `prepare` made of them: used when nothing it read has changed since)."""
        prepared = records if isinstance(records, Prepared) else None
        if prepared is None or prepared.owner is not self or not prepared.still_valid():
            prepared = self.prepare(records.source if isinstance(records, Prepared) else records)
        fresh, raws, sizes = prepared.fresh, prepared.raws, prepared.sizes
        if not len(fresh):
            return Step()
        last = fresh[-1].offset
        letters: list[DeadLetter] = []
        parsed = prepared.first
        if max(sizes) > self.max_message_bytes:
            letters = self._too_large(fresh, raws, sizes)
            kept = [i for i, n in enumerate(sizes) if n <= self.max_message_bytes]
            fresh = (fresh.take(np.asarray(kept, dtype=np.int64)) if isinstance(fresh, Fetched)
                     else [fresh[i] for i in kept])
            raws, sizes = _messages(fresh)
        for start, end in _slices(sizes, PARSE_SLICE_BYTES):
            part, messages = fresh[start:end], _part_messages(fresh, raws, start, end)
            if parsed is None:
                parsed = parse_messages(messages, self._decoder())
            letters += self._fold(part, messages, parsed, wall)
            parsed = None
        # Every fresh offset is done with, including those of dead letters.
        self.folder.offset = max(self.folder.offset, last)
        self._wall, self._caught_up = wall, False
        return Step(dead_letters=letters, urgent=self._urgent())

    def _decoder(self) -> Any:
        profiles = self.folder.profiles
        return profiles.decoder() if isinstance(profiles, ProfileStore) else None

    @staticmethod
    def _fresh(records: Sequence[Any], done: int) -> Sequence[Any]:
        """The records after offset `done` (a partition's records come in offset order, so
        they are a tail of the batch)."""
        if not len(records) or records[0].offset > done:
            return records
        if isinstance(records, Fetched):
            return records[int(np.searchsorted(records.offsets, done, side="right")):]
        return records[bisect.bisect_right(list(map(_OFFSET, records)), done):]

    def _too_large(self, records: Sequence[Any], raws: Sequence[bytes],
                   sizes: list[int]) -> list[DeadLetter]:
        letters = [DeadLetter(
            record, f"message too large: {size} bytes, more than the {self.max_message_bytes} "
            f"of DRIFT_MONITOR_MAX_MESSAGE_BYTES (not parsed; its first {TOO_LARGE_KEPT_BYTES} "
            f"bytes here)", raw[:TOO_LARGE_KEPT_BYTES], None, size=size)
            for record, raw, size in zip(records, raws, sizes, strict=True)
            if size > self.max_message_bytes]
        self.session["records_too_large"] += len(letters)
        self.session["invalid_records"] += len(letters)
        return letters

    def _fold(self, records: Sequence[Any], raws: Sequence[bytes], batch: ParsedBatch,
              wall: float) -> list[DeadLetter]:
        late_before = sum(self.folder.counts.late.values())
        offsets = (records.offsets.tolist() if isinstance(records, Fetched)
                   else list(map(_OFFSET, records)))
        refused = self.folder.fold(batch, offsets, wall)
        self.session["records_processed"] += batch.valid_count - len(refused)
        self.session["invalid_records"] += len(batch.invalid) + len(refused)
        self.session["late_records"] += sum(self.folder.counts.late.values()) - late_before
        letters = [DeadLetter(records[bad.index], bad.reason, bad.raw, bad.model)
                   for bad in batch.invalid]
        letters += [DeadLetter(records[bad.index], bad.reason, raws[bad.index], bad.model)
                    for bad in refused]
        return letters

    def tick(self, wall: float, caught_up: bool) -> Step:
        self.folder.advance(wall, caught_up=caught_up)
        self._wall, self._caught_up = wall, caught_up
        return Step(urgent=self._urgent())

    def _urgent(self) -> bool:
        """Something closed here, or a watermark crossed a window boundary."""
        return (bool(self.folder.take_partials())
                or self._marks(self._progress()) != self._sent_marks)

    def _marks(self, progress_by_partition: dict[int, Progress]) -> dict[Any, int]:
        size = self.folder.config.window_seconds
        out: dict[Any, int] = {}
        for q, progress in progress_by_partition.items():
            out[q] = _boundary(progress.default, size)
            for key, mark in progress.models.items():
                out[key] = _boundary(mark, size)
        return out

    def _progress(self) -> dict[int, Progress]:
        if self.sources is not None:
            self.folder.sources = self.sources()
        return self.folder.progress(self._wall, caught_up=self._caught_up, route=self.route,
                                    partitions=self.partials_partitions)

    # -- the outbox -----------------------------------------------------------------------------
    # Progress goes out as it was at the last checkpoint: what stage two learns is never ahead
    # of what a restart of this partition would know.
    def has_outbox(self) -> bool:
        if self.folder.take_partials():
            return True
        saved = self._saved
        return saved is not None and (
            self._marks(saved) != self._sent_marks or _counts(saved) != self._sent_counts
            or time.monotonic() - self._sent_at >= KEEPALIVE_SECONDS)

    def outbox(self) -> list[Outgoing]:
        """Partials, then every partials partition's progress (after the partials it covers)."""
        messages: list[tuple[int, Message]] = [(self.route(p.model), p)
                                               for p in self.folder.take_partials()]
        messages += list((self._saved or {}).items())
        return [Outgoing(q, _key(m), encode_message(m)) for q, m in messages]

    def delivered(self) -> None:
        self.folder.sent()
        if self._saved is not None:
            self._sent_marks = self._marks(self._saved)
            self._sent_counts = _counts(self._saved)
        self._sent_at = time.monotonic()

    # -- counters -------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return dict(self.session)

    def gauges(self) -> dict[str, int]:
        return {"open_windows": sum(len(h.windows) for h in self.folder.models.values()),
                "models_held": len(self.folder.models)}

    def reset_stats(self) -> None:
        self.session = _zero()

    # -- checkpoints ----------------------------------------------------------------------------
    def take_dirty(self) -> set[ModelKey]:
        return self.folder.take_dirty()

    def header_state(self) -> dict[str, Any]:
        self._saved = self._progress()
        return self.folder.header_state()

    def model_state(self, key: ModelKey) -> dict[str, Any] | None:
        return self.folder.model_state(key)


def _zero() -> dict[str, int]:
    return {"records_processed": 0, "invalid_records": 0, "late_records": 0,
            "records_too_large": 0}


def _messages(records: Sequence[Any]) -> tuple[Sequence[bytes], list[int]]:
    """The messages of `records` and their sizes (a `Fetched`'s read in place)."""
    if isinstance(records, Fetched):
        return records.messages, records.sizes()
    raws = list(map(_VALUE, records))
    if set(map(type, raws)) != {bytes}:
        raws = [_raw(v) for v in raws]
    return raws, list(map(len, raws))


def _part_messages(records: Sequence[Any], raws: Sequence[bytes], start: int,
                   end: int) -> Sequence[bytes]:
    """The messages of records[start:end] (a `Fetched`'s read in place)."""
    return records[start:end].messages if isinstance(records, Fetched) else raws[start:end]


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else b"" if value is None else bytes(value)


def _slices(sizes: list[int], limit: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive runs of items whose `sizes` add up to at most `limit` (at
    least one item each).

    >>> _slices([4] * 5, 8)
    [(0, 2), (2, 4), (4, 5)]
    >>> _slices([3, 20, 1], 8), _slices([], 8)
    ([(0, 1), (1, 2), (2, 3)], [])
    """
    if not sizes:
        return []
    ends = np.cumsum(sizes)
    out: list[tuple[int, int]] = []
    start = 0
    while start < len(sizes):
        before = int(ends[start - 1]) if start else 0
        end = max(int(np.searchsorted(ends, before + limit, side="right")), start + 1)
        out.append((start, end))
        start = end
    return out


def _counts(progress_by_partition: dict[int, Progress]) -> Any:
    return [(p.late, p.invalid, p.unprofiled) for _, p in sorted(progress_by_partition.items())]


def _boundary(mark: float, size: float) -> int:
    if mark == math.inf:
        return 2**62
    return math.floor(mark / size) if math.isfinite(mark) else -(2**62)


def _key(message: Message) -> bytes:
    model = getattr(message, "model", None)
    return model.encode() if model is not None else b""
