"""The Kafka worker: one Faust agent folds prediction logs into one `Engine` per partition.

Guarantees (DESIGN.md, "Exactly-once counts without trusting Faust's exactly_once"):

* Window state is exactly-once per record. For each batch and partition, the worker folds the
  new records in, sends the batch's dead letters and alerts, writes the partition's checkpoint
  (`monitor.checkpoint`, acks=all, awaited) and only then acknowledges the events to Faust,
  which commits offsets later. After a kill or a rebalance the engine is restored from the
  checkpoint and every record at or below the checkpointed offset is skipped.
* Alerts and dead letters are at-least-once: they are sent before the checkpoint, so a kill
  between the two sends them again after restart. Consumers dedupe alerts by `alert_id`
  (with `status`), dead letters by `source_partition`/`source_offset`.
* Metrics are written after the checkpoint, through a bounded buffer: at-most-once (a kill
  loses what is buffered), never duplicated by a replay.
* A batch that cannot be completed (Kafka refuses the checkpoint, a bug) crashes the worker
  without acknowledging the batch, so no record is skipped that was not checkpointed.

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
import math
import os
import socket
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import faust

from monitor.alerts import Alert
from monitor.app import create_app
from monitor.checkpoint import KafkaIO, ensure_topics
from monitor.config import Settings
from monitor.engine import Engine, EngineConfig, Evaluated
from monitor.errors import MonitorError
from monitor.metric_points import alert_points, report_points, service_point
from monitor.metrics_sink import Sink, make_sink
from monitor.profile_store import ProfileStore
from monitor.records import InvalidRecord, parse_messages

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


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def alert_json(alert: Alert) -> bytes:
    return json.dumps(_finite(alert.to_dict()), default=str, allow_nan=False).encode()


class DriftWorker:
    def __init__(self, settings: Settings, sink: Sink | None = None) -> None:
        self.settings = settings
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.app = create_app(settings)
        self.store = ProfileStore(settings.profiles)
        self.sink = sink if sink is not None else make_sink(
            settings.influx_url, token=settings.influx_token, org=settings.influx_org,
            bucket=settings.influx_bucket, max_buffered=settings.metrics_buffer)
        self.engine_config = EngineConfig(window_seconds=settings.window_seconds,
                                          grace_seconds=settings.grace_seconds,
                                          min_records=settings.min_records)
        self.kafka = KafkaIO(settings.bootstrap_servers, settings.state_topic,
                             client_id=settings.group)
        self.partitions: dict[int, PartitionState] = {}
        self.counters = Counters()
        self.failed = False
        self._last_refresh = time.monotonic()
        self._last_service = time.monotonic()
        self._last_service_records = 0

        self.topic = self.app.topic(settings.predictions_topic, value_type=bytes,
                                    key_type=bytes, value_serializer="raw",
                                    key_serializer="raw")
        self.agent = self.app.agent(self.topic, name="drift-monitor-predictions",
                                    concurrency=1)(self._consume)
        self.app.timer(TICK_SECONDS, name="drift-monitor-tick")(self._tick)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_before_shutdown.connect(self._on_shutdown)

    # -- the agent ------------------------------------------------------------------------------
    async def _consume(self, stream: faust.StreamT) -> None:
        # noack_take: events are acknowledged by us, after their checkpoint is written.
        async for events in stream.noack_take(self.settings.batch_size,
                                              within=TAKE_WITHIN_SECONDS):
            if self.failed:
                return
            try:
                await asyncio.shield(self._process(events))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._fail(exc)
                return
            for event in events:
                await stream.ack(event)

    async def _fail(self, exc: BaseException) -> None:
        """Stop without acknowledging: the uncheckpointed records are read again on restart."""
        self.failed = True
        log.critical("batch failed, stopping the worker without acknowledging it: %r", exc,
                     exc_info=exc)
        await self.app.crash(exc)

    async def _process(self, events: list[Any]) -> None:
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for event in events:
            by_partition[event.message.partition].append(event)
        for partition, group in by_partition.items():
            state = await self._partition(partition)
            async with state.lock:
                await self._process_partition(partition, state, group)

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
        fresh = [e for e in events if e.message.offset > state.offset]
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
        last_offset = max(e.message.offset for e in fresh)
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

    async def _send_dead_letter(self, event: Any, bad: InvalidRecord) -> Any:
        message = event.message
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
        if self._partition_lag(partition) != 0:
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
        try:
            assigned = [tp.partition for tp in self.app.consumer.assignment()
                        if tp.topic == self.settings.predictions_topic]
        except Exception:  # lag is informational; never fail the timer for it
            return None
        lags = [self._partition_lag(p) for p in assigned]
        return sum(lag for lag in lags if lag is not None)

    def _partition_lag(self, partition: int) -> int | None:
        """Records on `partition` beyond the last one processed, by the consumer's last known
        high watermark; None when no fetch has reported one yet."""
        try:
            consumer = self.app.consumer
            tp = next((tp for tp in consumer.assignment()
                       if tp.topic == self.settings.predictions_topic
                       and tp.partition == partition), None)
            highwater = consumer.highwater(tp) if tp is not None else None
        except Exception:
            return None
        if highwater is None:
            return None
        state = self.partitions.get(partition)
        position = state.offset + 1 if state is not None else 0
        return max(0, highwater - position)

    # -- lifecycle ------------------------------------------------------------------------------
    async def _on_revoked(self, sender: Any, revoked: Any = (), **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == self.settings.predictions_topic:
                state = self.partitions.pop(tp.partition, None)
                if state is not None:
                    log.info("partition %d revoked at offset %d", tp.partition, state.offset)

    async def _on_shutdown(self, sender: Any = None, **kwargs: Any) -> None:
        log.info("shutting down: %d records processed, %d dead letters, %d windows evaluated",
                 self.counters.records_processed, self.counters.dlq_messages,
                 self.counters.windows_evaluated)
        await self.kafka.stop()


def run_worker(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT (blocking); the metrics sink is flushed on the way out.
    Returns the exit status: 0 after a clean stop, non-zero after a crash."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the admin client chats at INFO
    log.info("starting drift-monitor worker: %s", settings.redacted())
    ensure_topics(settings.bootstrap_servers, settings.predictions_topic, settings.state_topic,
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
