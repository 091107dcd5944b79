"""Fetches read in place (`raw_fetch`, `drift_native.kafka_records`) against aiokafka's own
reading of the same record batches, and stage one fed either way."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import drift_native
import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.record._crc32c import crc as crc32c
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from support.kafka import BOOTSTRAP
from test_processors import CONFIG, T0, fold_processor, kafka_records, minute

from monitor.profile.model import Profile
from monitor.profile.store import ProfileStore
from monitor.service.raw_fetch import (
    NULL,
    Fetched,
    in_batches,
    read_raw,
    read_records,
    records_of,
)
from monitor.service.stage_one import FoldProcessor
from monitor.stream.folder import PartitionFolder

CODECS = [0, 1]  # none, gzip (the one every build of aiokafka has)


def batch(base: int, records: list[tuple[bytes | None, bytes | None, list[Any]]],
          compression: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=compression, is_transactional=0, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i, (key, value, headers) in enumerate(records):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=key, value=value,
                       headers=headers)
    out = bytearray(builder.build())
    out[:8] = base.to_bytes(8, "big")
    return bytes(out)


def reference(buffer: bytes, start: int) -> tuple[list[tuple[int, Any, Any]], int]:
    """(offset, key, value) of the records at or after `start` and the next fetch offset, as
    aiokafka's consumer reads them."""
    records = MemoryRecords(buffer)
    out, next_offset = [], start
    while records.has_next():
        b = records.next_batch()
        for r in b:
            if r.offset >= start:
                out.append((r.offset, r.key, r.value))
        next_offset = max(next_offset, b.next_offset)
    return out, next_offset


def read(buffer: bytes, start: int, check_crcs: bool = True) -> Any:
    found = drift_native.kafka_records(buffer, start, check_crcs)
    return None if found is None else read_from(buffer, found)


def read_from(buffer: bytes, found: Any) -> Any:
    values, keys, offsets, next_offset = found
    spans = [np.frombuffer(x, np.uint64).reshape(-1, 2).tolist() for x in (keys, values)]
    records = [(o, *(None if a == NULL else buffer[a:b] for a, b in (k, v)))
               for o, k, v in zip(np.frombuffer(offsets, np.int64).tolist(), *spans,
                                  strict=True)]
    return records, next_offset


payload = st.one_of(st.none(), st.binary(max_size=40), st.just(b"x" * 300))
record = st.tuples(payload, payload, st.lists(st.tuples(st.text(max_size=5),
                                                        st.one_of(st.none(),
                                                                  st.binary(max_size=8))),
                                              max_size=2))
batches = st.lists(st.tuples(st.lists(record, max_size=6), st.sampled_from(CODECS),
                             st.integers(0, 3)), min_size=1, max_size=4)


def response(spec: list[Any], cut: int | None) -> bytes:
    """A fetch response of the batches `spec` describes ((records, codec, offset gap before)),
    `cut` (modulo its length + 1) bytes taken off its end when not None."""
    buffer, base = b"", 0
    for records, codec, gap in spec:
        base += gap
        if records:
            buffer += batch(base, records, codec)
            base += len(records)
    return buffer if cut is None else buffer[:len(buffer) - cut % (len(buffer) + 1)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, st.integers(0, 30), st.integers(0, 10**6), st.data())
def test_kafka_records_reads_every_buffer_as_aiokafka_does(
        spec: list[Any], start: int, cut: int, data: st.DataObject) -> None:
    buffer = response(spec, cut if data.draw(st.booleans()) else None)
    compressed = any(codec and records for records, codec, _ in spec)
    ours = read(buffer, start)
    want = reference(buffer, start)
    if ours is None:
        assert compressed  # only what it cannot read is left to aiokafka
    else:
        assert ours == want


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, st.integers(0, 30), st.integers(0, 10**6), st.booleans())
def test_a_fetch_response_with_compressed_batches_reads_as_aiokafka_reads_it(
        spec: list[Any], start: int, cut: int, shorten: bool) -> None:
    """Compressed batches decompressed and read in place: a response of plain and gzip batches,
    cut anywhere, reads as aiokafka reads it."""
    buffer = response(spec, cut if shorten else None)
    read = read_records(buffer, start, True)
    assert read is not None
    plain, _ = read
    assert read_from(plain, read[1]) == reference(buffer, start)


@settings(max_examples=200, deadline=None)
@given(st.lists(record, min_size=1, max_size=5), st.integers(61, 400), st.integers(0, 7))
def test_a_corrupt_batch_is_left_to_aiokafka_unless_crcs_are_not_checked(
        records: list[Any], at: int, bit: int) -> None:
    good = batch(5, records)
    bad = bytearray(good)
    bad[at % len(bad)] ^= 1 << bit
    if at % len(bad) >= 21:  # under the CRC: checked, the change is seen
        assert read(bytes(bad), 0) is None
    assert read(good, 0) == reference(good, 0)


def test_control_batches_hold_no_records_and_move_the_offset_on() -> None:
    marker = bytearray(batch(7, [(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", [])]))
    marker[22] |= 0x20 | 0x10  # control, transactional (attributes, low byte)
    marker[17:21] = crc32c(bytes(marker[21:])).to_bytes(4, "big")  # as a broker writes it
    after = batch(8, [(None, b"next", [])])
    assert read(bytes(marker) + after, 0) == ([(8, None, b"next")], 9)
    assert read(bytes(marker), 0) == ([], 8)


def test_fetched_is_a_sequence_of_records() -> None:
    buffer = batch(3, [(b"k", b"one", []), (None, None, [("h", b"v")]), (b"", b"three", [])])
    values, keys, offsets, _ = drift_native.kafka_records(buffer, 0, True)
    fetched = Fetched("t", 2, buffer, np.where(
        (spans := np.frombuffer(values, np.uint64).reshape(-1, 2)) == NULL, np.uint64(0), spans),
        np.frombuffer(keys, np.uint64).reshape(-1, 2), np.frombuffer(offsets, np.int64))
    assert [tuple(r) for r in fetched] == [("t", 2, 3, b"k", b"one"), ("t", 2, 4, None, b""),
                                           ("t", 2, 5, b"", b"three")]
    assert [r.offset for r in fetched[1:]] == [4, 5]
    assert list(fetched.take(np.array([0, 2])).messages) == [b"one", b"three"]
    assert fetched.sizes() == [3, 0, 5]
    assert records_of([fetched]) is fetched
    assert records_of([fetched, fetched[1:]]) == [*fetched, *fetched[1:]]


def fetched_of(messages: list[bytes], first_offset: int = 0) -> Fetched:
    buffer = b""
    for i in range(0, len(messages), 50):  # batches of 50, as a producer would send them
        buffer += batch(first_offset + i, [(None, m, []) for m in messages[i:i + 50]])
    values, keys, offsets, _ = drift_native.kafka_records(buffer, 0, True)
    return Fetched("predictions", 0, buffer, np.frombuffer(values, np.uint64).reshape(-1, 2),
                   np.frombuffer(keys, np.uint64).reshape(-1, 2),
                   np.frombuffer(offsets, np.int64))


def test_a_fetched_batch_is_folded_in_batches_of_at_most_the_batch_size() -> None:
    """aiokafka counts a Fetched as one record of `max_records`: DRIFT_MONITOR_BATCH_SIZE still
    bounds what is folded at once (found by an adversarial review: a getmany of 7 handed over
    all 100 records of a fetch)."""
    fetched = fetched_of([b"{}"] * 100, 40)
    parts = [records_of(b) for b in in_batches([fetched], 7)]
    assert max(map(len, parts)) == 7
    assert [r.offset for part in parts for r in part] == list(range(40, 140))
    records = kafka_records([b"{}"] * 10)
    assert list(in_batches(records, 7)) == [records]  # aiokafka bounded those already


@pytest.mark.parametrize("store", [False, True], ids=["reference", "compiled decoder"])
def test_stage_one_folds_a_fetched_batch_as_the_same_consumer_records(
        profile: Profile, tmp_path: Path, store: bool) -> None:
    rng = np.random.default_rng(7)
    good = minute(rng, 0, 400) + minute(rng, 1, 400)
    tomorrow = orjson.dumps(dict(json.loads(good[0]), ts=T0 + 86_400))
    messages = [*good[:100], b"{oops", b"", tomorrow, b"x" * 2000, *good[100:]]

    def processor() -> FoldProcessor:
        if not store:
            return fold_processor(profile)
        profile.save(tmp_path / "churn-3.json")
        folder = PartitionFolder(0, ProfileStore(tmp_path), CONFIG)
        return FoldProcessor(0, folder, partials_partitions=2, route=lambda model: 1,
                             max_message_bytes=1000)

    steps = []
    for batch_of in (kafka_records, fetched_of):
        p = processor()
        if not store:
            p.max_message_bytes = 1000
        records = batch_of(messages, 10)
        first = p.process(records[:300], wall=T0 + 61)
        second = p.process(records[250:], wall=T0 + 121)  # 50 redelivered
        p.header_state()
        steps.append((p.offset, p.stats(), [(d.record.offset, d.record.key, d.reason, d.raw[:20])
                                            for d in first.dead_letters + second.dead_letters],
                      [m.value for m in p.outbox()]))
    assert steps[0] == steps[1]
    assert steps[0][0] == 10 + len(messages) - 1
    assert len(steps[0][2]) == 4


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_consumer_reads_the_same_records_in_place_as_kafka_python_reads_them(
        services: None) -> None:
    """Plain and gzip batches, keys, tombstones and headers on the real broker: a raw-read
    topic gives what an unpatched client (kafka-python) gives, record for record."""
    topic = f"it-{uuid.uuid4().hex[:10]}-raw"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    sent = 0
    for compression in (None, "gzip", None):
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type=compression,
                                 linger_ms=20)
        for i in range(300):
            tombstone = i % 97 == 0
            producer.send(topic, None if tombstone else b'{"n": %d}' % i,
                          key=b"k%d" % i if tombstone or i % 3 == 0 else None, partition=i % 2,
                          headers=[("h", b"v")] if i % 5 == 0 else [])
            sent += 1
        producer.flush()
        producer.close()

    def key(r: Any) -> tuple[Any, ...]:
        return (r.partition, r.offset, r.key, r.value or b"")

    plain = KafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
                          consumer_timeout_ms=5000, enable_auto_commit=False)
    want = sorted(key(r) for r in plain)
    plain.close()
    assert len(want) == sent

    async def consume() -> tuple[list[tuple[Any, ...]], int]:
        assert read_raw(topic)
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    max_partition_fetch_bytes=4096)  # many fetches per partition
        await consumer.start()
        got: list[tuple[Any, ...]] = []
        fetched = 0
        try:
            while len(got) < sent:
                batches = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                for records in batches.values():
                    fetched += sum(isinstance(r, Fetched) for r in records)
                    got += [key(r) for r in records_of(records)]
        finally:
            await consumer.stop()
        return got, fetched

    got, fetched = asyncio.run(consume())
    assert sorted(got) == want
    assert fetched > 0  # the plain batches were read in place
