"""The worker's one Kafka producer (checkpoints, partials, alerts, reports, dead letters), made
again when it cannot go on.

The producer is idempotent: the broker keeps the sequence numbers of its batches and refuses a
gap. When a broker outage outlasts a request, batches expire on the client side; the next one
then has a sequence number the broker does not expect, and every send fails with
OutOfOrderSequenceNumber however often it is tried. A new producer (a new producer id, sequences
from 0) is the way out; nothing is lost by it, because what a failed send carried is still
owed by the runner (the checkpoint, the outbox, the dead letters) and is sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

log = logging.getLogger(__name__)

# The producer's state no longer matches the broker's: only a new producer gets past these.
BROKEN = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch,
          InvalidProducerIdMapping, ProducerFenced)
STOP_TIMEOUT_SECONDS = 5.0


class Outlet:
    def __init__(self, make: Callable[[], AIOKafkaProducer]) -> None:
        self.make = make
        self.producer = make()
        self.renewals = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.producer.start()

    async def renew(self, broken: AIOKafkaProducer, why: BaseException) -> None:
        """Replace `broken` by a new producer (once, however many senders saw it fail)."""
        async with self._lock:
            if self.producer is not broken:
                return  # another sender renewed it already
            log.warning("Kafka producer cannot go on (%s: %s): starting a new one (what it "
                        "failed to send is sent again)", type(why).__name__, why)
            fresh = self.make()
            await fresh.start()
            self.producer = fresh
            self.renewals += 1
        try:
            await asyncio.wait_for(broken.stop(), STOP_TIMEOUT_SECONDS)
        except Exception as exc:  # it is broken: closing it is best effort
            log.info("closing the old Kafka producer: %r", exc)

    async def stop(self) -> None:
        """Flush and close; a broker that is down gets STOP_TIMEOUT_SECONDS, not forever (what
        was not acknowledged is owed by a checkpoint and sent again by the next owner)."""
        try:
            await asyncio.wait_for(self.producer.stop(), STOP_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("Kafka producer closed without flushing: %r", exc)
