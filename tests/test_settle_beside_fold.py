"""What a batch asks of Kafka (its dead letters, checkpoint and outbox) is done beside the folding
of the fetch's other partitions, never beside the folding of its own partition, and a fetch's fold
ends only when all of it is done."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from monitor.service.runner import KAFKA_BACKOFF_SECONDS, StageRunner
from monitor.service.slots import Slot, Step

PARTITIONS = 3


class Processor:
    """Each batch puts something in the outbox; `delivering` while its delivery is awaited."""

    offset = -1

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.outbox: list[Any] = []
        self.delivering = False
        self.folded_while_delivering = 0

    def process(self, records: Any, wall: float) -> Step:
        self.folded_while_delivering += self.delivering
        self.outbox.append(list(records))
        return Step()

    def has_outbox(self) -> bool:
        return bool(self.outbox)


def runner_with(processors: dict[int, Processor], deliver: Any, cpu: ThreadPoolExecutor,
                batch_size: int = 10) -> StageRunner:
    runner = StageRunner("stage one", "t", {"group_id": "g"}, None,  # type: ignore[arg-type]
                         lambda p, loaded: processors[p], deliver,  # type: ignore[arg-type]
                         batch_size=batch_size, checkpoint_interval=3600.0, executor=cpu)
    for p, processor in processors.items():
        runner.slots[p] = Slot(processor, 1)  # type: ignore[arg-type]
    return runner


def fetch(runner: StageRunner, per_partition: int) -> list[Any]:
    return runner._prepare({TopicPartition("t", p): list(range(per_partition))
                            for p in range(PARTITIONS)})


def test_the_partitions_of_a_fetch_deliver_at_once() -> None:
    """Partition 0's delivery is held until the last partition's begins: folding one partition
    after the other, each waiting for its delivery, never gets there."""
    processors = {p: Processor(p) for p in range(PARTITIONS)}
    last_began = asyncio.Event()
    delivered: list[int] = []

    async def deliver(processor: Processor) -> None:
        processor.delivering = True
        if processor.partition == PARTITIONS - 1:
            last_began.set()
        await last_began.wait()
        processor.outbox.clear()
        processor.delivering = False
        delivered.append(processor.partition)

    async def fold() -> None:
        with ThreadPoolExecutor(1) as cpu:
            runner = runner_with(processors, deliver, cpu)
            await asyncio.wait_for(runner._fold(fetch(runner, 10), 1), 5.0)

    asyncio.run(fold())
    assert sorted(delivered) == list(range(PARTITIONS))
    assert all(not p.outbox for p in processors.values())


def test_a_partition_folds_nothing_while_its_own_delivery_is_under_way() -> None:
    processors = {p: Processor(p) for p in range(PARTITIONS)}

    async def deliver(processor: Processor) -> None:
        processor.delivering = True
        for _ in range(3):  # a delivery takes a few turns of the loop
            await asyncio.sleep(0)
        processor.outbox.clear()
        processor.delivering = False

    async def fold() -> None:
        with ThreadPoolExecutor(1) as cpu:
            runner = runner_with(processors, deliver, cpu, batch_size=2)
            await runner._fold(fetch(runner, 12), 1)  # 6 batches per partition

    asyncio.run(fold())
    assert all(not p.outbox for p in processors.values())
    assert [p.folded_while_delivering for p in processors.values()] == [0] * PARTITIONS


def test_a_fetchs_fold_ends_when_its_deliveries_do_and_raises_what_they_raise() -> None:
    processors = {p: Processor(p) for p in range(PARTITIONS)}
    finished: list[int] = []

    async def deliver(processor: Processor) -> None:
        await asyncio.sleep(0.01 * (PARTITIONS - processor.partition))
        if processor.partition == 1:
            raise RuntimeError("a bug in delivering")
        processor.outbox.clear()
        finished.append(processor.partition)

    async def fold() -> None:
        with ThreadPoolExecutor(1) as cpu:
            runner = runner_with(processors, deliver, cpu)
            with pytest.raises(RuntimeError, match="a bug in delivering"):
                await runner._fold(fetch(runner, 10), 1)
            # Every other delivery was awaited before the fold raised: none is left running.
            assert sorted(finished) == [0, 2]

    asyncio.run(fold())


def test_a_round_of_writes_failing_on_every_partition_is_one_failed_attempt() -> None:
    """The partitions of a fetch write at once, so a broker that is down fails them together:
    one failed attempt, whose first wait comes next, not one doubling per partition (12 went
    straight to the 10 s ceiling, so a blip of a broker cost every partition 10 s)."""
    processors = {p: Processor(p) for p in range(12)}
    attempts: list[int] = []

    async def deliver(processor: Processor) -> None:
        attempts.append(processor.partition)
        await asyncio.sleep(0.01)  # the broker takes a moment to fail them
        raise KafkaTimeoutError("the broker is down")

    async def fold() -> float:
        with ThreadPoolExecutor(1) as cpu:
            runner = runner_with(processors, deliver, cpu)
            began = time.monotonic()
            await runner._fold(runner._prepare({TopicPartition("t", p): list(range(10))
                                                for p in processors}), 1)
            assert all(p.outbox for p in processors.values()), "what failed is still owed"
            return runner.backoff.retry_at - began

    retry_after = asyncio.run(fold())
    assert sorted(attempts) == list(processors)  # all went at once
    first = KAFKA_BACKOFF_SECONDS[0]
    assert retry_after <= first + 0.5, f"next try in {retry_after:.1f} s, not {first} s"
