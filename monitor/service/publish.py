"""What the worker sends, after the checkpoint that makes it repeatable: dead letters, partials
and watermarks, alerts, window reports, metric points (asynchronous I/O only)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from monitor.outputs.influx_sink import PointWriter, StoreError
from monitor.service.backoff import Backoff
from monitor.service.outlet import Outlet
from monitor.service.settings import Settings
from monitor.service.stage_one import TOO_LARGE_KEPT_BYTES, DeadLetter, FoldProcessor
from monitor.service.stage_two import MergeProcessor

log = logging.getLogger(__name__)

STORE_BACKOFF_SECONDS = (1.0, 10.0)  # first and longest wait after a failed metrics write


class Publisher:
    def __init__(self, outlet: Outlet, writer: PointWriter, settings: Settings) -> None:
        self.outlet = outlet  # the producer (made again when it breaks)
        self.writer = writer
        self.settings = settings
        self.counters = {"dlq_messages": 0, "metric_write_failures": 0, "alerts_sent": 0}
        self.store = Backoff(*STORE_BACKOFF_SECONDS)
        self.store_error = ""  # the last write's failure, while the store is down

    async def _send_all(self, topic: str, messages: Iterable[tuple[bytes | None, bytes]],
                        **kwargs: Any) -> None:
        """Queue every message, then wait until the broker has each of them."""
        futures = [await self.outlet.producer.send(topic, value, key=key, **kwargs)
                   for key, value in messages]
        for future in futures:
            await future

    async def dead_letters(self, letters: list[DeadLetter]) -> None:
        sent = [(letter, await self._send_letter(letter, letter.raw, letter.reason,
                                                 letter.size)) for letter in letters]
        for letter, future in sent:
            try:
                await future
            except MessageSizeTooLargeError:
                # The dead-letter topic takes less than the message (its max.message.bytes is
                # below the predictions topic's): its beginning, as for a message too large.
                # Retrying the whole of it would hold the partition up for ever.
                kept = letter.raw[:TOO_LARGE_KEPT_BYTES]
                reason = (f"{letter.reason} (the dead-letter topic did not take its "
                          f"{len(letter.raw)} bytes: its first {len(kept)} here)")
                await (await self._send_letter(letter, kept, reason,
                                               letter.size or len(letter.raw)))
        self.counters["dlq_messages"] += len(letters)

    async def _send_letter(self, letter: DeadLetter, value: bytes, reason: str,
                           size: int | None) -> asyncio.Future[Any]:
        record = letter.record
        headers = [("reason", reason.encode()),
                   ("source_topic", str(record.topic).encode()),
                   ("source_partition", str(record.partition).encode()),
                   ("source_offset", str(record.offset).encode())]
        if letter.model:
            headers.append(("model", letter.model.encode()))
        if size is not None:
            headers.append(("original_bytes", str(size).encode()))
        return await self.outlet.producer.send(self.settings.dlq_topic, value, key=record.key,
                                               headers=headers)

    async def partials(self, processor: FoldProcessor) -> None:
        topic = self.settings.topic("partials")
        futures = [await self.outlet.producer.send(topic, m.value, key=m.key, partition=m.partition)
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

    @property
    def store_up(self) -> bool:
        """False from a failed metrics write to the next one that goes through."""
        return not self.store.failing

    async def points(self, lines: list[str], *, waiting: int = 0) -> bool:
        """Write to the metrics store; False (and a later retry, with backoff) when it is
        down. `waiting`: points held in the outbox meanwhile, for the log."""
        if not self.store.ready():
            return False
        try:
            await asyncio.to_thread(self.writer.write, lines)
        except StoreError as exc:
            self.counters["metric_write_failures"] += 1
            self.store_error = str(exc)
            if not self.store.ready():
                # Stage two's partitions write at once: a store that is down fails them
                # together, one failed attempt (the first to fail set the wait).
                return False
            wait = self.store.failed()
            if self.store.worth_saying():
                log.warning("%s; %d points wait in the outbox (at most %d), %d failed writes "
                            "so far, next try in %.0f s", exc, waiting,
                            self.settings.metrics_buffer, self.store.failures, wait)
            return False
        failures = self.store.failures
        lasted = self.store.succeeded()
        if lasted is not None:
            self.store_error = ""
            log.info("metrics store reachable again after %.0f s (%d failed writes): %d points "
                     "written", lasted, failures, len(lines))
        return True
