"""What the worker knows about its own health: is the broker reachable, and is it ready?

The broker is asked for its metadata every `PROBE_SECONDS` (a quiet worker writes nothing to
Kafka and would not notice an outage otherwise); Kafka writes that fail (checkpoints,
deliveries, loads: `StageRunner.backoff`) count too. Readiness is the list of reasons the worker
is not doing its job now; empty means ready.

>>> probe = BrokerProbe()
>>> probe.up, probe.failed("KafkaConnectionError: refused"), probe.up, probe.error
(None, True, False, 'KafkaConnectionError: refused')
>>> probe.succeeded(), probe.up, probe.error
(True, True, '')
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from monitor.service.runner import StageRunner

log = logging.getLogger(__name__)

PROBE_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 5.0


class BrokerProbe:
    def __init__(self) -> None:
        self.up: bool | None = None  # None: not asked yet
        self.error = ""
        self.since = time.monotonic()  # of the current state

    def failed(self, error: str) -> bool:
        """Returns True when this is news (the broker was up, or not asked yet)."""
        news = self.up is not False
        if news:
            self.since = time.monotonic()
        self.up, self.error = False, error
        return news

    def succeeded(self) -> bool:
        news = self.up is not True
        if news:
            self.since = time.monotonic()
        self.up, self.error = True, ""
        return news

    async def ask(self, client: Any) -> None:
        """One metadata request through `client` (an aiokafka client), with a timeout."""
        try:
            await asyncio.wait_for(client.fetch_all_metadata(), PROBE_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure means: not reachable now
            was_up = self.up
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self.failed(error):
                log.warning("Kafka broker not reachable (%s)%s", error,
                            "" if was_up is None else "; reconnecting with backoff")
            return
        was_up, down_for = self.up, time.monotonic() - self.since
        self.succeeded()
        if was_up is False:
            log.info("Kafka broker reachable again (after %.1f s)", down_for)


def kafka_connected(probe: BrokerProbe, runners: Sequence[StageRunner | None]) -> bool:
    return probe.up is not False and not any(
        r is not None and r.backoff.failing for r in runners)


def stage_reasons(runner: StageRunner | None, name: str) -> list[str]:
    if runner is None:
        return [f"{name}: not started"]
    if not runner.joined:
        return [f"{name}: waiting for its partitions (consumer group {runner.group!r})"]
    reasons = []
    if runner.unloaded:
        reasons.append(f"{name}: partitions {sorted(runner.unloaded)} assigned but their "
                       f"checkpoints not loaded yet")
    if runner.backoff.failing:
        reasons.append(f"{name}: Kafka writes failing ({runner.last_error})")
    return reasons
