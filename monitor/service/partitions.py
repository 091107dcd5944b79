"""The partitions side of a stage runner (`StageRunner` mixes it in): which partitions are
ours and where their records stand (ownership, caught up, lag, commits), and what happens when
the group gives or takes them (checkpoint at revocation, load at assignment, pause and load
again when the state topic does not answer, the final checkpoint at shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from monitor.service.slots import NewProcessor, SendDeadLetters, Slot
from monitor.service.state_store import Loaded, StateReadTimeout

if TYPE_CHECKING:
    from monitor.service.backoff import Backoff
    from monitor.service.state_store import StateStore

log = logging.getLogger(__name__)

# Tried again (TimeoutError: Kafka did not acknowledge within SETTLE_SECONDS); anything else
# stops the worker.
TRANSIENT = (KafkaError, StateReadTimeout, TimeoutError)
# A checkpoint with its deliveries not acknowledged within this has failed (the producer keeps
# retrying the requests of a broker that is down, without end): the slot still owes it.
SETTLE_SECONDS = 15.0
CLOSE_SECONDS = 5.0  # leaving the group at shutdown, when the broker does not answer
FRESH_SECONDS = 2.0  # a partition's log end older than this is not known now
GAP_SECONDS = 5.0  # not known for this long: the partition could not be read (broker down)


class Partitions(ConsumerRebalanceListener):  # type: ignore[misc]
    # Set by StageRunner.__init__ (the checkpoint and retry side lives there).
    name: str
    topic: str
    consumer: AIOKafkaConsumer | None
    store: StateStore
    new_processor: NewProcessor
    send_dead_letters: SendDeadLetters | None
    slots: dict[int, Slot]
    unloaded: dict[int, int]  # assigned partitions whose load failed -> generation
    fetched: Counter[int]
    backoff: Backoff
    hold_after_gap: float
    commit_interval: float
    joined: bool
    stopping: bool
    _readable_since: dict[int, float]
    _parked: dict[int, tuple[Slot, int]]
    _last_commit: float
    _fetch: int
    # Asked before any partition assigned is taken: False (the input topic is not the one the
    # checkpoints belong to any more) leaves them paused and unread.
    verify_stream: Callable[[], Awaitable[bool]] | None

    async def _checkpoint(self, partition: int, slot: Slot) -> bool:
        raise NotImplementedError

    def _retire(self, slot: Slot) -> None:
        raise NotImplementedError

    def _failed(self, exc: BaseException, what: str) -> None:
        raise NotImplementedError

    def _succeeded(self) -> None:
        raise NotImplementedError

    # -- ownership and offsets ------------------------------------------------------------------
    def partition_count(self) -> int | None:
        consumer = self.consumer
        partitions = consumer.partitions_for_topic(self.topic) if consumer is not None else None
        return len(partitions) if partitions else None

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
        async def checkpoint() -> None:
            if slot.letters and self.send_dead_letters is not None:
                await self.send_dead_letters(slot.letters)
                slot.letters = []
            await self._checkpoint(partition, slot)

        try:
            await asyncio.wait_for(checkpoint(), SETTLE_SECONDS)
        except TRANSIENT as exc:
            log.warning("%s: checkpoint %s of partition %d failed (the next owner starts from "
                        "the previous one): %r", self.name, when, partition, exc)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        generation = self.generation()
        consumer = self.consumer
        if consumer is not None and assigned:
            # Nothing is fetched for a partition before its checkpoint is loaded and the
            # position set from it: records fetched before would be read twice.
            consumer.pause(*assigned)
        if assigned and self.verify_stream is not None and not await self.verify_stream():
            return  # another topic under the same name: nothing of it is read (the worker stops)
        to_load = []
        for tp in sorted(assigned, key=lambda t: t.partition):
            parked = self._parked.pop(tp.partition, None)
            if parked is not None and parked[1] + 1 == generation:
                slot = parked[0]
                slot.generation = generation
                slot.valid_from = self._fetch + 1
                self.slots[tp.partition] = slot
                if consumer is not None:
                    consumer.seek(tp, slot.processor.offset + 1)
                    consumer.resume(tp)
                continue
            to_load.append(tp)
        await self._try_load(to_load, generation)
        self._parked.clear()
        self.joined = True
        log.info("%s: partitions assigned: %s (generation %d)", self.name,
                 sorted(tp.partition for tp in assigned), generation)

    async def _try_load(self, tps: list[TopicPartition], generation: int) -> bool:
        """Load the checkpoints of `tps` at once (a worker given N partitions waits for about
        one load, not N); a partition whose load fails is paused and left to `_load_again` (a
        broker restarting). True when every one loaded."""
        if not tps:
            return True
        consumer = self.consumer
        results = await asyncio.gather(*(self.store.load(tp.partition) for tp in tps),
                                       return_exceptions=True)
        loaded: dict[TopicPartition, Loaded | None] = {}
        failed: list[tuple[TopicPartition, BaseException]] = []
        error: BaseException | None = None
        for tp, result in zip(tps, results, strict=True):
            if isinstance(result, TRANSIENT):
                failed.append((tp, result))
            elif isinstance(result, BaseException):
                error = error or result
            else:
                loaded[tp] = result
        if loaded:
            try:
                # Asked once all are loaded: an end offset taken after a checkpoint was read
                # is past every offset that checkpoint covers (unless the topic was truncated).
                bounds = await self._bounds(list(loaded))
            except TRANSIENT as exc:
                failed += [(tp, exc) for tp in loaded]
                loaded = {}
        for tp, checkpoint in loaded.items():
            self._install(tp, generation, checkpoint, *bounds[tp])
            self.unloaded.pop(tp.partition, None)
            if consumer is not None and tp in consumer.paused():
                consumer.resume(tp)
        for tp, _ in failed:
            self.unloaded[tp.partition] = generation
            if consumer is not None and tp in consumer.assignment():
                consumer.pause(tp)
        if failed:
            self._failed(failed[0][1], "loading partition(s) "
                         + ", ".join(str(tp.partition) for tp, _ in failed))
        if error is not None:
            raise error
        return not failed

    async def _load_again(self) -> None:
        if not self.unloaded or not self.backoff.ready():
            return
        generation = self.generation()
        retry = []
        for partition, loaded_in in list(self.unloaded.items()):
            tp = TopicPartition(self.topic, partition)
            consumer = self.consumer
            if consumer is None or tp not in consumer.assignment() or loaded_in != generation:
                self.unloaded.pop(partition, None)  # revoked meanwhile
                continue
            retry.append(tp)
        if retry and await self._try_load(retry, generation):
            self._succeeded()

    async def _bounds(self, tps: list[TopicPartition]
                      ) -> dict[TopicPartition, tuple[int, int | None]]:
        """Log start and end offsets of `tps`: one request each for all of them."""
        consumer = self.consumer
        if consumer is None:
            return {tp: (0, None) for tp in tps}
        begins, ends = await asyncio.gather(consumer.beginning_offsets(tps),
                                            consumer.end_offsets(tps))
        return {tp: (begins[tp], ends[tp]) for tp in tps}

    def _install(self, tp: TopicPartition, generation: int, loaded: Loaded | None,
                 log_start: int, end: int | None) -> None:
        """The partition's processor from its checkpoint, and the consumer's position."""
        consumer = self.consumer
        if loaded is not None and end is not None and loaded.offset >= end:
            log.warning("%s: partition %d: the checkpoint covers offset %d but the partition "
                        "ends at %d: the topic was recreated or truncated; starting from its "
                        "beginning", self.name, tp.partition, loaded.offset, end)
            loaded = None
        processor = self.new_processor(tp.partition, loaded)
        slot = Slot(processor, generation, log_start=log_start)
        slot.valid_from = self._fetch + 1  # only fetches begun after the seek below are used
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
        self.slots[tp.partition] = slot

    async def stop(self, *, broker_up: bool = True) -> None:
        """Checkpoint every partition (a clean stop loses no work), then leave. With the broker
        down there is no final checkpoint (it could not be written): the next owner starts from
        the last one and reads the records after it again."""
        self.stopping = True
        if not broker_up:
            if any(s.unsaved or s.owed for s in self.slots.values()):
                log.warning("%s: the broker is not reachable: no final checkpoint; the next "
                            "owner starts from the last one", self.name)
            return
        for partition, slot in list(self.slots.items()):
            async with slot.lock:
                if ((slot.unsaved or slot.owed or slot.processor.has_outbox())
                        and self.consumer is not None):
                    await self._final_checkpoint(partition, slot, "at shutdown")
        await self.commit(force=True)
