"""What the worker sends, after the checkpoint that makes it repeatable: dead letters, partials
and watermarks, alerts, window reports, metric points (asynchronous I/O only)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from monitor.outputs.influx_sink import PointWriter, StoreError
from monitor.service.settings import Settings
from monitor.service.stage_one import DeadLetter, FoldProcessor
from monitor.service.stage_two import MergeProcessor

log = logging.getLogger(__name__)

STORE_BACKOFF_SECONDS = (1.0, 30.0)  # first and longest wait after a failed metrics write


class Publisher:
    def __init__(self, producer: AIOKafkaProducer, writer: PointWriter,
                 settings: Settings) -> None:
        self.producer = producer
        self.writer = writer
        self.settings = settings
        self.counters = {"dlq_messages": 0, "metric_write_failures": 0, "alerts_sent": 0}
        self.store_up = True
        self._retry_at = 0.0
        self._backoff = STORE_BACKOFF_SECONDS[0]

    async def _send_all(self, topic: str, messages: Iterable[tuple[bytes | None, bytes]],
                        **kwargs: Any) -> None:
        """Queue every message, then wait until the broker has each of them."""
        futures = [await self.producer.send(topic, value, key=key, **kwargs)
                   for key, value in messages]
        for future in futures:
            await future

    async def dead_letters(self, letters: list[DeadLetter]) -> None:
        futures = []
        for letter in letters:
            record = letter.record
            headers = [("reason", letter.reason.encode()),
                       ("source_topic", str(record.topic).encode()),
                       ("source_partition", str(record.partition).encode()),
                       ("source_offset", str(record.offset).encode())]
            if letter.model:
                headers.append(("model", letter.model.encode()))
            futures.append(await self.producer.send(self.settings.dlq_topic, letter.raw,
                                                    key=record.key, headers=headers))
        for future in futures:
            await future
        self.counters["dlq_messages"] += len(letters)

    async def partials(self, processor: FoldProcessor) -> None:
        topic = self.settings.topic("partials")
        futures = [await self.producer.send(topic, m.value, key=m.key, partition=m.partition)
                   for m in processor.outbox()]
        for future in futures:
            await future
        processor.delivered()

    async def windows(self, processor: MergeProcessor) -> None:
        alerts = processor.alerts()
        if alerts:
            await self._send_all(self.settings.alerts_topic, (
                (str(a["model"]).encode(), json.dumps(a, allow_nan=False).encode())
                for a in alerts))
            for a in alerts:
                log.info("alert %s %s %s/%s %s %s: %s", a["status"], a["severity"], a["model"],
                         a["version"], a["feature"] or "-", a["check"], a["message"])
            self.counters["alerts_sent"] += len(alerts)
            processor.alerts_delivered()
        reports = processor.reports()
        if reports:
            await self._send_all(self.settings.reports_topic, (
                (str(r["model"]).encode(), json.dumps(r, allow_nan=False).encode())
                for r in reports))
            processor.reports_delivered()
        points = processor.points()
        if points and await self.points(points, waiting=processor.outbox_points()):
            processor.points_delivered()

    async def points(self, lines: list[str], *, waiting: int = 0) -> bool:
        """Write to the metrics store; False (and a later retry, with backoff) when it is
        down. `waiting`: points held meanwhile, for the log."""
        if time.monotonic() < self._retry_at:
            return False
        try:
            await asyncio.to_thread(self.writer.write, lines)
        except StoreError as exc:
            self.counters["metric_write_failures"] += 1
            self._retry_at = time.monotonic() + self._backoff
            if self.store_up or self._backoff >= STORE_BACKOFF_SECONDS[1]:
                log.warning("%s; %d points wait in the outbox, next try in %.0f s", exc,
                            waiting, self._backoff)
            self.store_up = False
            self._backoff = min(self._backoff * 2, STORE_BACKOFF_SECONDS[1])
            return False
        if not self.store_up:
            log.info("metrics store reachable again")
        self.store_up = True
        self._backoff = STORE_BACKOFF_SECONDS[0]
        return True
