"""Per-partition checkpoints of the streaming engine in a compacted Kafka topic of our own.

This is what makes window counts exactly-once without Faust's `exactly_once` (DESIGN.md):

* The state topic has as many partitions as the predictions topic, `cleanup.policy=compact`;
  predictions partition p checkpoints to state partition p under key `p`, so the last record of
  state partition p is always p's latest checkpoint (compaction never removes the newest record).
* A checkpoint is `{"partition": p, "offset": o, "engine": Engine.to_state()}`: the engine's open
  windows, carried windows, watermark and alert episodes *after* folding in every record of p up
  to and including offset o. It is written with acks=all and awaited before the worker
  acknowledges (and so before Faust commits) any of those records.
* A worker taking over p restores the engine from the checkpoint and skips every record with
  offset <= o, however often Kafka redelivers it (kill, rebalance, uncommitted offsets).

Values are JSON (the stdlib's, which round-trips NaN and infinities), zlib-compressed with a
`Z` prefix when larger than `COMPRESS_ABOVE` bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from monitor.errors import ServiceError
from monitor.service.kafka_config import KafkaConfig

log = logging.getLogger(__name__)

COMPRESS_ABOVE = 16 * 1024
MAX_CHECKPOINT_BYTES = 16 * 1024 * 1024  # topic max.message.bytes and producer request size
FORMAT = 1


def encode(partition: int, offset: int, engine_state: dict[str, Any]) -> bytes:
    """The checkpoint message value; NaN and infinities survive the round trip.

    >>> data = decode(encode(3, 41, {"x": float("inf")}))
    >>> data["partition"], data["offset"], data["engine"]
    (3, 41, {'x': inf})
    >>> encode(0, 1, {"big": "a" * 20_000})[:1]
    b'Z'
    """
    raw = json.dumps({"format": FORMAT, "partition": partition, "offset": offset,
                      "engine": engine_state}, separators=(",", ":")).encode()
    if len(raw) > COMPRESS_ABOVE:
        return b"Z" + zlib.compress(raw, 1)
    return raw


def decode(value: bytes) -> dict[str, Any]:
    if value[:1] == b"Z":
        value = zlib.decompress(value[1:])
    data = json.loads(value)
    if data.get("format") != FORMAT:
        raise ValueError(f"checkpoint format {data.get('format')!r}, expected {FORMAT}")
    return data


def partition_count(admin: KafkaAdminClient, topic: str) -> int | None:
    described = admin.describe_topics([topic])
    for entry in described:
        name = entry.get("name", entry.get("topic"))  # kafka-python 3 says "name", 2 "topic"
        if name == topic and not entry.get("error_code") and entry.get("partitions"):
            return len(entry["partitions"])
    return None


def ensure_topics(kafka: KafkaConfig, predictions: str, state: str,
                  others: Sequence[str] = (), timeout_s: float = 30.0) -> int:
    """Check the predictions topic, create the compacted state topic (and `others`) when missing,
    with the predictions topic's partition count; return that count. A broker that cannot be
    reached, or refuses our credentials or TLS, is one `ServiceError` line within seconds
    (kafka-python alone would retry for 30 s and say only "Unable to bootstrap")."""
    kafka.check()
    try:
        admin = KafkaAdminClient(**kafka.kafka_python(), client_id="drift-monitor-admin",
                                 request_timeout_ms=int(timeout_s * 1000))
    except KafkaError as exc:
        raise ServiceError(f"cannot reach Kafka ({','.join(kafka.brokers)}: {exc})") from None
    try:
        existing = set(admin.list_topics())
        if predictions not in existing:
            raise ServiceError(f"predictions topic not found ({predictions})")
        partitions = partition_count(admin, predictions)
        if not partitions:
            raise ServiceError(f"cannot describe the predictions topic ({predictions})")
        wanted = []
        if state not in existing:
            wanted.append(NewTopic(state, partitions, 1, topic_configs={
                "cleanup.policy": "compact",
                "max.message.bytes": str(MAX_CHECKPOINT_BYTES),
                "min.cleanable.dirty.ratio": "0.1",
                "segment.ms": str(3_600_000)}))
        wanted += [NewTopic(t, partitions, 1) for t in others if t not in existing]
        for topic in wanted:
            try:
                admin.create_topics([topic])
                log.info("created topic %s (%d partitions)", topic.name, partitions)
            except TopicAlreadyExistsError:
                pass
        if state in existing:
            have = partition_count(admin, state)
            if have is not None and have < partitions:
                raise ServiceError(f"state topic {state} has {have} partitions, fewer than the "
                                   f"{partitions} of {predictions}")
        return partitions
    except KafkaError as exc:
        raise ServiceError(f"Kafka admin request failed ({exc})") from None
    finally:
        admin.close()


class KafkaIO:
    """The worker's own producer (alerts, dead letters, checkpoints; acks=all, idempotent) and
    the reader of checkpoints. Faust's producer is not used for these: we need to await each
    delivery ourselves before acknowledging the input."""

    def __init__(self, kafka: KafkaConfig, state_topic: str, client_id: str) -> None:
        self.kafka_config = kafka
        self.state_topic = state_topic
        self.client_id = client_id
        self.producer: AIOKafkaProducer | None = None
        self.reader: AIOKafkaConsumer | None = None
        self._start_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._start_lock:
            if self.producer is not None:
                return
            producer = AIOKafkaProducer(
                **self.kafka_config.aiokafka(), client_id=f"{self.client_id}-out",
                acks="all", enable_idempotence=True, linger_ms=5,
                max_request_size=MAX_CHECKPOINT_BYTES)
            reader = AIOKafkaConsumer(
                **self.kafka_config.aiokafka(), client_id=f"{self.client_id}-state",
                group_id=None, enable_auto_commit=False,
                max_partition_fetch_bytes=MAX_CHECKPOINT_BYTES,
                fetch_max_bytes=MAX_CHECKPOINT_BYTES)
            try:
                await producer.start()
                await reader.start()
            except KafkaConnectionError:
                await producer.stop()
                await reader.stop()
                await self.kafka_config.check_connection()  # raises with the reason, if any
                raise
            self.producer, self.reader = producer, reader

    async def stop(self) -> None:
        producer, reader, self.producer, self.reader = self.producer, self.reader, None, None
        if producer is not None:
            await producer.stop()  # flushes what is pending
        if reader is not None:
            await reader.stop()

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None,
                   partition: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        """Queue a message; the returned future resolves when the broker has it."""
        if self.producer is None:
            await self.start()
        assert self.producer is not None
        return await self.producer.send(topic, value, key=key, partition=partition,
                                        headers=headers)

    async def save(self, partition: int, offset: int, engine_state: dict[str, Any]) -> None:
        """Write p's checkpoint and wait until every in-sync replica has it."""
        future = await self.send(self.state_topic, encode(partition, offset, engine_state),
                                 key=str(partition).encode(), partition=partition)
        await future

    async def load(self, partition: int, timeout_s: float = 30.0) -> dict[str, Any] | None:
        """The latest checkpoint of predictions partition p, or None when there is none."""
        if self.reader is None:
            await self.start()
        assert self.reader is not None
        tp = TopicPartition(self.state_topic, partition)
        async with self._read_lock:
            reader = self.reader
            reader.assign([tp])
            end = (await reader.end_offsets([tp]))[tp]
            if end == 0:
                return None
            reader.seek(tp, end - 1)
            deadline = asyncio.get_running_loop().time() + timeout_s
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise ServiceError(f"timed out reading checkpoint {self.state_topic}[{partition}]")
                batches = await reader.getmany(tp, timeout_ms=int(min(left, 1.0) * 1000))
                records = batches.get(tp, [])
                if records:
                    value = records[-1].value
                    if value is None:
                        return None  # a tombstone: the partition's state was reset on purpose
                    data = decode(value)
                    if data.get("partition") != partition:
                        raise ServiceError(f"checkpoint in {self.state_topic}[{partition}] is for "
                                           f"partition {data.get('partition')}")
                    return data
