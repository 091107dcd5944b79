"""Adversarial check of the settles run beside the fold (`StageRunner._settle_later`) against a
broker that fails: every partition of a fetch writes at once, so a failing broker fails them all
in the same round. That is one failed attempt of the worker's Kafka writes, as it was when they
were made one after the other (the first failure held the rest back): the next try must come
after the backoff's first wait, not after one doubling per partition (12 partitions: straight to
the 10 s ceiling, so a blip of a broker costs every partition 10 s of standstill)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from monitor.service.runner import StageRunner
from monitor.service.slots import Slot, Step

PARTITIONS = 12


class Processor:
    offset = -1

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.outbox: list[Any] = []

    def process(self, records: Any, wall: float) -> Step:
        self.outbox.append(list(records))
        return Step()

    def has_outbox(self) -> bool:
        return bool(self.outbox)


def test_a_round_of_writes_failing_on_every_partition_is_one_failed_attempt() -> None:
    processors = {p: Processor(p) for p in range(PARTITIONS)}
    attempts: list[int] = []

    async def deliver(processor: Processor) -> None:
        attempts.append(processor.partition)
        await asyncio.sleep(0.01)  # the broker takes a moment to fail them
        raise KafkaTimeoutError("the broker is down")

    async def fold() -> float:
        with ThreadPoolExecutor(1) as cpu:
            runner = StageRunner("stage one", "t", {"group_id": "g"}, None,  # type: ignore
                                 lambda p, loaded: processors[p], deliver,  # type: ignore
                                 batch_size=10, checkpoint_interval=3600.0, executor=cpu)
            for p, processor in processors.items():
                runner.slots[p] = Slot(processor, 1)  # type: ignore[arg-type]
            began = time.monotonic()
            await runner._fold(runner._prepare({TopicPartition("t", p): list(range(10))
                                                for p in range(PARTITIONS)}), 1)
            assert all(p.outbox for p in processors.values()), "what failed is still owed"
            return runner.backoff.retry_at - began

    retry_after = asyncio.run(fold())
    assert sorted(attempts) == list(range(PARTITIONS))  # all went at once
    first = 0.5
    assert retry_after <= first + 0.5, f"next try in {retry_after:.1f} s, not {first} s"
