"""The Kafka worker: a Faust app hosting both stages of the engine (docs/architecture.md).

* Stage one consumes the predictions topic (consumer group `DRIFT_MONITOR_GROUP`) in batches and
  folds each partition's records into partial windows (`FoldProcessor`); closed partials and
  watermarks go to the partials topic, routed by model.
* Stage two consumes the partials topic (group `<group>.windows`), merges every partition's
  partial of a window and evaluates it once (`MergeProcessor`); alerts go to the alerts topic,
  metric points to the store.
Both checkpoint their state with the input offsets it covers (`StateStore`), so no record is
lost or counted twice across a kill, a restart or a rebalance. Any number of workers may run
with the same settings: they share the partitions of both topics.

A worker started before its predictions topic exists waits for it (saying so once a minute, not
ready meanwhile); a broker or metrics store that goes away is retried with backoff while the
process keeps running. The Faust web server answers `/healthz`, `/ready` and `/metrics`
(`monitor.service.http`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from monitor.drift import scipy_stats
from monitor.errors import MonitorError, ServiceError
from monitor.outputs.influx_sink import make_writer
from monitor.outputs.line_protocol import service_point
from monitor.profile import language
from monitor.profile.store import ProfileStore
from monitor.service import allocator, frame_reader
from monitor.service.app import create_app
from monitor.service.health import PROBE_SECONDS, BrokerProbe, kafka_connected, stage_reasons
from monitor.service.http import add_endpoints, listen_port
from monitor.service.logs import limit_repeats
from monitor.service.outlet import Outlet
from monitor.service.publish import Publisher
from monitor.service.raw_fetch import read_raw
from monitor.service.runner import StageRunner
from monitor.service.settings import Settings
from monitor.service.stage_one import FoldProcessor
from monitor.service.stage_two import MergeProcessor
from monitor.service.state_store import Binding, Loaded, StateStore
from monitor.service.topics import (
    MAX_STATE_BYTES,
    TopicMissing,
    Topics,
    describe_topic,
    ensure_topics,
)
from monitor.stream.config import EngineConfig
from monitor.stream.folder import PartitionFolder
from monitor.stream.merger import WindowMerger
from monitor.stream.replay import GC_THRESHOLD

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
PROFILE_REFRESH_SECONDS = 3.0
SERVICE_POINT_SECONDS = 10.0
# A produce request not acknowledged within this fails (and is tried again by the runner):
# shorter than aiokafka's 40 s, so that a broker outage shows in the log and /ready soon.
PRODUCE_TIMEOUT_MS = 15_000
TOPIC_POLL_SECONDS = 2.0  # how often a missing predictions topic is looked for
TOPIC_LOG_SECONDS = 60.0  # and how often the wait is logged
STREAM_CHECK_SECONDS = 10.0  # how often the predictions topic's id is compared with the start's
# A checkpoint reader reads ranges it knows to exist: the broker need not wait for more (500 ms
# by default), which would hold up its next request (a seek, the next partition's offsets).
READER_FETCH_WAIT_MS = 10
# The stages' consumers: how long a fetch waits at the broker for records not there yet.
FETCH_WAIT_MS = 100


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(window_seconds=settings.window_seconds,
                        grace_seconds=settings.grace_seconds, min_records=settings.min_records,
                        idle_seconds=settings.idle_seconds,
                        max_future_seconds=settings.max_future_seconds or None,
                        retention_seconds=settings.retention_seconds,
                        persistent_windows=settings.persistent_windows)


def route(partitions: int):  # type: ignore[no-untyped-def]
    """Partials partition of a model: every version of a model meets in one place."""
    return lambda model: zlib.crc32(model.encode()) % partitions


class DriftWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics: Topics | None = None
        self.stream_id = ""
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.app = create_app(settings)
        self.store = ProfileStore(settings.profiles)
        self.writer = make_writer(settings.influx_url, token=settings.influx_token,
                                  org=settings.influx_org, bucket=settings.influx_bucket,
                                  ca_file=settings.influx_ca_file)
        self.config = engine_config(settings)
        self.outlet: Outlet | None = None  # the producer of everything the worker sends
        self.one: StageRunner | None = None
        self.two: StageRunner | None = None
        self.failed = False
        self.publish: Publisher | None = None
        self.probe = BrokerProbe()
        self.waiting_for = ""  # what the start waits for (the predictions topic)
        self._last_refresh = time.monotonic()
        self._last_service = -SERVICE_POINT_SECONDS  # the first tick writes one (store probe)
        self._last_records = 0
        self._ticks: dict[str, asyncio.Task[None]] = {}
        self._last_stream_check = time.monotonic()
        self._growing = asyncio.Lock()
        self._crashing: asyncio.Task[None] | None = None  # the crash of a recreated topic
        # Stage one's CPU work (folding, encoding its checkpoints) on one thread, stage two's
        # (merging, evaluating windows) on another: evaluating a window does not hold up the
        # folding of the next records (the GIL is free most of the time: numpy, the decoder
        # and the sockets let go of it). One thread per stage keeps the allocator's memory in
        # few arenas (a pool of threads makes one each).
        self.cpu = ThreadPoolExecutor(1, thread_name_prefix="drift-cpu")
        self.cpu_two = ThreadPoolExecutor(1, thread_name_prefix="drift-merge")
        # Stage one parses the next fetch on a thread of its own while the CPU thread folds
        # the previous one (the compiled decoder lets the other threads run meanwhile).
        self.ahead = ThreadPoolExecutor(1, thread_name_prefix="drift-parse")
        self.app.task(self._main)
        self.app.timer(TICK_SECONDS, name="drift-monitor-tick")(self._tick)
        self.app.timer(PROBE_SECONDS, name="drift-monitor-broker-probe")(self._probe)
        self.app.on_before_shutdown.connect(self._on_shutdown)
        add_endpoints(self.app, worker=self.name, snapshot=self.snapshot,
                      not_ready=self.not_ready)

    # -- start ----------------------------------------------------------------------------------
    async def _main(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail(exc)

    async def _run(self) -> None:
        s = self.settings
        frame_reader.install()  # before any Kafka client of the worker connects
        log.info("HTTP: /healthz, /ready and /metrics on http://%s:%d", s.http_bind, s.http_port)
        topics = self.topics = await self._wait_for_topics()
        self.stream_id = topics.predictions.topic_id  # what the stages' offsets belong to
        # No linger: every write the stages make is awaited (a checkpoint's models, then its
        # header, then the outbox), so 5 ms of linger cost 15 ms per window closed on each
        # partition, with its fold stalled; writes made while one is in flight still batch.
        outlet = self.outlet = Outlet(lambda: AIOKafkaProducer(
            **s.kafka.aiokafka(), client_id=f"{s.group}-{self.name}-out", acks="all",
            enable_idempotence=True, linger_ms=0, max_request_size=MAX_STATE_BYTES,
            request_timeout_ms=PRODUCE_TIMEOUT_MS))
        publish = self.publish = Publisher(outlet, self.writer, s)
        partitions = topics.predictions.partitions
        one_binding = Binding(s.predictions_topic, topics.predictions.topic_id, s.group,
                              partitions)
        two_binding = Binding(s.topic("partials"), topics.partials.topic_id,
                              f"{s.group}.windows", topics.partials_partitions)
        one_state = StateStore(outlet, lambda: self._reader("state"), s.topic("state"),
                               one_binding, self.cpu, grow=self._grow_state)
        two_state = StateStore(outlet, lambda: self._reader("windows"), s.topic("windows"),
                               two_binding, self.cpu_two)
        # The producer and each stage's first checkpoint reader connect at once.
        await asyncio.gather(outlet.start(), one_state.open(), two_state.open())
        if read_raw(s.predictions_topic):
            log.info("stage one reads its fetches in place (uncompressed record batches)")
        self.one = StageRunner(
            "stage one", s.predictions_topic, self._consumer(s.group), one_state,
            self._new_fold, publish.partials, publish.dead_letters,  # type: ignore[arg-type]
            batch_size=s.batch_size, checkpoint_interval=s.checkpoint_interval_seconds,
            commit_interval=s.commit_interval_seconds, hold_after_gap=s.idle_seconds,
            executor=self.cpu, ahead=self.ahead, outlet=outlet)
        self.one.verify_stream = self._same_stream
        self.two = StageRunner(
            "stage two", s.topic("partials"), self._consumer(f"{s.group}.windows"), two_state,
            self._new_merge, publish.windows,  # type: ignore[arg-type]
            batch_size=s.batch_size, checkpoint_interval=s.checkpoint_interval_seconds,
            commit_interval=s.commit_interval_seconds, executor=self.cpu_two, outlet=outlet)
        await asyncio.gather(self.one.run(), self.two.run())

    async def _wait_for_topics(self) -> Topics:
        """Find the predictions topic (and create the internal ones); while it does not exist,
        look again every few seconds and say so once a minute. Cancelled by SIGTERM."""
        s = self.settings
        said = -TOPIC_LOG_SECONDS
        started = time.monotonic()
        while True:
            try:
                topics = await self._ensure_topics()
            except TopicMissing as exc:
                self.waiting_for = f"{exc}: waiting for it"
                if time.monotonic() - said >= TOPIC_LOG_SECONDS:
                    said = time.monotonic()
                    log.warning("%s; waiting for it (looking every %.0f s, waited %.0f s so "
                                "far)", exc, TOPIC_POLL_SECONDS, said - started)
                await asyncio.sleep(TOPIC_POLL_SECONDS)
                continue
            if self.waiting_for:
                log.info("predictions topic %s found after %.0f s", s.predictions_topic,
                         time.monotonic() - started)
            self.waiting_for = ""
            return topics

    async def _ensure_topics(self) -> Topics:
        s = self.settings
        admin = {**s.kafka.kafka_python(), "client_id": f"{s.group}-admin"}
        others = tuple(t for t in (s.alerts_topic, s.dlq_topic, s.reports_topic) if t)
        return await asyncio.to_thread(
            ensure_topics, admin, s.predictions_topic,
            state=(s.topic("state"), s.topic("windows")), partials=s.topic("partials"),
            others=others)

    async def _grow_state(self, partition: int) -> None:
        """Before stage one loads `partition`: a partition added to the predictions topic while
        the worker runs needs its partition of the state topic, which `ensure_topics` adds (as
        at a restart); the producer then learns of it."""
        assert self.topics is not None
        async with self._growing:  # partitions are loaded at once: one of them grows the topic
            if partition < self.topics.predictions.partitions:
                return
            self.topics = await self._ensure_topics()
            if self.outlet is not None:
                await self.outlet.producer.client.force_metadata_update()

    def _consumer(self, group: str) -> dict[str, Any]:
        s = self.settings
        return {**s.kafka.aiokafka(), "group_id": group,
                "client_id": f"{group}-{self.name}", "enable_auto_commit": False,
                "auto_offset_reset": "earliest", "session_timeout_ms": 10_000,
                "heartbeat_interval_ms": 3_000, "max_partition_fetch_bytes": 8 << 20,
                # aiokafka has one fetch per broker in flight: while it waits at the broker for
                # partitions that are caught up, a partition whose records were still being
                # folded when it went out is not asked for (aiokafka: up to 500 ms).
                "fetch_max_wait_ms": FETCH_WAIT_MS,
                # New partitions of a topic are noticed within 30 s (aiokafka: 5 minutes).
                "metadata_max_age_ms": 30_000,
                "fetch_max_bytes": 32 << 20}

    async def _reader(self, role: str) -> AIOKafkaConsumer:
        """A checkpoint reader of the `role` state topic (`StateStore` makes them)."""
        reader = AIOKafkaConsumer(
            **self.settings.kafka.aiokafka(), group_id=None,
            client_id=f"{self.settings.group}-{self.name}-{role}", enable_auto_commit=False,
            max_partition_fetch_bytes=MAX_STATE_BYTES, fetch_max_bytes=MAX_STATE_BYTES,
            fetch_max_wait_ms=READER_FETCH_WAIT_MS)
        try:
            await reader.start()
        except BaseException:
            await reader.stop()
            raise
        return reader

    def _new_fold(self, partition: int, loaded: Loaded | None) -> FoldProcessor:
        assert self.topics is not None
        folder = PartitionFolder(partition, self.store, self.config,
                                 sources=self.input_partitions(),
                                 stream=self.topics.predictions.topic_id)
        processor = FoldProcessor(partition, folder,
                                  partials_partitions=self.topics.partials_partitions,
                                  route=route(self.topics.partials_partitions), loaded=loaded,
                                  max_message_bytes=self.settings.max_message_bytes,
                                  sources=self.input_partitions)
        for warning in processor.warnings:
            log.warning("partition %d: %s", partition, warning)
        return processor

    def input_partitions(self) -> int:
        """Partitions of the predictions topic now (partitions can be added while running)."""
        assert self.topics is not None
        known = self.one.partition_count() if self.one is not None else None
        return max(known or 0, self.topics.predictions.partitions)

    def _new_merge(self, partition: int, loaded: Loaded | None) -> MergeProcessor:
        merger = WindowMerger(self.store, self.config, profile_by_id=self.store.by_id)
        return MergeProcessor(partition, merger, max_points=self.settings.metrics_buffer,
                              profiles=self.store, loaded=loaded,
                              reports=bool(self.settings.reports_topic))

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
        # Each stage ticks in a task of its own: a checkpoint waiting for a broker that is
        # down holds up neither the other stage nor the service point.
        for runner in (self.one, self.two):
            task = self._ticks.get(runner.name) if runner is not None else None
            if runner is not None and (task is None or task.done()):
                self._ticks[runner.name] = asyncio.create_task(self._tick_stage(runner))
        if self.publish is not None and now - self._last_service >= SERVICE_POINT_SECONDS:
            await self._write_service_point(now)
        task = self._ticks.get("stream")
        if (self.topics is not None and now - self._last_stream_check >= STREAM_CHECK_SECONDS
                and (task is None or task.done())):
            self._last_stream_check = now
            self._ticks["stream"] = asyncio.create_task(self._same_stream())

    async def _same_stream(self) -> bool:
        """Whether the predictions topic is still the one the worker started on. Deleted and
        created again under the running worker (by hand, or by a broker that creates topics a
        client asks for), the stages' offsets and checkpoints belong to the old topic: the new
        one's first records would be skipped as already read and its lag would read 0. Asked
        every `STREAM_CHECK_SECONDS` and before stage one takes any partition assigned to it
        (a topic recreated comes with a rebalance): the worker stops with one line; started
        again, it finds the checkpoints bound to the old topic id, ignores them and reads the
        new topic from its beginning. True when it cannot tell (a broker down)."""
        assert self.topics is not None
        s = self.settings
        admin = {**s.kafka.kafka_python(), "client_id": f"{s.group}-admin"}
        try:
            now = await asyncio.to_thread(describe_topic, admin, s.predictions_topic)
        except Exception:  # a broker down: the probe says so; look again later
            return True
        before = self.stream_id
        if now is None or not now.topic_id or not before or now.topic_id == before:
            return True
        log.error("error: the predictions topic %s was deleted and created again while the "
                  "worker ran (topic id %s, now %s): stopping; started again, the worker reads "
                  "the new topic from its beginning", s.predictions_topic, before, now.topic_id)
        self.failed = True
        # A task of its own: asked in a rebalance listener, the crash must not wait for the
        # rebalance to end, and the shutdown it causes cancels the ticks.
        self._crashing = asyncio.create_task(self.app.crash(
            ServiceError(f"predictions topic {s.predictions_topic} recreated")))
        return False

    async def _tick_stage(self, runner: StageRunner) -> None:
        try:
            await runner.tick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail(exc)

    async def _probe(self) -> None:
        if self.outlet is not None and not self.failed:
            await self.probe.ask(self.outlet.producer.client)

    async def _write_service_point(self, now: float) -> None:
        elapsed, self._last_service = now - self._last_service, now
        stats = await self.snapshot()
        records = stats["records_processed"]
        stats["records_per_second"] = ((records - self._last_records) / elapsed
                                       if 0 < elapsed < 2 * SERVICE_POINT_SECONDS else 0)
        self._last_records = records
        if self.publish is not None:
            await self.publish.points([service_point(self.name, stats)])

    def stats(self) -> dict[str, Any]:
        """The worker's counters since it started, and its levels now (no I/O)."""
        out: dict[str, Any] = {}
        for runner in (self.one, self.two):
            if runner is not None:
                for key, value in runner.stats().items():
                    out[key] = out.get(key, 0) + value
        if self.one is not None:
            out["checkpoint_bytes"] = self.one.checkpoint_bytes
        if self.publish is not None:
            out.update(self.publish.counters)
        out.setdefault("records_processed", 0)
        return out

    async def snapshot(self) -> dict[str, Any]:
        """`stats()` with the lags and the health: the drift_service point and /metrics."""
        out = self.stats()
        runners = (self.one, self.two)
        out["consumer_lag"] = await self.one.lag() if self.one is not None else None
        out["partials_lag"] = await self.two.lag() if self.two is not None else None
        out["kafka_failures"] = sum(r.backoff.total_failures for r in runners if r is not None)
        out["partitions_assigned"] = sum(len(r.assigned()) for r in runners if r is not None)
        out["kafka_connected"] = int(kafka_connected(self.probe, runners))
        out["metrics_store_up"] = int(self.publish.store_up) if self.publish else None
        out["ready"] = int(not await self.not_ready())
        return out

    async def not_ready(self) -> list[str]:
        """Why the worker is not doing its job now (empty: ready)."""
        if self.failed:
            return ["the worker stopped after an error"]
        if self.waiting_for:
            return [self.waiting_for]
        reasons = stage_reasons(self.one, "stage one") + stage_reasons(self.two, "stage two")
        if len(self.store) == 0:
            reasons.append(f"no profiles in {self.settings.profiles}")
        if self.probe.up is False:
            reasons.append(f"Kafka broker not reachable ({self.probe.error})")
        if self.publish is not None and not self.publish.store_up:
            reasons.append(f"metrics store not reachable ({self.publish.store_error}); "
                           f"{self.stats().get('metric_points_buffered', 0)} points wait "
                           f"in the outbox")
        return reasons

    # -- lifecycle ------------------------------------------------------------------------------
    async def _fail(self, exc: BaseException) -> None:
        """Stop without acknowledging: what was not checkpointed is read again on restart."""
        self.failed = True
        log.critical("stopping the worker: %r", exc, exc_info=exc)
        await self.app.crash(exc)

    async def _on_shutdown(self, sender: Any = None, **kwargs: Any) -> None:
        for task in self._ticks.values():
            task.cancel()  # what a tick owed stays owed: the final checkpoint below covers it
        await asyncio.gather(*self._ticks.values(), return_exceptions=True)
        broker_up = kafka_connected(self.probe, (self.one, self.two))
        for runner in (self.one, self.two):
            if runner is not None:
                try:
                    await runner.stop(broker_up=broker_up)
                except Exception as exc:  # a clean stop is best effort; the state is safe
                    log.warning("stopping %s: %r", runner.name, exc)
        if self.outlet is not None:
            await self.outlet.stop()
        self.cpu.shutdown(wait=False)
        self.cpu_two.shutdown(wait=False)
        self.ahead.shutdown(wait=False, cancel_futures=True)
        log.info("shutting down: %s", self.stats())


def run_worker(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT (blocking). Returns 0 after a clean stop, 1 after a crash."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the admin client chats at INFO
    limit_repeats()  # a broker down: one line per kind of client error and 30 s, not thousands
    log.info("starting drift-monitor worker: %s", settings.redacted())
    # The probes' port, then the brokers: a wrong setting is one clear line now, not a hang later.
    settings = replace(settings, http_port=listen_port(settings.http_bind, settings.http_port))
    settings.kafka.check()
    # A batch allocates hundreds of thousands of short-lived objects, and so do the imports of
    # the start: collect less often (monitor.stream.replay does the same). What the start made
    # is frozen once it is all in: never walked again.
    gc.set_threshold(max(gc.get_threshold()[0], GC_THRESHOLD), *gc.get_threshold()[1:])
    # Fetch responses of up to 32 MB, and the records copied out of them, from the heap rather
    # than from fresh mappings the kernel zeroes page by page (monitor/service/allocator.py).
    allocator.keep_large_buffers()
    worker = DriftWorker(settings)
    log.info("%d profiles loaded from %s", len(worker.store), settings.profiles)
    # What the first window's evaluation needs, loaded before Faust starts: scipy.stats (most
    # of a second of imports) and, for text features, the language model (a profile with text
    # loaded later loads it at its first window). Loaded in threads beside the first
    # fetches instead, they held the event loop up at each of its socket reads (a thread
    # importing holds the GIL) and cost the first windows more than they take here (README,
    # Measured). After DriftWorker(): Faust's registrations there look up the file of every
    # module imported so far.
    scipy_stats.stats()
    if worker.store.has_text():
        language.load()
    gc.freeze()
    faust_worker = faust.Worker(worker.app, loglevel="INFO")
    code = 0
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (1 if exit_.code else 0)
    finally:
        worker.writer.close()
        log.info("metrics writer closed")
    if worker.failed and code == 0:
        code = 1
    return code


def main() -> int:
    try:
        return run_worker(Settings.from_env())
    except MonitorError as exc:
        log.error("error: %s", exc)
        return exc.exit_status


if __name__ == "__main__":
    sys.exit(main())
