"""`drift-monitor alerts tail`: print the alert topic for on-call eyes (or raw JSON lines)."""

from __future__ import annotations

import json
import sys
import time

from monitor.errors import ServiceError
from monitor.outputs.render import format_alert
from monitor.service.settings import Settings


def bootstrap_servers(broker: str) -> list[str]:
    """`kafka://host:port;kafka://host2:port` (Faust style) -> ['host:port', 'host2:port']."""
    servers = []
    for part in broker.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            servers.append(part)
    return servers


def tail_alerts(*, as_json: bool = False, from_beginning: bool = False,
                idle_timeout: float | None = None, settings: Settings | None = None) -> int:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    s = settings or Settings.from_env()
    try:
        consumer = KafkaConsumer(
            s.alerts_topic, bootstrap_servers=bootstrap_servers(s.broker),
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
