"""Where metric points go: InfluxDB's `/api/v2/write` (InfluxDB 2.x, or VictoriaMetrics).

`write()` is synchronous and raises `StoreError` when the store does not acknowledge the points:
the worker calls it from a thread and keeps the points in its checkpointed outbox until it
returns, so a window's points are written at least once whatever happens to the worker or the
store (a point rewritten with the same series and time overwrites itself).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS, WritePrecision

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
        # The client logs every failed attempt itself; the worker logs them, rate-limited.
        logging.getLogger("influxdb_client.client.write_api").setLevel(logging.CRITICAL)
        # ca_file: the CA that signed an https store's certificate (a private CA); the
        # certificate is always verified.
        self.client = InfluxDBClient(url=url, token=token or "-", org=self.org,
                                     timeout=timeout_ms, ssl_ca_cert=ca_file)
        self.api = self.client.write_api(write_options=SYNCHRONOUS)
        log.info("metrics go to %s (bucket %s)", url, bucket)

    def write(self, lines: Sequence[str]) -> None:
        try:
            for start in range(0, len(lines), CHUNK_LINES):
                self.api.write(bucket=self.bucket, org=self.org,
                               record=list(lines[start:start + CHUNK_LINES]),
                               write_precision=WritePrecision.NS)
        except Exception as exc:  # urllib3 and HTTP errors alike: the store did not take them
            raise StoreError(f"metrics store {self.url} did not take {len(lines)} points: "
                             f"{_short(exc)}") from None

    def close(self) -> None:
        self.client.close()


def make_writer(url: str | None, *, token: str = "", org: str = "", bucket: str = "drift",
                ca_file: str | None = None) -> PointWriter:
    if not url:
        return NullWriter()
    return InfluxWriter(url, token=token, org=org, bucket=bucket, ca_file=ca_file)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
