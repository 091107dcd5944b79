"""The async shell of one stage: a consumer group whose partitions each have a processor.

For each input partition the runner loads the processor's checkpoint when the partition is
assigned (and seeks past what it covers), feeds it batches (the CPU work runs in a thread, so
the consumer's heartbeats go on; a processor with a `prepare` step has each batch prepared in
another thread as soon as its fetch returns, while the previous fetch is folded), and performs
what it decides, in this order:

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
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from monitor.service.backoff import Backoff
from monitor.service.outlet import BROKEN, Outlet
from monitor.service.partitions import CLOSE_SECONDS, SETTLE_SECONDS, TRANSIENT, Partitions
from monitor.service.raw_fetch import in_batches
from monitor.service.slots import Deliver, NewProcessor, Processor, SendDeadLetters, Slot, Step
from monitor.service.state_store import StateStore

__all__ = ["Processor", "Slot", "StageRunner", "Step"]

log = logging.getLogger(__name__)

KAFKA_BACKOFF_SECONDS = (0.5, 10.0)  # first and longest wait after a failed Kafka write or read


@dataclass
class Job:
    """One batch of a fetch for `_fold`: its records, or what `prepare` is making of them;
    `last`: the partition's batches of this fetch are all done."""

    partition: int
    batch: Sequence[Any]
    ahead: Future[Any] | None
    last: bool = False


class StageRunner(Partitions):
    def __init__(self, name: str, topic: str, consumer_config: dict[str, Any],
                 store: StateStore, new_processor: NewProcessor, deliver: Deliver,
                 dead_letters: SendDeadLetters | None = None, *,
                 batch_size: int = 5000, checkpoint_interval: float = 5.0,
                 commit_interval: float = 2.8, hold_after_gap: float = 0.0,
                 executor: Executor | None = None, ahead: Executor | None = None,
                 outlet: Outlet | None = None) -> None:
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
        # The thread that prepares a fetch's batches (`Processor.prepare`: parsing, for stage
        # one) as soon as the fetch returns, while the previous fetch is folded; None: the
        # processor prepares each batch itself when it folds it.
        self.ahead = ahead
        self.outlet = outlet  # the producer, made again when it breaks
        self._readable_since: dict[int, float] = {}
        self.group = str(consumer_config.get("group_id"))
        self.joined = False  # an assignment (even an empty one) came since the consumer started
        self.slots: dict[int, Slot] = {}
        self.unloaded: dict[int, int] = {}  # assigned partitions whose load failed -> generation
        self.consumer: AIOKafkaConsumer | None = None
        self.fetched: Counter[int] = Counter()  # partitions of fetched batches not folded yet
        self.checkpoint_bytes = 0  # size of the last checkpoint written
        self.fenced = 0  # checkpoints refused because the partition was no longer ours
        self.backoff = Backoff(*KAFKA_BACKOFF_SECONDS)  # Kafka writes (checkpoints, deliveries)
        self.last_error = ""  # the last Kafka failure, while the runner is failing
        self._parked: dict[int, tuple[Slot, int]] = {}  # revoked slots, kept for one generation
        self.retired: dict[str, int] = {}  # counters of processors this worker let go
        self._last_commit = time.monotonic()
        self._fetch = 0  # number of the fetch (getmany) now under way
        self.stale_batches = 0  # batches fetched before a partition's seek, not used
        self.stopping = False
        self.verify_stream = None

    # -- the loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Fetch and fold in a pipeline: while one fetch's batches are folded (in the CPU thread)
        and their checkpoints and deliveries awaited, the next fetch is read and unpacked.
        Batches are folded in fetch order, one fetch at a time."""
        consumer = self.consumer = AIOKafkaConsumer(**self.consumer_config)
        consumer.subscribe([self.topic], listener=self)
        await consumer.start()
        folding: asyncio.Task[None] | None = None
        try:
            while not self.stopping:
                self._fetch += 1
                fetch = self._fetch
                batches = self._usable(
                    await consumer.getmany(timeout_ms=500, max_records=self.batch_size), fetch)
                self.fetched.update(tp.partition for tp in batches)
                jobs = self._prepare(batches)
                if folding is not None:
                    await folding
                folding = asyncio.create_task(self._fold(jobs, fetch))
            if folding is not None:
                await folding
        finally:
            if folding is not None and not folding.done():
                await asyncio.wait([folding])
            self.consumer = None
            try:  # leaving the group needs the broker: not forever
                await asyncio.wait_for(consumer.stop(), CLOSE_SECONDS)
            except (TimeoutError, KafkaError) as exc:
                log.warning("%s: consumer stopped without leaving its group: %r", self.name, exc)

    def _usable(self, batches: dict[TopicPartition, list[Any]],
                fetch: int) -> dict[TopicPartition, list[Any]]:
        """The batches of loaded partitions fetched from the position their load set. Decided
        when the fetch returns, before the next one: a batch fetched before its partition was
        (re)assigned and seeked (or while it was) is dropped and the partition seeked back to
        its processor's position, so nothing after it has been taken yet."""
        usable = {}
        for tp, records in batches.items():
            slot = self.slots.get(tp.partition)
            if slot is None:
                continue  # revoked meanwhile (the new owner reads these), or not loaded yet
            if fetch < slot.valid_from:
                self.stale_batches += 1
                if self.consumer is not None:
                    self.consumer.seek(tp, slot.processor.offset + 1)
                continue
            usable[tp] = records
        return usable

    def _prepare(self, batches: dict[TopicPartition, list[Any]]) -> list[Job]:
        """A fetch's batches (cut to the batch size), each with its preparation started in the
        `ahead` thread where the partition's processor has one: it runs while the previous
        fetch is folded."""
        jobs = []
        for tp, records in batches.items():
            prepare = getattr(self.slots[tp.partition].processor, "prepare", None)
            for batch in in_batches(records, self.batch_size):
                ahead = (self.ahead.submit(prepare, batch)
                         if self.ahead is not None and prepare is not None else None)
                jobs.append(Job(tp.partition, batch, ahead))
            jobs.append(Job(tp.partition, [], None, last=True))
        return jobs

    async def _fold(self, jobs: list[Job], fetch: int) -> None:
        """Fold a fetch's batches in order, letting go of each (what it was prepared into)
        once folded: the next fetch is prepared meanwhile, and only one fetch's worth is held.
        What a batch asks of Kafka (dead letters, checkpoint, outbox) is done beside the
        folding of the fetch's other partitions (a window closing on every partition at once
        costs one round of writes, not one per partition); the fold ends when all is done."""
        settling: list[asyncio.Task[None]] = []
        try:
            jobs.reverse()
            while jobs:
                job = jobs.pop()
                if job.last:
                    self.fetched -= Counter((job.partition,))  # (drops the partition at 0)
                    continue
                records = job.batch
                if job.ahead is not None:
                    try:
                        records = await asyncio.wrap_future(job.ahead)
                    except Exception:  # noqa: BLE001 - folding the batch itself raises it again
                        log.debug("%s: preparing a batch failed", self.name, exc_info=True)
                partition = job.partition
                del job
                slot = await self._batch(partition, records, fetch)
                del records
                if slot is not None:
                    settling.append(asyncio.create_task(self._settle_later(partition, slot)))
        finally:
            # Awaited even when folding failed: no write is left running unwatched.
            outcomes = await asyncio.gather(*settling, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        await self.commit()

    async def _batch(self, partition: int, records: Any, fetch: int) -> Slot | None:
        """Fold one batch into its partition's processor; the slot when the batch left it
        something to do with Kafka (`_settle_later`)."""
        slot = self.slots.get(partition)
        if slot is None:
            return None  # revoked while fetched (the new owner reads these), or not loaded yet
        async with slot.lock:
            if self.slots.get(partition) is not slot or self.stopping:
                return None  # revoked, or stopping: read again after a restart
            if fetch < slot.valid_from:
                # The partition was (re)assigned and seeked after this batch was fetched: the
                # seek governs (later fetches read from there), this batch is not used.
                self.stale_batches += 1
                return None
            step = await self._cpu(slot.processor.process, records, time.time())
            slot.unsaved = True
            # The batch's dead letters are the slot's before anyone else may take the lock: a
            # checkpoint covering the batch, whoever writes it, sends them first.
            return slot if self._absorb(slot, step) else None

    async def _settle_later(self, partition: int, slot: Slot) -> None:
        async with slot.lock:
            # Revoked or stopping meanwhile: the final checkpoint took what the slot held.
            if self.slots.get(partition) is slot and not self.stopping:
                await self._perform(partition, slot, Step())

    async def _cpu(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def tick(self) -> None:
        """Move quiet partitions on by wall clock, checkpoint on the interval, retry deliveries
        and loads that failed."""
        await self._load_again()
        for partition, slot in list(self.slots.items()):
            if slot.lock.locked() or self.stopping:
                continue
            caught_up = await self._caught_up(partition)
            async with slot.lock:
                if self.slots.get(partition) is not slot or self.stopping:
                    continue
                step = await self._cpu(slot.processor.tick, time.time(), caught_up)
                await self._perform(partition, slot, step)

    def _absorb(self, slot: Slot, step: Step) -> bool:
        """Take what a batch or a tick asks for into its slot; whether `_settle` would now
        write anything."""
        slot.letters += step.dead_letters
        slot.owed = slot.owed or step.urgent
        return bool(slot.letters or slot.owed or slot.processor.has_outbox()
                    or (slot.unsaved and self._checkpoint_due(slot)))

    def _checkpoint_due(self, slot: Slot) -> bool:
        return time.monotonic() - slot.last_checkpoint >= self.checkpoint_interval

    async def _perform(self, partition: int, slot: Slot, step: Step) -> None:
        """Dead letters, checkpoint, outbox, in this order; a Kafka failure keeps what is owed
        for the next try (after the backoff)."""
        self._absorb(slot, step)
        if not self.backoff.ready():
            return
        producer = self.outlet.producer if self.outlet is not None else None
        try:
            await asyncio.wait_for(self._settle(partition, slot), SETTLE_SECONDS)
        except TRANSIENT as exc:
            # The fetch's partitions settle at once, so a broker that fails fails them together:
            # one failed attempt (the first to fail sets the wait), not one doubling each.
            if self.backoff.ready():
                self._failed(exc, f"partition {partition}")
            if isinstance(exc, BROKEN) and self.outlet is not None:
                await self.outlet.renew(producer, exc)  # type: ignore[arg-type]
            return
        self._succeeded()

    async def _settle(self, partition: int, slot: Slot) -> None:
        if slot.letters and self.send_dead_letters is not None:
            await self.send_dead_letters(slot.letters)
        slot.letters = []
        if slot.owed or (slot.unsaved and self._checkpoint_due(slot)):
            if not await self._checkpoint(partition, slot):
                return
        # Whatever is in the outbox now is in a checkpoint: a restart would send it again.
        if slot.processor.has_outbox():
            await self.deliver(slot.processor)
            slot.unsaved = True  # the delivered outbox is forgotten in the next checkpoint

    def _failed(self, exc: BaseException, what: str) -> None:
        wait = self.backoff.failed()
        self.last_error = (f"{type(exc).__name__}: {exc}" if str(exc) else
                           f"not acknowledged within {SETTLE_SECONDS:.0f} s"
                           if isinstance(exc, TimeoutError) else type(exc).__name__)
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

