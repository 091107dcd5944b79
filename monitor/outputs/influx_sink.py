"""Where metric points go: InfluxDB's `/api/v2/write` (InfluxDB 2.x, or VictoriaMetrics).

`write()` is synchronous and raises `StoreError` when the store does not acknowledge the points:
the worker calls it from a thread and keeps the points in its checkpointed outbox until it
returns, so a window's points are written at least once whatever happens to the worker or the
store (a point rewritten with the same series and time overwrites itself).

influxdb-client takes a quarter of a second to import: the client is made at the first write
(in the writer's thread), and `warm_up()` imports it in the background meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from monitor.errors import ServiceError

log = logging.getLogger(__name__)

CHUNK_LINES = 5_000


class StoreError(ServiceError):
    """The metrics store did not take the points."""


class PointWriter(Protocol):
    def write(self, lines: Sequence[str]) -> None: ...
    def close(self) -> None: ...


class NullWriter:
    """No metrics store configured: points are discarded (said once, at creation)."""

    def __init__(self) -> None:
        log.warning("DRIFT_MONITOR_INFLUX_URL is not set: metrics are not written anywhere")

    def write(self, lines: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass


class InfluxWriter:
    def __init__(self, url: str, *, token: str = "", org: str = "", bucket: str = "drift",
                 timeout_ms: int = 10_000, ca_file: str | None = None) -> None:
        self.url = url
        self.bucket = bucket
        self.org = org or "-"
        # ca_file: the CA that signed an https store's certificate (a private CA); the
        # certificate is always verified.
        self._client_options = {"url": url, "token": token or "-", "org": self.org,
                                "timeout": timeout_ms, "ssl_ca_cert": ca_file}
        self._client: Any = None
        self._api: Any = None
        self._lock = threading.Lock()
        log.info("metrics go to %s (bucket %s)", url, bucket)

    def _write_api(self) -> tuple[Any, Any]:
        with self._lock:
            if self._api is None:
                from influxdb_client import InfluxDBClient
                from influxdb_client.client.write_api import SYNCHRONOUS, WritePrecision

                # The client logs every failed attempt itself; the worker logs them,
                # rate-limited.
                logging.getLogger("influxdb_client.client.write_api").setLevel(logging.CRITICAL)
                self._client = InfluxDBClient(**self._client_options)
                self._api = self._client.write_api(write_options=SYNCHRONOUS)
                self._precision = WritePrecision.NS
            return self._api, self._precision

    def write(self, lines: Sequence[str]) -> None:
        try:
            api, precision = self._write_api()
            for start in range(0, len(lines), CHUNK_LINES):
                api.write(bucket=self.bucket, org=self.org,
                          record=list(lines[start:start + CHUNK_LINES]),
                          write_precision=precision)
        except Exception as exc:  # urllib3 and HTTP errors alike: the store did not take them
            raise StoreError(f"metrics store {self.url} did not take {len(lines)} points: "
                             f"{_short(exc)}") from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()


def warm_up() -> threading.Thread:
    """Import influxdb-client in a background thread (the first write then finds it loaded);
    the thread, to join when it must be in."""
    thread = threading.Thread(target=lambda: __import__("influxdb_client.client.write_api"),
                              name="influx-import", daemon=True)
    thread.start()
    return thread


def make_writer(url: str | None, *, token: str = "", org: str = "", bucket: str = "drift",
                ca_file: str | None = None) -> PointWriter:
    if not url:
        return NullWriter()
    return InfluxWriter(url, token=token, org=org, bucket=bucket, ca_file=ca_file)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
