"""Adversarial check of stage one's in-place fetch reading: one uncompressed record batch of
about 11 MB, bigger than the worker's max_partition_fetch_bytes (8 MB; the broker hands over a
partition's first batch whole whatever its size), read in place and parsed in slices. Every
window report must equal `replay` of the same records.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer
from support.kafka import BOOTSTRAP, Setup, history, replayed, wait_for_reports

from monitor.service.raw_fetch import Fetched, read_raw

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BIG = 20 << 20


def padded(messages: list[bytes]) -> list[bytes]:
    out = []
    for i, raw in enumerate(messages):
        record = json.loads(raw)
        record["pad"] = f"{i:08d}" * 110  # about 900 bytes more
        out.append(json.dumps(record).encode())
    return out


def largest_fetched(topic: str) -> int:
    """Records of the largest `Fetched` a consumer with the worker's fetch sizes is handed."""
    async def read() -> int:
        assert read_raw(topic)
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    max_partition_fetch_bytes=8 << 20, fetch_max_bytes=32 << 20)
        await consumer.start()
        try:
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=5000), 30)
            return max((len(r) for records in batches.values() for r in records
                        if isinstance(r, Fetched)), default=0)
        finally:
            await consumer.stop()
    return asyncio.run(read())


def test_a_record_batch_bigger_than_the_fetch_size_is_read_in_place(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    setup = make_setup(1, create=False)
    setup.create_predictions(**{"max.message.bytes": str(BIG)})
    make_profile(setup.model, setup.profiles)
    messages = padded(history(setup.model, windows=4, per_window=3000, seed=131, drift_from=2))
    env = {"DRIFT_MONITOR_WINDOW_SECONDS": "10", "DRIFT_MONITOR_IDLE_SECONDS": "3"}
    expected = replayed(setup.profiles, messages, setup.env(**env))
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=10_000,
                             batch_size=BIG, max_request_size=BIG)
    try:
        for raw in messages:
            producer.send(setup.predictions, raw, partition=0)
        producer.flush(timeout=60)
    finally:
        producer.close()
    assert largest_fetched(setup.predictions) * 900 > 8 << 20  # one batch over 8 MB
    setup.worker("w0", **env)
    assert wait_for_reports(setup, len(expected), timeout=120) == expected
