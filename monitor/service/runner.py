"""The async shell of one stage: a consumer group whose partitions each have a processor.

For each input partition the runner loads the processor's checkpoint when the partition is
assigned (and seeks past what it covers), feeds it batches (the CPU work runs in a thread, so
the consumer's heartbeats go on), and performs what it decides, in this order:

1. dead letters, awaited (at least once: a crash before the checkpoint sends them again);
2. the checkpoint (`StateStore.save`), when the processor has something to send or the
   checkpoint interval has passed; it carries the outbox, so what is sent next is exactly what
   a restart would send again;
3. the outbox (partials, alerts, points), then the processor forgets what was delivered.

A checkpoint is written only while the partition is still ours in the group generation that
loaded it; a worker that lost it (a zombie) drops the partition instead. Consumer offsets are
committed up to checkpointed offsets, an optimisation for lag tools: positions come from the
checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from monitor.ingest.records import ModelKey
from monitor.service.state_store import Loaded, StateStore

log = logging.getLogger(__name__)


@dataclass
class Step:
    """What one batch or tick asks of the shell."""

    dead_letters: list[Any] = field(default_factory=list)
    urgent: bool = False  # the outbox has something: checkpoint and deliver now


class Processor(Protocol):
    partition: int

    @property
    def offset(self) -> int: ...
    def process(self, records: list[Any], wall: float) -> Step: ...
    def tick(self, wall: float, caught_up: bool) -> Step: ...
    def take_dirty(self) -> set[ModelKey]: ...
    def header_state(self) -> dict[str, Any]: ...
    def model_state(self, key: ModelKey) -> dict[str, Any] | None: ...
    def has_outbox(self) -> bool: ...
    def stats(self) -> dict[str, int]: ...  # counters since this processor started
    def gauges(self) -> dict[str, int]: ...  # levels now
    def reset_stats(self) -> None: ...


@dataclass
class Slot:
    processor: Processor
    generation: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    checkpointed: int = -1  # input offset of the last checkpoint
    last_checkpoint: float = field(default_factory=time.monotonic)
    unsaved: bool = False  # records folded in since the last checkpoint


NewProcessor = Callable[[int, Loaded | None], Processor]
Deliver = Callable[[Processor], Awaitable[None]]
SendDeadLetters = Callable[[list[Any]], Awaitable[None]]


class StageRunner(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, name: str, topic: str, consumer_config: dict[str, Any],
                 store: StateStore, new_processor: NewProcessor, deliver: Deliver,
                 dead_letters: SendDeadLetters | None = None, *,
                 batch_size: int = 5000, checkpoint_interval: float = 5.0,
                 commit_interval: float = 2.8) -> None:
        self.name = name
        self.topic = topic
        self.consumer_config = consumer_config
        self.store = store
        self.new_processor = new_processor
        self.deliver = deliver
        self.send_dead_letters = dead_letters
        self.batch_size = batch_size
        self.checkpoint_interval = checkpoint_interval
        self.commit_interval = commit_interval
        self.slots: dict[int, Slot] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.fetched: set[int] = set()
        self.checkpoint_bytes = 0  # size of the last checkpoint written
        self.fenced = 0  # checkpoints refused because the partition was no longer ours
        self._parked: dict[int, tuple[Slot, int]] = {}  # revoked slots, kept for one generation
        self.retired: dict[str, int] = {}  # counters of processors this worker let go
        self._last_commit = time.monotonic()
        self.stopping = False

    # -- the loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        consumer = self.consumer = AIOKafkaConsumer(**self.consumer_config)
        consumer.subscribe([self.topic], listener=self)
        await consumer.start()
        try:
            while not self.stopping:
                batches = await consumer.getmany(timeout_ms=500, max_records=self.batch_size)
                self.fetched = {tp.partition for tp in batches}
                for tp, records in batches.items():
                    await self._batch(tp.partition, records)
                    self.fetched.discard(tp.partition)
                await self.commit()
        finally:
            self.consumer = None
            await consumer.stop()

    async def _batch(self, partition: int, records: list[Any]) -> None:
        slot = self.slots.get(partition)
        if slot is None:
            return  # revoked while fetched: the new owner reads these records
        async with slot.lock:
            if self.slots.get(partition) is not slot or self.stopping:
                return  # revoked, or stopping: these records are read again after a restart
            step = await asyncio.to_thread(slot.processor.process, records, time.time())
            slot.unsaved = True
            await self._perform(partition, slot, step)

    async def tick(self) -> None:
        """Move quiet partitions on by wall clock, checkpoint on the interval, retry deliveries."""
        for partition, slot in list(self.slots.items()):
            if slot.lock.locked() or self.stopping:
                continue
            caught_up = partition not in self.fetched and await self.unread(partition) == 0
            async with slot.lock:
                if self.slots.get(partition) is not slot or self.stopping:
                    continue
                step = await asyncio.to_thread(slot.processor.tick, time.time(), caught_up)
                await self._perform(partition, slot, step)

    async def _perform(self, partition: int, slot: Slot, step: Step) -> None:
        if step.dead_letters and self.send_dead_letters is not None:
            await self.send_dead_letters(step.dead_letters)
        due = time.monotonic() - slot.last_checkpoint >= self.checkpoint_interval
        if step.urgent or (slot.unsaved and due):
            if not await self._checkpoint(partition, slot):
                return
        # Whatever is in the outbox now is in a checkpoint: a restart would send it again.
        if slot.processor.has_outbox():
            await self.deliver(slot.processor)
            slot.unsaved = True  # the delivered outbox is forgotten in the next checkpoint

    async def _checkpoint(self, partition: int, slot: Slot) -> bool:
        if not self._owns(partition, slot.generation):
            self.fenced += 1
            log.warning("%s: partition %d is no longer ours (generation %d): dropping it "
                        "without a checkpoint", self.name, partition, slot.generation)
            self.slots.pop(partition, None)
            self._retire(slot)
            return False
        processor = slot.processor
        dirty = processor.take_dirty()
        states = await asyncio.to_thread(lambda: {k: processor.model_state(k) for k in dirty})
        header = processor.header_state()
        self.checkpoint_bytes = await self.store.save(
            partition, processor.offset, header, states, slot.generation,
            processor.model_state)
        slot.checkpointed = processor.offset
        slot.last_checkpoint = time.monotonic()
        slot.unsaved = False
        return True

    def stats(self) -> dict[str, int]:
        """Counters since the worker started, and levels now, over this stage's partitions."""
        out = dict(self.retired)
        for slot in self.slots.values():
            for source in (slot.processor.stats(), slot.processor.gauges()):
                for key, value in source.items():
                    out[key] = out.get(key, 0) + value
        return out

    def _retire(self, slot: Slot) -> None:
        for key, value in slot.processor.stats().items():
            self.retired[key] = self.retired.get(key, 0) + value
        slot.processor.reset_stats()

    # -- ownership and offsets ------------------------------------------------------------------
    def generation(self) -> int:
        coordinator = getattr(self.consumer, "_coordinator", None)
        return int(getattr(coordinator, "generation", -1))

    def _owns(self, partition: int, generation: int) -> bool:
        consumer = self.consumer
        return (consumer is not None and TopicPartition(self.topic, partition)
                in consumer.assignment() and self.generation() == generation)

    async def unread(self, partition: int) -> int | None:
        """Records on `partition` past the consumer's position (None: not known yet)."""
        consumer = self.consumer
        tp = TopicPartition(self.topic, partition)
        if consumer is None or tp not in consumer.assignment():
            return None
        highwater = consumer.highwater(tp)
        if highwater is None:
            return None
        try:
            position = await consumer.position(tp)
        except Exception:  # not assigned any more, or no position yet
            return None
        return max(0, highwater - position)

    async def commit(self, *, force: bool = False) -> None:
        now = time.monotonic()
        consumer = self.consumer
        if consumer is None or (not force and now - self._last_commit < self.commit_interval):
            return
        self._last_commit = now
        offsets = {TopicPartition(self.topic, p): s.checkpointed + 1
                   for p, s in self.slots.items() if s.checkpointed >= 0}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance in progress: the next commit catches up
            log.info("%s: offset commit skipped: %r", self.name, exc)

    # -- rebalancing ----------------------------------------------------------------------------
    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Checkpoint what was folded in since the last checkpoint, then let go. The slot is
        kept aside: if the next generation gives the partition back, nobody else touched it."""
        generation = self.generation()
        for tp in revoked:
            slot = self.slots.get(tp.partition)
            if slot is None:
                continue
            async with slot.lock:
                if slot.unsaved or slot.processor.has_outbox():
                    try:
                        await self._checkpoint(tp.partition, slot)
                    except KafkaError as exc:
                        log.warning("%s: checkpoint at revocation of partition %d failed: %r",
                                    self.name, tp.partition, exc)
                self.slots.pop(tp.partition, None)
                self._retire(slot)
                self._parked[tp.partition] = (slot, generation)
        await self.commit(force=True)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        generation = self.generation()
        consumer = self.consumer
        for tp in sorted(assigned, key=lambda t: t.partition):
            parked = self._parked.pop(tp.partition, None)
            if parked is not None and parked[1] + 1 == generation:
                slot = parked[0]
                slot.generation = generation
                self.slots[tp.partition] = slot
                if consumer is not None:
                    consumer.seek(tp, slot.processor.offset + 1)
                continue
            await self._load(tp, generation)
        self._parked.clear()
        log.info("%s: partitions assigned: %s (generation %d)", self.name,
                 sorted(tp.partition for tp in assigned), generation)

    async def _load(self, tp: TopicPartition, generation: int) -> None:
        loaded = await self.store.load(tp.partition)
        consumer = self.consumer
        if loaded is not None and consumer is not None:
            end = (await consumer.end_offsets([tp]))[tp]
            if loaded.offset >= end:
                log.warning("%s: partition %d: the checkpoint covers offset %d but the "
                            "partition ends at %d: the topic was recreated or truncated; "
                            "starting from its beginning", self.name, tp.partition,
                            loaded.offset, end)
                loaded = None
        processor = self.new_processor(tp.partition, loaded)
        slot = self.slots[tp.partition] = Slot(processor, generation)
        if loaded is not None:
            slot.checkpointed = loaded.offset
            log.info("%s: partition %d: restored checkpoint at offset %d (%d models, %d bytes)",
                     self.name, tp.partition, loaded.offset, len(loaded.models), loaded.size)
            if consumer is not None:
                consumer.seek(tp, loaded.offset + 1)
        else:
            log.info("%s: partition %d: no checkpoint, starting empty", self.name, tp.partition)
            if consumer is not None:
                await consumer.seek_to_beginning(tp)

    async def stop(self) -> None:
        """Checkpoint every partition (a clean stop loses no work), then leave."""
        self.stopping = True
        for partition, slot in list(self.slots.items()):
            async with slot.lock:
                if (slot.unsaved or slot.processor.has_outbox()) and self.consumer is not None:
                    try:
                        await self._checkpoint(partition, slot)
                    except KafkaError as exc:
                        log.warning("%s: final checkpoint of partition %d failed: %r",
                                    self.name, partition, exc)
        await self.commit(force=True)
