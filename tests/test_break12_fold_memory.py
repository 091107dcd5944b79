"""What a fetch's batches were prepared into (their parsed columns) is let go as each batch is
folded, not when the whole fetch is: while a fetch is folded the next one is prepared, and the
parsed columns held should be about one fetch's (as stage_one.py says), not two."""

from __future__ import annotations

import asyncio
import gc
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import TopicPartition

from monitor.service.runner import StageRunner
from monitor.service.slots import Slot, Step


class Parsed:
    """Stands for a batch's parsed columns."""

    def __init__(self, batch: Any) -> None:
        self.batch = batch


class Processor:
    offset = -1

    def __init__(self) -> None:
        self.alive_at_fold: list[int] = []
        self.made: list[weakref.ref[Parsed]] = []

    def prepare(self, batch: Any) -> Parsed:
        parsed = Parsed(batch)
        self.made.append(weakref.ref(parsed))
        return parsed

    def process(self, records: Any, wall: float) -> Step:
        gc.collect()
        self.alive_at_fold.append(sum(ref() is not None for ref in self.made))
        return Step()

    def has_outbox(self) -> bool:
        return False


def test_a_fetchs_prepared_batches_are_let_go_as_they_are_folded() -> None:
    processor = Processor()

    async def fold() -> None:
        with ThreadPoolExecutor(1) as cpu, ThreadPoolExecutor(1) as ahead:
            runner = StageRunner("stage one", "t", {"group_id": "g"}, None,  # type: ignore[arg-type]
                                 lambda p, loaded: processor, None,  # type: ignore[arg-type]
                                 batch_size=10, executor=cpu, ahead=ahead)
            for p in range(10):  # a fetch of 10 partitions' batches
                runner.slots[p] = Slot(processor, 1)  # type: ignore[arg-type]
            jobs = runner._prepare({TopicPartition("t", p): list(range(10 * p, 10 * p + 10))
                                    for p in range(10)})
            await runner._fold(jobs, 1)

    asyncio.run(fold())
    assert len(processor.made) == 10
    # Folding batch i, batches 0 .. i-1 are folded: only those from i on may be held.
    assert all(n <= 10 - i for i, n in enumerate(processor.alive_at_fold)), \
        processor.alive_at_fold
