"""Consumer lag that tells the truth: records of a stage's assigned partitions not folded in yet.

The consumer's own position is not the measure: right after an assignment it has none yet (or
the log's start), and it runs ahead of what is folded in while a batch is being processed. The
lag of a partition is its log end (high watermark) minus the next offset its processor has to
fold in; for a partition whose checkpoint is not loaded yet, minus the checkpointed offset (the
group's committed offset, which the runner commits only up to checkpoints). A partition that
starts empty is measured from the oldest record still in the log.

>>> partition_lag(end=120, folded=99, log_start=0)
20
>>> partition_lag(end=120, folded=-1, log_start=100)  # no checkpoint: from the log's start
20
>>> partition_lag(end=50, folded=60, log_start=0)  # a stale end: never negative
0
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

if TYPE_CHECKING:
    from monitor.service.runner import StageRunner

log = logging.getLogger(__name__)

LAG_TIMEOUT_SECONDS = 2.0


def partition_lag(end: int, folded: int, log_start: int) -> int:
    """`folded`: the offset up to which every record is folded in (-1: none)."""
    return max(0, end - max(folded + 1, log_start))


async def stage_lag(runner: StageRunner, timeout_s: float = LAG_TIMEOUT_SECONDS) -> int | None:
    """The lag of every partition `runner` is assigned, summed; None when it cannot be known
    within `timeout_s` (a broker that does not answer: the probes must answer anyway)."""
    try:
        return await asyncio.wait_for(_stage_lag(runner), timeout_s)
    except (TimeoutError, KafkaError) as exc:
        log.debug("%s: lag not known: %r", runner.name, exc)
        return None


async def _stage_lag(runner: StageRunner) -> int | None:
    consumer = runner.consumer
    if consumer is None:
        return None
    tps = [TopicPartition(runner.topic, p) for p in runner.assigned()]
    if not tps:
        return 0
    unknown = [tp for tp in tps if consumer.highwater(tp) is None
               or tp.partition not in runner.slots]
    ends = await consumer.end_offsets(unknown) if unknown else {}
    total = 0
    for tp in tps:
        slot = runner.slots.get(tp.partition)
        end = ends.get(tp, consumer.highwater(tp))
        if end is None:
            return None
        if slot is not None:
            total += partition_lag(end, slot.processor.offset, slot.log_start)
            continue
        committed = await consumer.committed(tp)  # checkpointed offset + 1, or None
        start = (await consumer.beginning_offsets([tp]))[tp]
        total += partition_lag(end, (committed or 0) - 1, start)
    return total
