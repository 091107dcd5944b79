"""The Kafka worker: a Faust app whose consumer task folds batches of prediction logs (aiokafka
`getmany`, one consumer group) into one `Engine` per partition.

Guarantees (DESIGN.md, "Exactly-once counts without trusting Faust's exactly_once"):

* Window state is exactly-once per record. For each batch and partition, the worker folds the
  new records in, sends the batch's dead letters and alerts and writes the partition's
  checkpoint (`monitor.service.checkpoints`, acks=all, awaited); consumer offsets are committed later,
  and only up to checkpointed offsets. After a kill or a rebalance the engine is restored from
  the checkpoint and every record at or below the checkpointed offset is skipped.
* Alerts and dead letters are at-least-once: they are sent before the checkpoint, so a kill
  between the two sends them again after restart. Consumers dedupe alerts by `alert_id`
  (with `status`), dead letters by `source_partition`/`source_offset`.
* Metrics are written after the checkpoint, through a bounded buffer: at-most-once (a kill
  loses what is buffered), never duplicated by a replay.
* A batch that cannot be completed (Kafka refuses the checkpoint, a bug) crashes the worker
  without committing past the last checkpoint, so no record is skipped that was not folded in.

Event time: a window closes when the partition's watermark (newest record time minus the grace)
passes its end. So that the last window closes when traffic stops, a timer moves the watermark
of a partition that has been idle for more than the grace to `now - grace` (wall clock).
The same timer reloads changed profiles every `PROFILE_REFRESH_SECONDS`.

A model's records should be keyed by model (one partition per model): each partition has its
own windows, and the metric points of one window carry no partition tag.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from monitor.errors import MonitorError
from monitor.ingest.records import InvalidRecord, parse_messages
from monitor.outputs.influx_sink import Sink, make_sink
from monitor.outputs.line_protocol import alert_points, report_points, service_point
from monitor.outputs.render import jsonable
from monitor.profile.store import ProfileStore
from monitor.service.app import create_app
from monitor.service.checkpoints import KafkaIO, ensure_topics
from monitor.service.settings import Settings
from monitor.stream.alerts import Alert
from monitor.stream.engine import Engine, EngineConfig, Evaluated

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
PROFILE_REFRESH_SECONDS = 3.0
SERVICE_POINT_SECONDS = 10.0
TAKE_WITHIN_SECONDS = 0.5


@dataclass
class PartitionState:
    engine: Engine
    offset: int = -1  # highest offset folded into `engine` and checkpointed
    last_record: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Counters:
    records_processed: int = 0
    invalid_records: int = 0
    dlq_messages: int = 0
    windows_evaluated: int = 0
    skipped_redelivered: int = 0


def alert_json(alert: Alert) -> bytes:
    return json.dumps(jsonable(alert.to_dict()), default=str, allow_nan=False).encode()


class DriftWorker:
    def __init__(self, settings: Settings, sink: Sink | None = None) -> None:
        self.settings = settings
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.app = create_app(settings)
        self.store = ProfileStore(settings.profiles)
        self.sink = sink if sink is not None else make_sink(
            settings.influx_url, token=settings.influx_token, org=settings.influx_org,
            bucket=settings.influx_bucket, max_buffered=settings.metrics_buffer,
            ca_file=settings.influx_ca_file)
        self.engine_config = EngineConfig(window_seconds=settings.window_seconds,
                                          grace_seconds=settings.grace_seconds,
                                          min_records=settings.min_records)
        self.kafka = KafkaIO(settings.kafka, settings.state_topic,
                             client_id=settings.group)
        self.partitions: dict[int, PartitionState] = {}
        self.counters = Counters()
        self.failed = False
        self._last_refresh = time.monotonic()
        self._last_service = time.monotonic()
        self._last_service_records = 0

        self.consumer: AIOKafkaConsumer | None = None
        self._fetched: set[int] = set()
        self._last_commit = time.monotonic()
        self.app.task(self._consume)
        self.app.timer(TICK_SECONDS, name="drift-monitor-tick")(self._tick)
        self.app.on_before_shutdown.connect(self._on_shutdown)

    # -- the consumer ---------------------------------------------------------------------------
    async def _consume(self) -> None:
        """Fetch the predictions topic in batches (aiokafka `getmany`) and fold each partition's
        records into its engine. Faust's per-message stream tops out at about 2,400 messages/s
        on this machine; `getmany` delivers about 200,000."""
        settings = self.settings
        consumer = self.consumer = AIOKafkaConsumer(
            **settings.kafka.aiokafka(), group_id=settings.group,
            client_id=f"{settings.group}-{self.name}", enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000, max_partition_fetch_bytes=8 << 20,
            fetch_max_bytes=32 << 20)
        consumer.subscribe([settings.predictions_topic], listener=_Rebalance(self))
        await consumer.start()
        try:
            while not self.failed:
                batches = await consumer.getmany(timeout_ms=int(TAKE_WITHIN_SECONDS * 1000),
                                                 max_records=settings.batch_size)
                # Fetched but not yet folded in: the idle timer must not close these windows.
                self._fetched = {tp.partition for tp in batches}
                try:
                    for tp, records in batches.items():
                        await asyncio.shield(self._process(tp.partition, records))
                        self._fetched.discard(tp.partition)
                    await self._commit_offsets()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await self._fail(exc)
                    return
        finally:
            self.consumer = None
            await consumer.stop()

    async def _commit_offsets(self, *, force: bool = False) -> None:
        """Commit the checkpointed offsets now and then. Only an optimisation: the checkpoints
        carry the guarantee, and a record at or below one is skipped when it comes again."""
        now = time.monotonic()
        consumer = self.consumer
        if consumer is None or (not force and now - self._last_commit
                                < self.settings.commit_interval_seconds):
            return
        self._last_commit = now
        offsets = {TopicPartition(self.settings.predictions_topic, p): s.offset + 1
                   for p, s in self.partitions.items() if s.offset >= 0 and self._owns(p)}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # e.g. a rebalance in progress: the next commit catches up
            log.warning("offset commit skipped: %r", exc)

    async def _fail(self, exc: BaseException) -> None:
        """Stop without acknowledging: the uncheckpointed records are read again on restart."""
        self.failed = True
        log.critical("batch failed, stopping the worker without acknowledging it: %r", exc,
                     exc_info=exc)
        await self.app.crash(exc)

    async def _process(self, partition: int, records: list[Any]) -> None:
        if not self._owns(partition):
            return  # revoked while this batch was fetched: the new owner reads these records
        state = await self._partition(partition)
        async with state.lock:
            if self.partitions.get(partition) is state:
                await self._process_partition(partition, state, records)

    def _owns(self, partition: int) -> bool:
        consumer = self.consumer
        tp = TopicPartition(self.settings.predictions_topic, partition)
        return consumer is not None and tp in consumer.assignment()

    async def _partition(self, partition: int) -> PartitionState:
        state = self.partitions.get(partition)
        if state is not None:
            return state
        engine = Engine(self.store, self.engine_config)
        checkpoint = await self.kafka.load(partition)
        offset = -1
        if checkpoint is not None:
            engine.restore(checkpoint["engine"])
            offset = int(checkpoint["offset"])
            log.info("partition %d: restored checkpoint at offset %d (%d models, watermark %s)",
                     partition, offset, len(engine.models), engine.watermark)
        else:
            log.info("partition %d: no checkpoint, starting empty", partition)
        state = self.partitions[partition] = PartitionState(engine, offset)
        return state

    async def _process_partition(self, partition: int, state: PartitionState,
                                 events: list[Any]) -> None:
        fresh = [e for e in events if e.offset > state.offset]
        skipped = len(events) - len(fresh)
        if skipped:
            self.counters.skipped_redelivered += skipped
            log.info("partition %d: skipped %d redelivered records at or below checkpoint "
                     "offset %d", partition, skipped, state.offset)
        if not fresh:
            return
        state.last_record = time.monotonic()
        raws = [e.value if isinstance(e.value, bytes) else b"" if e.value is None
                else bytes(e.value) for e in fresh]
        batch = parse_messages(raws)
        futures = []
        if batch.invalid:
            futures += await self._dead_letters(fresh, raws)
        out = state.engine.ingest(batch)
        evaluated, alerts = self._split(out)
        futures += [await self._send_alert(a) for a in alerts]
        for future in futures:
            await future
        last_offset = max(e.offset for e in fresh)
        await self.kafka.save(partition, last_offset, state.engine.to_state())
        state.offset = last_offset
        self.counters.records_processed += batch.valid_count
        self.counters.invalid_records += len(batch.invalid)
        self._write_metrics(partition, state, evaluated, alerts)

    async def _dead_letters(self, events: list[Any], raws: list[bytes]) -> list[Any]:
        """Each invalid record to the dead-letter topic, with its source coordinates (the
        rare path: each message is parsed again alone to find which ones were bad)."""
        futures = []
        for event, raw in zip(events, raws, strict=True):
            for bad in parse_messages([raw]).invalid:
                futures.append(await self._send_dead_letter(event, bad))
        return futures

    async def _send_dead_letter(self, message: Any, bad: InvalidRecord) -> Any:
        headers = [("reason", bad.reason.encode()),
                   ("source_topic", str(message.topic).encode()),
                   ("source_partition", str(message.partition).encode()),
                   ("source_offset", str(message.offset).encode())]
        if bad.model:
            headers.append(("model", bad.model.encode()))
        self.counters.dlq_messages += 1
        # The message's own bytes; for a bad element of an array, that element alone (the
        # array's good records were counted and must not be replayed with it).
        return await self.kafka.send(self.settings.dlq_topic, bad.raw, key=message.key,
                                     headers=headers)

    async def _send_alert(self, alert: Alert) -> Any:
        log.info("alert %s %s %s/%s %s %s: %s", alert.status, alert.severity, alert.model,
                 alert.version, alert.feature or "-", alert.check, alert.message)
        return await self.kafka.send(self.settings.alerts_topic, alert_json(alert),
                                     key=alert.model.encode())

    @staticmethod
    def _split(out: list[Evaluated | Alert]) -> tuple[list[Evaluated], list[Alert]]:
        evaluated = [o for o in out if isinstance(o, Evaluated)]
        alerts = [o for o in out if isinstance(o, Alert)]
        for e in evaluated:
            alerts.extend(e.alerts)
        return evaluated, alerts

    def _write_metrics(self, partition: int, state: PartitionState,
                       evaluated: list[Evaluated], alerts: list[Alert]) -> None:
        lines: list[str] = []
        for e in evaluated:
            r = e.report
            self.counters.windows_evaluated += 1
            log.info("window closed: partition %d model %s version %s [%s, %s) records %d "
                     "invalid %d late %d severity %s", partition, r.model, r.version, r.start,
                     r.end, r.records, r.invalid, r.late, r.severity)
            model_state = state.engine.models.get((r.model, r.version))
            firing = (sum(1 for k in model_state.tracker.open if k[:2] == (r.model, r.version))
                      if model_state is not None else None)
            lines += report_points(r, self.store(r.model, r.version), alerts_firing=firing)
        lines += alert_points(alerts)
        if lines:
            self.sink.write(lines)

    # -- the timer ------------------------------------------------------------------------------
    async def _tick(self) -> None:
        if self.failed:
            return
        now = time.monotonic()
        if now - self._last_refresh >= PROFILE_REFRESH_SECONDS:
            self._last_refresh = now
            for profile in self.store.refresh():
                log.info("profile loaded: %s version %s (%s)", profile.model, profile.version,
                         profile.profile_id)
        try:
            for partition, state in list(self.partitions.items()):
                await self._advance_idle(partition, state)
        except Exception as exc:
            await self._fail(exc)
            return
        if now - self._last_service >= SERVICE_POINT_SECONDS:
            self._write_service_point(now)

    async def _advance_idle(self, partition: int, state: PartitionState) -> None:
        """Close a quiet partition's windows by wall clock. Quiet means no record for longer
        than the grace *and* nothing left to read: a partition working through a backlog is
        slow, not idle, and closing its windows early would turn its records into late ones."""
        grace = self.settings.grace_seconds
        if state.lock.locked() or time.monotonic() - state.last_record <= grace:
            return
        if partition in self._fetched or await self._unread(partition) != 0:
            return
        async with state.lock:
            if self.partitions.get(partition) is not state:
                return  # revoked meanwhile
            out = state.engine.advance(time.time() - grace)
            if not out:
                return
            evaluated, alerts = self._split(out)
            futures = [await self._send_alert(a) for a in alerts]
            for future in futures:
                await future
            # Closing windows changed the state: checkpoint it, so a restart does not
            # evaluate (and report) the same windows twice.
            await self.kafka.save(partition, state.offset, state.engine.to_state())
            self._write_metrics(partition, state, evaluated, alerts)

    def _write_service_point(self, now: float) -> None:
        elapsed = now - self._last_service
        processed = self.counters.records_processed
        rate = (processed - self._last_service_records) / elapsed if elapsed > 0 else 0.0
        self._last_service, self._last_service_records = now, processed
        stats: dict[str, Any] = {
            "records_processed": processed,
            "records_per_second": rate,
            "invalid_records": self.counters.invalid_records,
            "dlq_messages": self.counters.dlq_messages,
            "late_records": sum(s.engine.stats.late for s in self.partitions.values()),
            "consumer_lag": self._consumer_lag(),
            "windows_evaluated": self.counters.windows_evaluated,
            **self.sink.stats(),
        }
        self.sink.write([service_point(self.name, stats)])

    def _consumer_lag(self) -> int | None:
        """Records not yet processed on this worker's partitions (None when unknown)."""
        if self.consumer is None:
            return None
        assigned = [tp.partition for tp in self.consumer.assignment()]
        lags = [self._partition_lag(p) for p in assigned]
        return sum(lag for lag in lags if lag is not None)

    async def _unread(self, partition: int) -> int | None:
        """Records on `partition` past the consumer's position (transaction markers and
        compaction gaps do not count, unlike with the last processed offset)."""
        consumer = self.consumer
        tp = TopicPartition(self.settings.predictions_topic, partition)
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

    def _partition_lag(self, partition: int) -> int | None:
        """Records on `partition` beyond the last one processed, by the consumer's last known
        high watermark; None when no fetch has reported one yet."""
        consumer = self.consumer
        if consumer is None:
            return None
        tp = TopicPartition(self.settings.predictions_topic, partition)
        highwater = consumer.highwater(tp) if tp in consumer.assignment() else None
        if highwater is None:
            return None
        state = self.partitions.get(partition)
        position = state.offset + 1 if state is not None else 0
        return max(0, highwater - position)

    # -- lifecycle ------------------------------------------------------------------------------
    async def on_revoked(self, revoked: Any) -> None:
        """Partitions moving to another worker: commit, then forget their engines (the new
        owner restores them from the checkpoints)."""
        await self._commit_offsets(force=True)
        for tp in revoked:
            state = self.partitions.get(tp.partition)
            if state is None:
                continue
            async with state.lock:  # let a batch or a timer step on it finish first
                self.partitions.pop(tp.partition, None)
            log.info("partition %d revoked at offset %d", tp.partition, state.offset)

    async def _on_shutdown(self, sender: Any = None, **kwargs: Any) -> None:
        log.info("shutting down: %d records processed, %d dead letters, %d windows evaluated",
                 self.counters.records_processed, self.counters.dlq_messages,
                 self.counters.windows_evaluated)
        await self.kafka.stop()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: DriftWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.worker.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


def run_worker(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT (blocking); the metrics sink is flushed on the way out.
    Returns the exit status: 0 after a clean stop, non-zero after a crash."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the admin client chats at INFO
    log.info("starting drift-monitor worker: %s", settings.redacted())
    ensure_topics(settings.kafka, settings.predictions_topic, settings.state_topic,
                  others=(settings.alerts_topic, settings.dlq_topic))
    worker = DriftWorker(settings)
    log.info("%d profiles loaded from %s", len(worker.store), settings.profiles)
    faust_worker = faust.Worker(worker.app, loglevel="INFO")
    code = 0
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (1 if exit_.code else 0)
    finally:
        worker.sink.close()
    if worker.failed and code == 0:
        code = 1
    return code


def main() -> int:
    try:
        settings = Settings.from_env()
        return run_worker(settings)
    except MonitorError as exc:
        log.error("error: %s", exc)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main())
