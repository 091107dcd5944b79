"""Adversarial check of stage two's settles run beside each other (`StageRunner._settle_later`)
against a metrics store that is down: each partition's window points are written at once, so a
store that is down fails them all in one round. That is one failed attempt of the worker's
metrics writes, as it was when they were made one after the other: the next try must come after
the store backoff's first wait (1 s), not after one doubling per partition (straight to 10 s)."""

from __future__ import annotations

import asyncio
import socket
import time
from types import SimpleNamespace

from monitor.outputs.influx_sink import make_writer
from monitor.service.publish import STORE_BACKOFF_SECONDS, Publisher

PARTITIONS = 12


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


def test_points_of_every_partition_failing_together_are_one_failed_attempt() -> None:
    writer = make_writer(f"http://127.0.0.1:{closed_port()}")
    publisher = Publisher(None, writer, SimpleNamespace(metrics_buffer=1000))  # type: ignore

    async def settle_all() -> list[bool]:
        return await asyncio.gather(*(publisher.points([f"m,p={p} v=1 1"], waiting=1)
                                      for p in range(PARTITIONS)))

    began = time.monotonic()
    try:
        written = asyncio.run(settle_all())
    finally:
        writer.close()
    assert written == [False] * PARTITIONS and not publisher.store_up
    first = STORE_BACKOFF_SECONDS[0]
    retry_after = publisher.store.retry_at - began
    assert retry_after <= first + 1.0, f"next try in {retry_after:.1f} s, not {first:.0f} s"
