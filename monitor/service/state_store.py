"""Checkpoints of a stage's per-partition state, one compacted Kafka record per model.

Input partition p of a stage checkpoints to partition p of its state topic:
* one record per model, key `[p, "m", model, version]` (a null value: the model was dropped);
  only the models that changed are written, so a checkpoint's cost does not grow with idle ones;
* then a header, key `[p, "h"]`: the input offset every record up to which is folded in, the
  stream it belongs to (`Binding`), the consumer-group generation of the writer, and
  `scan_from`: the state-topic offset from which every live model record can be found.
A model record carries the input offset it covers too: a crash between the models and the header
leaves models newer than the header, and their records are skipped up to their own offset.
`scan_from` keeps moving because each save also rewrites a few of the longest-unwritten models.

Loading reads back from the end to the newest header of the highest generation (a writer that
lost the partition — a zombie — writes with an older generation), then the records from its
`scan_from`. A header of another stream is ignored with a warning that names both. The
partitions a rebalance assigns are loaded at once, each by a reader of its own (a pool of at
most LOAD_READERS consumers, made when first needed and kept).
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from monitor.errors import ServiceError
from monitor.ingest.records import ModelKey
from monitor.service.outlet import Outlet

log = logging.getLogger(__name__)

FORMAT = 2
COMPRESS_ABOVE = 16 * 1024
REFRESH_PER_SAVE = 4  # unchanged models rewritten per save, oldest first
FIRST_LOOK_BACK = 64
LOAD_READERS = 4  # checkpoint loads at once, one reader each


@dataclass(frozen=True)
class Binding:
    """The stream a checkpoint belongs to."""

    topic: str
    topic_id: str
    group: str
    partitions: int

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "topic_id": self.topic_id, "group": self.group,
                "partitions": self.partitions}

    def mismatch(self, saved: dict[str, Any]) -> str | None:
        """Why a checkpoint saved under `saved` is not this stream's (None: it is).

        >>> b = Binding("predictions", "id-2", "g", 4)
        >>> b.mismatch({"topic": "predictions", "topic_id": "id-1", "group": "g", "partitions": 4})
        "topic id id-1 (saved) is not id-2 (now): the topic 'predictions' was deleted and created again"
        """
        if saved.get("topic") != self.topic:
            return f"topic {saved.get('topic')!r} (saved) is not {self.topic!r} (now)"
        if saved.get("topic_id") and self.topic_id and saved.get("topic_id") != self.topic_id:
            return (f"topic id {saved.get('topic_id')} (saved) is not {self.topic_id} (now): "
                    f"the topic {self.topic!r} was deleted and created again")
        if saved.get("group") != self.group:
            return f"group {saved.get('group')!r} (saved) is not {self.group!r} (now)"
        return None


@dataclass
class Loaded:
    offset: int  # input offset covered by the header
    header: dict[str, Any]  # the stage's own header state
    models: dict[ModelKey, dict[str, Any]] = field(default_factory=dict)
    generation: int = -1
    size: int = 0  # bytes read


class StateReadTimeout(ServiceError):
    """The state topic did not answer in time (a broker restarting): loading is tried again."""


def encode(value: dict[str, Any]) -> bytes:
    """A record value; NaN and infinities survive the round trip.

    >>> decode(encode({"format": FORMAT, "x": float("inf")}))["x"]
    inf
    >>> encode({"big": "a" * 20_000})[:1]
    b'Z'
    """
    raw = json.dumps(value, separators=(",", ":")).encode()
    return b"Z" + zlib.compress(raw, 1) if len(raw) > COMPRESS_ABOVE else raw


def decode(value: bytes) -> dict[str, Any]:
    if value[:1] == b"Z":
        value = zlib.decompress(value[1:])
    data = json.loads(value)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ServiceError(f"checkpoint record format {got!r}; this drift-monitor reads "
                           f"format {FORMAT}")
    return data


def header_key(partition: int) -> bytes:
    return json.dumps([partition, "h"]).encode()


def model_key(partition: int, key: ModelKey) -> bytes:
    return json.dumps([partition, "m", key[0], key[1]]).encode()


class StateStore:
    """Saves and loads the checkpoints of one stage (one state topic)."""

    def __init__(self, outlet: Outlet, new_reader: Callable[[], Awaitable[AIOKafkaConsumer]],
                 topic: str, binding: Binding, executor: Executor | None = None,
                 grow: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.executor = executor  # where the records are encoded (None: asyncio's default)
        # Called before a partition is loaded: makes sure the state topic has that partition
        # (partitions added to the predictions topic while the worker runs).
        self.grow = grow
        self.outlet = outlet  # the producer (made again when it breaks)
        # Makes a started consumer with no group, for loads: it reads known ranges of the state
        # topic, so it should not wait at the broker for more (fetch_max_wait_ms: a fetch
        # waiting there holds up the next request on its connection, a seek or an offsets one).
        self.new_reader = new_reader
        self.readers: list[AIOKafkaConsumer] = []  # every reader made (idle or loading)
        self._idle: list[AIOKafkaConsumer] = []
        self._loads = asyncio.Semaphore(LOAD_READERS)
        self.topic = topic
        self.binding = binding
        self.written: dict[int, dict[ModelKey, int]] = {}  # partition -> model -> state offset

    async def open(self) -> None:
        """Make the first reader now (at start, alongside the other clients), not at the first
        load."""
        if not self.readers:
            self._idle.append(await self._make_reader())

    async def _make_reader(self) -> AIOKafkaConsumer:
        reader = await self.new_reader()
        self.readers.append(reader)
        return reader

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[AIOKafkaConsumer]:
        """An idle reader, or a new one (at most LOAD_READERS loads at once); paused when given
        back, so that it fetches nothing while idle."""
        async with self._loads:
            reader = self._idle.pop() if self._idle else await self._make_reader()
            try:
                yield reader
            finally:
                reader.pause(*reader.assignment())
                self._idle.append(reader)

    async def save(self, partition: int, offset: int, header: dict[str, Any],
                   models: dict[ModelKey, dict[str, Any] | None], generation: int,
                   refresh: Callable[[ModelKey], dict[str, Any] | None]) -> int:
        """Write the changed `models`, a few unchanged ones, then the header; wait until the
        broker has all of them. Returns the bytes written."""
        written = self.written.setdefault(partition, {})
        stale = sorted((k for k in written if k not in models), key=written.__getitem__)
        batch = dict(models)
        for key in stale[:REFRESH_PER_SAVE]:
            batch[key] = refresh(key)
        envelope = {"format": FORMAT, "generation": generation}
        values = await asyncio.get_running_loop().run_in_executor(self.executor, lambda: [
            (key, None if state is None else encode({**envelope, "offset": offset,
                                                    "state": state}))
            for key, state in batch.items()])
        producer = self.outlet.producer
        sends = [(key, await producer.send(self.topic, value, partition=partition,
                                            key=model_key(partition, key)))
                 for key, value in values]
        size = sum(len(v) for _, v in values if v is not None)
        for key, future in sends:
            metadata = await future
            if batch[key] is None:
                written.pop(key, None)
            else:
                written[key] = metadata.offset
        scan_from = min(written.values(), default=None)
        value = encode({**envelope, "offset": offset, "binding": self.binding.to_dict(),
                        "scan_from": scan_from, "state": header})
        metadata = await (await self.outlet.producer.send(self.topic, value, partition=partition,
                                                   key=header_key(partition)))
        if scan_from is None:
            written.clear()
        del metadata
        return size + len(value)

    async def load(self, partition: int, timeout_s: float = 60.0) -> Loaded | None:
        """The saved state of input partition `partition`, or None (none, or another stream's)."""
        tp = TopicPartition(self.topic, partition)
        if self.grow is not None:
            await self.grow(partition)
        async with self._reader() as reader:
            reader.assign([tp])
            begin = (await reader.beginning_offsets([tp]))[tp]
            end = (await reader.end_offsets([tp]))[tp]
            if end <= begin:
                return None
            deadline = asyncio.get_running_loop().time() + timeout_s
            found = await self._newest_header(reader, tp, begin, end, deadline)
            if found is None:
                return None
            header_offset, header = found
            problem = self.binding.mismatch(header.get("binding", {}))
            if problem is not None:
                log.warning("%s[%d]: ignoring a checkpoint of another stream: %s", self.topic,
                            partition, problem)
                return None
            scan_from = header.get("scan_from")
            start = header_offset if scan_from is None else min(int(scan_from), header_offset)
            loaded = Loaded(int(header["offset"]), header["state"],
                            generation=int(header["generation"]))
            written: dict[ModelKey, int] = {}
            async for offset, key, value in self._records(reader, tp, start, end, deadline):
                if key[1] != "m":
                    continue
                model = (str(key[2]), str(key[3]))
                if value is None:
                    loaded.models.pop(model, None)
                    written.pop(model, None)
                    continue
                data = decode(value)
                if offset > header_offset and data["generation"] < loaded.generation:
                    continue  # a zombie's write after the valid header
                loaded.size += len(value)
                loaded.models[model] = {**data["state"], "offset": int(data["offset"])}
                written[model] = offset
            self.written[partition] = written
            return loaded

    async def _newest_header(self, reader: AIOKafkaConsumer, tp: TopicPartition, begin: int,
                             end: int, deadline: float) -> tuple[int, dict[str, Any]] | None:
        back = FIRST_LOOK_BACK
        while True:
            start = max(begin, end - back)
            best: tuple[int, dict[str, Any]] | None = None
            async for offset, key, value in self._records(reader, tp, start, end, deadline):
                if key[1] == "h" and value is not None:
                    data = decode(value)
                    if best is None or data["generation"] >= best[1]["generation"]:
                        best = (offset, data)
            if best is not None or start == begin:
                return best
            back *= 4

    @staticmethod
    async def _records(reader: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int,
                       deadline: float):
        reader.seek(tp, start)
        position = start
        while position < end:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise StateReadTimeout(f"timed out reading checkpoints {tp.topic}[{tp.partition}]")
            batches = await reader.getmany(tp, timeout_ms=int(min(left, 1.0) * 1000))
            for record in batches.get(tp, []):
                position = record.offset + 1
                if record.offset >= end:
                    return
                yield record.offset, json.loads(record.key), record.value
            if not batches.get(tp) and await reader.position(tp) >= end:
                return
