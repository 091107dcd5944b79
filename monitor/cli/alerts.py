"""`drift-monitor alerts tail`: print the alert topic for on-call eyes (or raw JSON lines)."""

from __future__ import annotations

import json
import sys
import time

from monitor.errors import ServiceError
from monitor.outputs.render import format_alert
from monitor.service.settings import Settings


def tail_alerts(*, as_json: bool = False, from_beginning: bool = False,
                idle_timeout: float | None = None, settings: Settings | None = None) -> int:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    s = settings or Settings.from_env()
    kafka = s.kafka
    kafka.check()  # refused credentials or TLS: one line, not a 30 s retry loop
    try:
        consumer = KafkaConsumer(
            s.alerts_topic, **kafka.kafka_python(),
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False, group_id=None, consumer_timeout_ms=500)
    except KafkaError as exc:
        raise ServiceError(f"cannot reach Kafka at {s.broker}: {exc}") from None
    last = time.monotonic()
    try:
        while idle_timeout is None or time.monotonic() - last < idle_timeout:
            for message in consumer:
                last = time.monotonic()
                if as_json:
                    print(message.value.decode("utf-8", "replace"), flush=True)
                    continue
                try:
                    print(format_alert(json.loads(message.value)), flush=True)
                except (ValueError, AttributeError):
                    print(f"(unreadable alert) {message.value[:200]!r}", file=sys.stderr)
    finally:
        consumer.close()
    return 0
