"""The async shell of one stage: a consumer group whose partitions each have a processor.

For each input partition the runner loads the processor's checkpoint when the partition is
assigned (and seeks past what it covers), feeds it batches (the CPU work runs in a thread, so
the consumer's heartbeats go on), and performs what it decides, in this order:

1. dead letters, awaited (at least once: a crash before the checkpoint sends them again);
2. the checkpoint (`StateStore.save`), when the processor has something to send or the
   checkpoint interval has passed; it carries the outbox, so what is sent next is exactly what
   a restart would send again;
3. the outbox (partials, alerts, points), then the processor forgets what was delivered.

When Kafka fails any of these (a broker restarting, a leader moving), nothing is lost: the dead
letters and the models taken for the checkpoint are kept, the slot owes a checkpoint before it
may deliver anything, and the runner tries again with backoff (`Backoff`) while records go on
being folded in memory. A partition whose checkpoint cannot be loaded is paused and loaded again
on the next ticks; until then it reads nothing.

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
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from monitor.ingest.records import ModelKey
from monitor.service.backoff import Backoff
from monitor.service.outlet import BROKEN, Outlet
from monitor.service.state_store import Loaded, StateReadTimeout, StateStore

log = logging.getLogger(__name__)

KAFKA_BACKOFF_SECONDS = (0.5, 10.0)  # first and longest wait after a failed Kafka write or read
FRESH_SECONDS = 2.0  # a partition's log end older than this is not known now
GAP_SECONDS = 5.0  # not known for this long: the partition could not be read (broker down)
TRANSIENT = (KafkaError, StateReadTimeout)  # tried again; anything else stops the worker


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
    owed: bool = False  # the outbox holds what no checkpoint covers yet: checkpoint first
    letters: list[Any] = field(default_factory=list)  # dead letters not acknowledged yet
    dirty: set[ModelKey] = field(default_factory=set)  # models taken, not saved yet
    log_start: int = 0  # first offset still in the input partition (for the lag)


NewProcessor = Callable[[int, Loaded | None], Processor]
Deliver = Callable[[Processor], Awaitable[None]]
SendDeadLetters = Callable[[list[Any]], Awaitable[None]]


class StageRunner(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, name: str, topic: str, consumer_config: dict[str, Any],
                 store: StateStore, new_processor: NewProcessor, deliver: Deliver,
                 dead_letters: SendDeadLetters | None = None, *,
                 batch_size: int = 5000, checkpoint_interval: float = 5.0,
                 commit_interval: float = 2.8, hold_after_gap: float = 0.0,
                 executor: Executor | None = None, outlet: Outlet | None = None) -> None:
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
        # After a partition could not be read (broker down, just assigned), it is not called
        # caught up for this long: producers that buffered meanwhile get to deliver first.
        self.hold_after_gap = hold_after_gap
        # The thread(s) of the CPU work; one thread for all of it keeps the memory the C
        # allocator holds to one arena (a pool of threads makes one each).
        self.executor = executor
        self.outlet = outlet  # the producer, made again when it breaks
        self._readable_since: dict[int, float] = {}
        self.group = str(consumer_config.get("group_id"))
        self.joined = False  # an assignment (even an empty one) came since the consumer started
        self.slots: dict[int, Slot] = {}
        self.unloaded: dict[int, int] = {}  # assigned partitions whose load failed -> generation
        self.consumer: AIOKafkaConsumer | None = None
        self.fetched: set[int] = set()
        self.checkpoint_bytes = 0  # size of the last checkpoint written
        self.fenced = 0  # checkpoints refused because the partition was no longer ours
        self.backoff = Backoff(*KAFKA_BACKOFF_SECONDS)  # Kafka writes (checkpoints, deliveries)
        self.last_error = ""  # the last Kafka failure, while the runner is failing
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
            return  # revoked while fetched (the new owner reads these), or not loaded yet
        async with slot.lock:
            if self.slots.get(partition) is not slot or not await self._current(partition,
                                                                                 records):
                return
            step = await self._cpu(slot.processor.process, records, time.time())
            slot.unsaved = True
            await self._perform(partition, slot, step)

    async def _cpu(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _current(self, partition: int, records: list[Any]) -> bool:
        """False when a seek moved the partition back after these records were fetched (its
        checkpoint was loaded meanwhile): they are read again from there, and folding them now
        would make the processor skip the records before them."""
        consumer = self.consumer
        if consumer is None:
            return False
        try:
            position = await consumer.position(TopicPartition(self.topic, partition))
        except Exception:  # not assigned any more
            return False
        return bool(position > records[-1].offset)

    async def tick(self) -> None:
        """Move quiet partitions on by wall clock, checkpoint on the interval, retry deliveries
        and loads that failed."""
        await self._load_again()
        for partition, slot in list(self.slots.items()):
            if slot.lock.locked():
                continue
            caught_up = await self._caught_up(partition)
            async with slot.lock:
                if self.slots.get(partition) is not slot:
                    continue
                step = await self._cpu(slot.processor.tick, time.time(), caught_up)
                await self._perform(partition, slot, step)

    async def _perform(self, partition: int, slot: Slot, step: Step) -> None:
        """Dead letters, checkpoint, outbox, in this order; a Kafka failure keeps what is owed
        for the next try (after the backoff)."""
        slot.letters += step.dead_letters
        slot.owed = slot.owed or step.urgent
        if not self.backoff.ready():
            return
        producer = self.outlet.producer if self.outlet is not None else None
        try:
            await self._settle(partition, slot)
        except TRANSIENT as exc:
            self._failed(exc, f"partition {partition}")
            if isinstance(exc, BROKEN) and self.outlet is not None:
                await self.outlet.renew(producer, exc)  # type: ignore[arg-type]
            return
        self._succeeded()

    async def _settle(self, partition: int, slot: Slot) -> None:
        if slot.letters and self.send_dead_letters is not None:
            await self.send_dead_letters(slot.letters)
        slot.letters = []
        due = time.monotonic() - slot.last_checkpoint >= self.checkpoint_interval
        if slot.owed or (slot.unsaved and due):
            if not await self._checkpoint(partition, slot):
                return
        # Whatever is in the outbox now is in a checkpoint: a restart would send it again.
        if slot.processor.has_outbox():
            await self.deliver(slot.processor)
            slot.unsaved = True  # the delivered outbox is forgotten in the next checkpoint

    def _failed(self, exc: BaseException, what: str) -> None:
        wait = self.backoff.failed()
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.backoff.worth_saying():
            log.warning("%s: Kafka failed (%s, %s); %d attempts so far, records are still "
                        "folded in memory and nothing is committed or sent before a checkpoint "
                        "succeeds; next try in %.1f s", self.name, what, self.last_error,
                        self.backoff.failures, wait)

    def _succeeded(self) -> None:
        failures = self.backoff.failures
        lasted = self.backoff.succeeded()
        if lasted is not None:
            self.last_error = ""
            log.info("%s: Kafka writes go through again after %.1f s (%d failed attempts)",
                     self.name, lasted, failures)

    async def _checkpoint(self, partition: int, slot: Slot) -> bool:
        if not self._owns(partition, slot.generation):
            self.fenced += 1
            log.warning("%s: partition %d is no longer ours (generation %d): dropping it "
                        "without a checkpoint", self.name, partition, slot.generation)
            self.slots.pop(partition, None)
            self._retire(slot)
            return False
        processor = slot.processor
        # Models taken for a checkpoint that failed stay owed: the next one writes them too.
        slot.dirty |= processor.take_dirty()
        dirty = set(slot.dirty)
        states = await self._cpu(lambda: {k: processor.model_state(k) for k in dirty})
        header = processor.header_state()
        slot.owed = True  # until the save below is acknowledged
        self.checkpoint_bytes = await self.store.save(
            partition, processor.offset, header, states, slot.generation,
            processor.model_state)
        slot.dirty -= dirty
        slot.checkpointed = processor.offset
        slot.last_checkpoint = time.monotonic()
        slot.unsaved = False
        slot.owed = False
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

    def assigned(self) -> list[int]:
        consumer = self.consumer
        if consumer is None:
            return []
        return sorted(tp.partition for tp in consumer.assignment() if tp.topic == self.topic)

    def _owns(self, partition: int, generation: int) -> bool:
        consumer = self.consumer
        return (consumer is not None and TopicPartition(self.topic, partition)
                in consumer.assignment() and self.generation() == generation)

    async def _caught_up(self, partition: int) -> bool:
        """Nothing left to read on `partition`, as of a fetch the broker just answered, and the
        partition readable for `hold_after_gap` seconds in a row."""
        if partition in self.fetched:
            return False
        consumer = self.consumer
        tp = TopicPartition(self.topic, partition)
        now = time.time()
        polled = (consumer.last_poll_timestamp(tp)
                  if consumer is not None and tp in consumer.assignment() else None)
        if polled is None or now - polled / 1000 > FRESH_SECONDS:
            if polled is None or now - polled / 1000 > GAP_SECONDS:
                self._readable_since.pop(partition, None)
            return False
        since = self._readable_since.setdefault(partition, now)
        return now - since >= self.hold_after_gap and await self.unread(partition) == 0

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

    async def lag(self) -> int | None:
        """Records of the assigned partitions not folded in yet: the log end minus the offset
        the processor has folded in (its checkpoint's, for a partition not loaded yet). None
        when not known (no consumer, or the broker does not answer)."""
        from monitor.service.lag import stage_lag

        return await stage_lag(self)

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
            self.unloaded.pop(tp.partition, None)
            slot = self.slots.get(tp.partition)
            if slot is None:
                continue
            async with slot.lock:
                if slot.unsaved or slot.owed or slot.processor.has_outbox():
                    await self._final_checkpoint(tp.partition, slot, "at revocation")
                self.slots.pop(tp.partition, None)
                self._retire(slot)
                # A slot with letters or a checkpoint still owed is not taken back as it is:
                # the next owner starts from the last checkpoint, which sends them again.
                if not (slot.owed or slot.letters):
                    self._parked[tp.partition] = (slot, generation)
        await self.commit(force=True)

    async def _final_checkpoint(self, partition: int, slot: Slot, when: str) -> None:
        try:
            if slot.letters and self.send_dead_letters is not None:
                await self.send_dead_letters(slot.letters)
                slot.letters = []
            await self._checkpoint(partition, slot)
        except TRANSIENT as exc:
            log.warning("%s: checkpoint %s of partition %d failed (the next owner starts from "
                        "the previous one): %r", self.name, when, partition, exc)

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
            await self._try_load(tp, generation)
        self._parked.clear()
        self.joined = True
        log.info("%s: partitions assigned: %s (generation %d)", self.name,
                 sorted(tp.partition for tp in assigned), generation)

    async def _try_load(self, tp: TopicPartition, generation: int) -> None:
        """Load, or pause the partition and leave it to `_load_again` (a broker restarting)."""
        consumer = self.consumer
        try:
            await self._load(tp, generation)
        except TRANSIENT as exc:
            self.unloaded[tp.partition] = generation
            if consumer is not None and tp in consumer.assignment():
                consumer.pause(tp)
            self._failed(exc, f"loading partition {tp.partition}")
            return
        self.unloaded.pop(tp.partition, None)
        if consumer is not None and tp in consumer.paused():
            consumer.resume(tp)

    async def _load_again(self) -> None:
        if not self.unloaded or not self.backoff.ready():
            return
        generation = self.generation()
        for partition, loaded_in in list(self.unloaded.items()):
            tp = TopicPartition(self.topic, partition)
            consumer = self.consumer
            if consumer is None or tp not in consumer.assignment() or loaded_in != generation:
                self.unloaded.pop(partition, None)  # revoked meanwhile
                continue
            await self._try_load(tp, generation)
            if partition in self.unloaded:
                return
            self._succeeded()

    async def _load(self, tp: TopicPartition, generation: int) -> None:
        loaded = await self.store.load(tp.partition)
        consumer = self.consumer
        log_start = 0
        if consumer is not None:
            log_start = (await consumer.beginning_offsets([tp]))[tp]
        if loaded is not None and consumer is not None:
            end = (await consumer.end_offsets([tp]))[tp]
            if loaded.offset >= end:
                log.warning("%s: partition %d: the checkpoint covers offset %d but the "
                            "partition ends at %d: the topic was recreated or truncated; "
                            "starting from its beginning", self.name, tp.partition,
                            loaded.offset, end)
                loaded = None
        processor = self.new_processor(tp.partition, loaded)
        slot = Slot(processor, generation, log_start=log_start)
        if loaded is not None:
            slot.checkpointed = loaded.offset
            log.info("%s: partition %d: restored checkpoint at offset %d (%d models, %d bytes)",
                     self.name, tp.partition, loaded.offset, len(loaded.models), loaded.size)
            if consumer is not None:
                consumer.seek(tp, loaded.offset + 1)
        else:
            log.info("%s: partition %d: no checkpoint, starting empty", self.name, tp.partition)
            if consumer is not None:
                consumer.seek(tp, log_start)
        # Only now: records fetched before the seek are not this slot's (`_current`).
        self.slots[tp.partition] = slot

    async def stop(self) -> None:
        """Checkpoint every partition (a clean stop loses no work), then leave."""
        self.stopping = True
        for partition, slot in list(self.slots.items()):
            async with slot.lock:
                if ((slot.unsaved or slot.owed or slot.processor.has_outbox())
                        and self.consumer is not None):
                    await self._final_checkpoint(partition, slot, "at shutdown")
        await self.commit(force=True)
