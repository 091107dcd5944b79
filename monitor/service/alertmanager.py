"""`drift-monitor alerts forward`: the alert topic into Prometheus Alertmanager (API v2).

At least once: the forwarder reads the topic in its own consumer group, posts each batch of
events to `POST /api/v2/alerts` and commits the offsets only after Alertmanager accepted them.
While Alertmanager is down or answers 5xx/429, the same batch is retried with exponential
backoff (0.5 s up to 30 s), forever: nothing is dropped, and a forwarder stopped meanwhile
posts the batch again after its restart (posting twice is harmless: Alertmanager merges alerts
by their labels). A message that is not an alert event is logged and skipped.

Alertmanager ends an alert nobody refreshes when its `endsAt` passes; the worker publishes an
episode's events only when something changes. So every `expire_after / 4` seconds the forwarder
lists its active alerts (label `source="drift-monitor"`, silenced and inhibited ones too) and
posts them again with `endsAt = now + expire_after`: an episode stays active while the forwarder
runs, and ends by itself `expire_after` seconds after the forwarder stopped for good.
"""

from __future__ import annotations

import json
import logging
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from monitor.errors import ServiceError, UsageError
from monitor.outputs.alertmanager import SOURCE, postable, refreshed
from monitor.service.settings import Settings

log = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
POLL_MS = 1000
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class AlertmanagerClient:
    """The two calls the forwarder makes, over HTTP(S) with the standard library."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(f"--alertmanager must be an http(s) URL ({url})")
        self.base = url.rstrip("/")
        self.timeout = timeout

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts; raises `Retryable` or ServiceError when not accepted."""
        self._call("POST", "/api/v2/alerts", json.dumps(alerts).encode())

    def active(self) -> list[dict[str, Any]]:
        """This forwarder's alerts that are active now (silenced and inhibited ones included)."""
        query = urllib.parse.urlencode({"filter": f'source="{SOURCE}"', "active": "true",
                                        "silenced": "true", "inhibited": "true",
                                        "unprocessed": "true"})
        body = self._call("GET", f"/api/v2/alerts?{query}", None)
        return [a for a in json.loads(body) if a.get("status", {}).get("state") != "resolved"]

    def _call(self, method: str, path: str, data: bytes | None) -> bytes:
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace").strip()
            if exc.code in RETRYABLE_STATUS:
                raise Retryable(f"HTTP {exc.code}: {detail}") from None
            raise ServiceError(f"alertmanager refused {method} {path.split('?')[0]} "
                               f"(HTTP {exc.code}: {detail})") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Retryable(f"cannot reach {self.base}: {reason}") from None


class Retryable(Exception):
    """Alertmanager unreachable or temporarily refusing: try again later."""


def post_until_accepted(client: AlertmanagerClient, alerts: list[dict[str, Any]],
                        stopping: Callable[[], bool],
                        sleep: Callable[[float], None] | None = None) -> bool:
    """Post with exponential backoff until Alertmanager accepts; False if told to stop first."""
    sleep = sleep or (lambda seconds: _pause(seconds, stopping))
    delay, failures, last_logged = BACKOFF_FIRST_SECONDS, 0, -float("inf")
    while not stopping():
        try:
            client.post(alerts)
        except Retryable as exc:
            failures += 1
            if time.monotonic() - last_logged >= 60:
                last_logged = time.monotonic()
                log.warning("alertmanager not accepting %d alerts (attempt %d, retrying with "
                            "backoff): %s", len(alerts), failures, exc)
            sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
            continue
        if failures:
            log.info("alertmanager accepted %d alerts after %d failed attempts", len(alerts),
                     failures)
        return True
    return False


def _pause(seconds: float, stopping: Callable[[], bool]) -> None:
    """Sleep, but wake up within 0.2 s of a stop request."""
    deadline = time.monotonic() + seconds
    while not stopping() and time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def alerts_consumer(settings: Settings, group: str) -> Any:
    """The alert topic's consumer (one place to build it, so it can follow the project's Kafka
    configuration)."""
    from kafka import KafkaConsumer

    return KafkaConsumer(settings.alerts_topic, **settings.kafka.kafka_python(),
                         group_id=group, client_id=f"{group}-forwarder", enable_auto_commit=False,
                         auto_offset_reset="earliest", max_poll_interval_ms=600_000)


def forward_alerts(url: str, *, group: str | None = None, expire_after: float = 3600.0,
                   settings: Settings | None = None) -> int:
    """Forward until SIGTERM or SIGINT; returns the exit status."""
    from kafka.errors import CommitFailedError, KafkaError

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    s = settings or Settings.from_env()
    group = group or f"{s.group}-alertmanager"
    client = AlertmanagerClient(url)
    stop = _stop_on_signals()
    try:
        consumer = alerts_consumer(s, group)
    except KafkaError as exc:
        raise ServiceError(f"cannot reach Kafka at {s.broker}: {exc}") from None
    log.info("forwarding %s (group %s) to %s", s.alerts_topic, group, url)
    refresh_every, last_refresh = expire_after / 4, time.monotonic()
    forwarded = skipped = 0
    try:
        while not stop():
            batches = consumer.poll(timeout_ms=POLL_MS)
            now = datetime.now(UTC)
            payload: list[dict[str, Any]] = []
            for records in batches.values():
                for record in records:
                    try:
                        payload += postable(json.loads(record.value), now=now,
                                            expire_after=expire_after)
                        forwarded += 1
                    except (ValueError, TypeError, KeyError, AttributeError) as exc:
                        skipped += 1
                        log.error("skipped message %s[%d]@%d, not an alert event: %s",
                                  record.topic, record.partition, record.offset, exc)
            if payload and not post_until_accepted(client, payload, stop):
                break  # stopping: not committed, so posted again after a restart
            if batches:
                try:
                    consumer.commit()
                except (CommitFailedError, KafkaError) as exc:  # a rebalance: posted again
                    log.warning("offset commit failed (the events will be posted again): %r", exc)
            if time.monotonic() - last_refresh >= refresh_every:
                last_refresh = time.monotonic()
                _refresh(client, expire_after)
    finally:
        consumer.close(autocommit=False)
        log.info("forwarder stopped: %d alert events forwarded, %d messages skipped",
                 forwarded, skipped)
    return 0


def _refresh(client: AlertmanagerClient, expire_after: float) -> None:
    """Keep this forwarder's active alerts from expiring (a failure waits for the next turn)."""
    try:
        active = client.active()
        if active:
            now = datetime.now(UTC)
            client.post([refreshed(a, now=now, expire_after=expire_after) for a in active])
            log.info("refreshed %d active alerts in alertmanager", len(active))
    except (Retryable, ServiceError, ValueError) as exc:
        log.warning("could not refresh the active alerts: %s", exc)


def _stop_on_signals() -> Callable[[], bool]:
    stopping = {"now": False}

    def handler(signum: int, frame: Any) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return lambda: stopping["now"]
