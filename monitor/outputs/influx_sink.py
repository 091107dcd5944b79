"""Where the worker's metric points go: one batching influxdb-client WriteApi per worker.

`write()` only hands lines to the client's background batcher (threads of its own), so it never
blocks the event loop. While the store is down, the client retries each batch; at most
`max_buffered` points wait in the sink, and points beyond that bound, or batches that exhaust
their retries, are dropped, counted and logged: losing metrics never stops the worker.
Metrics are best-effort by design; the exactly-once promise is about window state (checkpoint.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from influxdb_client import InfluxDBClient, WriteOptions
from influxdb_client.client.write_api import WritePrecision

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 30.0  # repeated write failures and drops are logged at most this often


class Sink(Protocol):
    def write(self, lines: Iterable[str]) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def close(self) -> None: ...


class NullSink:
    """No metrics store configured: points are discarded (said once, at creation)."""

    def __init__(self) -> None:
        log.warning("DRIFT_MONITOR_INFLUX_URL is not set: metrics are not written anywhere")

    def write(self, lines: Iterable[str]) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {"metric_write_failures": 0, "metric_points_buffered": 0,
                "metric_points_dropped": 0}

    def close(self) -> None:
        pass


def _points_in(data: Any) -> int:
    if isinstance(data, bytes | bytearray):
        return data.count(b"\n") + 1 if data else 0
    if isinstance(data, str):
        return data.count("\n") + 1 if data else 0
    return 1


class InfluxSink:
    """Line protocol to `url`'s `/api/v2/write` (InfluxDB 2.x, or VictoriaMetrics)."""

    def __init__(self, url: str, *, token: str = "", org: str = "", bucket: str = "drift",
                 max_buffered: int = 100_000, batch_size: int = 5_000,
                 flush_interval_ms: int = 1_000, retry_interval_ms: int = 1_000,
                 max_retries: int = 5, max_retry_time_ms: int = 60_000,
                 max_close_wait_ms: int = 10_000, ca_file: str | None = None) -> None:
        self.url = url
        self.bucket = bucket
        self.org = org
        self.max_buffered = max_buffered
        self._lock = threading.Lock()
        self.submitted = 0
        self.written = 0
        self.failed_points = 0
        self.write_failures = 0  # failed write attempts, retried or final
        self.dropped = 0  # over the bound, or given up after the retries
        self._last_log = 0.0
        # The client logs every failed attempt itself; this sink logs them, rate-limited.
        logging.getLogger("influxdb_client.client.write_api").setLevel(logging.CRITICAL)
        logging.getLogger("influxdb_client.client.write.retry").setLevel(logging.CRITICAL)
        # ca_file: the CA that signed an https store's certificate (a private CA); the
        # certificate is always verified.
        self.client = InfluxDBClient(url=url, token=token or "-", org=org or "-",
                                     timeout=10_000, ssl_ca_cert=ca_file)
        self.write_api = self.client.write_api(
            write_options=WriteOptions(
                batch_size=batch_size, flush_interval=flush_interval_ms,
                retry_interval=retry_interval_ms, max_retries=max_retries,
                max_retry_delay=max(retry_interval_ms, 10_000),
                max_retry_time=max_retry_time_ms, max_close_wait=max_close_wait_ms),
            success_callback=self._on_success, error_callback=self._on_error,
            retry_callback=self._on_retry)
        log.info("metrics go to %s (bucket %s, at most %d points buffered)",
                 url, bucket, max_buffered)

    # -- callbacks, on the client's threads -------------------------------------------------------
    def _on_success(self, conf: Any, data: Any) -> None:
        with self._lock:
            self.written += _points_in(data)

    def _on_error(self, conf: Any, data: Any, exception: BaseException) -> None:
        n = _points_in(data)
        with self._lock:
            self.write_failures += 1
            self.failed_points += n
            self.dropped += n
        self._log_limited("metrics: dropped a batch of %d points after retries (%d dropped "
                          "so far): %s", n, self.dropped, exception)

    def _on_retry(self, conf: Any, data: Any, exception: BaseException) -> None:
        with self._lock:
            self.write_failures += 1
        self._log_limited("metrics: write failed, retrying: %s", exception)

    def _log_limited(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_SECONDS:
            self._last_log = now
            log.warning(message, *args)

    # -- the worker's side ----------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        with self._lock:
            return max(0, self.submitted - self.written - self.failed_points)

    def write(self, lines: Iterable[str]) -> None:
        batch = list(lines)
        if not batch:
            return
        room = self.max_buffered - self.buffered
        if room < len(batch):
            dropped = len(batch) - max(room, 0)
            batch = batch[:max(room, 0)]
            with self._lock:
                self.dropped += dropped
            self._log_limited("metrics: store unreachable and %d points buffered; dropping "
                              "points (%d dropped so far)", self.max_buffered, self.dropped)
        if not batch:
            return
        with self._lock:
            self.submitted += len(batch)
        try:
            self.write_api.write(bucket=self.bucket, org=self.org or "-", record=batch,
                                 write_precision=WritePrecision.NS)
        except Exception as exc:  # the batcher is closed or broken: never crash the worker
            with self._lock:
                self.submitted -= len(batch)
                self.dropped += len(batch)
            self._log_limited("metrics: could not queue points: %s", exc)

    def stats(self) -> dict[str, int]:
        with self._lock:
            buffered = max(0, self.submitted - self.written - self.failed_points)
            return {"metric_write_failures": self.write_failures,
                    "metric_points_buffered": buffered,
                    "metric_points_dropped": self.dropped}

    def close(self) -> None:
        """Flush what is buffered (waiting at most `max_close_wait_ms`), then close."""
        try:
            self.write_api.close()
        finally:
            self.client.close()
        stats = self.stats()
        log.info("metrics sink closed: %d points written, %d dropped, %d still buffered",
                 self.written, stats["metric_points_dropped"], stats["metric_points_buffered"])


def make_sink(url: str | None, *, token: str = "", org: str = "", bucket: str = "drift",
              max_buffered: int = 100_000, ca_file: str | None = None) -> Sink:
    if not url:
        return NullSink()
    return InfluxSink(url, token=token, org=org, bucket=bucket, max_buffered=max_buffered,
                      ca_file=ca_file)
