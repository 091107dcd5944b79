"""A record whose header key is not UTF-8: the broker takes it (Kafka reads header keys
leniently), and aiokafka's own reading raises UnicodeDecodeError out of `getmany`. Found by an
adversarial review: read in place the record was folded (headers are not read), but a gzip batch
in the same fetch response made aiokafka read the whole response, and the worker stopped at
every start (a poison pill). Compressed batches are now decompressed and read in place too: the
worker folds both and reports the window as `replay` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record._crc32c import crc as crc32c
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from support.kafka import BOOTSTRAP, Setup, history, replayed, wait_for_reports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def with_bad_header_key(values: list[bytes]) -> bytes:
    """An uncompressed record batch of `values`, each with a header key b"h\\xff"."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 30)
    for i, value in enumerate(values):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=None, value=value,
                       headers=[("hX", b"v")])
    out = bytearray(bytes(builder.build()).replace(b"hX", b"h\xff"))
    out[17:21] = crc32c(bytes(out[21:])).to_bytes(4, "big")
    return bytes(out)


async def produce(topic: str, gzipped: list[bytes], bad: list[bytes]) -> None:
    """`gzipped` in one gzip batch, then `bad` in one batch of bad header keys (partition 0)."""
    if not gzipped:
        return await bad_batch(topic, bad)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, compression_type="gzip",
                                linger_ms=500)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, v, partition=0) for v in gzipped])
    finally:
        await producer.stop()
    await bad_batch(topic, bad)


async def bad_batch(topic: str, bad: list[bytes]) -> None:
    client = AIOKafkaClient(bootstrap_servers=BOOTSTRAP)
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        leader = client.cluster.leader_for_partition(TopicPartition(topic, 0))
        response = await client.send(leader, ProduceRequest(
            transactional_id=None, required_acks=-1, timeout=10_000,
            topics=[(topic, [(0, with_bad_header_key(bad))])]))
        assert response.topics[0][1][0][1] == 0  # the broker took it
    finally:
        await client.close()


@pytest.mark.parametrize("gzipped", [0, 150], ids=["alone", "after a gzip batch"])
def test_a_record_with_a_header_key_not_utf8(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path],
        gzipped: int) -> None:
    setup = make_setup(1)
    make_profile(setup.model, setup.profiles)
    messages = history(setup.model, windows=2, per_window=100, seed=141)
    env = {"DRIFT_MONITOR_WINDOW_SECONDS": "10"}
    expected = replayed(setup.profiles, messages, setup.env(**env))
    asyncio.run(produce(setup.predictions, messages[:gzipped], messages[gzipped:]))
    worker = setup.worker("w0", **env)
    reports = wait_for_reports(setup, len(expected), timeout=40)
    assert reports == expected, worker.log()[-3000:]
    assert json.loads(json.dumps(reports))  # plain JSON, as the reports topic holds them
