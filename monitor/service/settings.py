"""Worker settings, read from `DRIFT_MONITOR_*` environment variables.

>>> s = Settings.from_env({"DRIFT_MONITOR_WINDOW_SECONDS": "30"})
>>> s.window_seconds, s.broker, s.influx_url
(30.0, 'kafka://localhost:9092', None)
>>> Settings.from_env({"DRIFT_MONITOR_WINDOW_SECONDS": "abc"})
Traceback (most recent call last):
...
monitor.errors.UsageError: DRIFT_MONITOR_WINDOW_SECONDS must be a positive number ('abc')
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from monitor.errors import UsageError

PREFIX = "DRIFT_MONITOR_"


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://localhost:9092"
    profiles: str = "./profiles"
    window_seconds: float = 60.0
    grace_seconds: float = 5.0
    min_records: int = 200
    predictions_topic: str = "predictions"
    alerts_topic: str = "drift-alerts"
    dlq_topic: str = "predictions-dlq"
    reports_topic: str = ""  # every window report as JSON (as `replay --reports` writes); unset: none
    # Internal topics; empty: named after the group and the predictions topic (service.topics).
    state_topic: str = ""
    partials_topic: str = ""
    windows_topic: str = ""
    influx_url: str | None = None  # unset: metrics go nowhere (logged once at start)
    influx_token: str = ""
    influx_org: str = ""
    influx_bucket: str = "drift"
    group: str = "drift-monitor"  # Kafka consumer group and Faust app id
    batch_size: int = 5000
    metrics_buffer: int = 100_000  # most metric points held while the store is unreachable
    # How often Faust commits consumer offsets. The checkpoints, not the commits, carry the
    # no-loss / no-double-count promise; tests lengthen this to force re-delivery after a kill.
    commit_interval_seconds: float = 2.8
    checkpoint_interval_seconds: float = 5.0  # state with no window closing is saved this often
    idle_seconds: float = 30.0  # a model quiet this long moves on with the wall clock
    max_future_seconds: float = 0.0  # records further ahead are dead letters; 0: 3 windows
    retention_seconds: float = 7 * 86_400.0  # older records are counted late
    persistent_windows: int = 30  # an alert episode open this long publishes `persistent`

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def text(name: str, default: str) -> str:
            value = env.get(PREFIX + name, "").strip()
            return value or default

        def positive(name: str, default: float, kind: type = float) -> Any:
            raw = env.get(PREFIX + name, "").strip()
            if not raw:
                return default
            what = "a positive integer" if kind is int else "a positive number"
            try:
                value = kind(raw)
            except ValueError:
                raise UsageError(f"{PREFIX}{name} must be {what} ({raw!r})") from None
            if not (math.isfinite(value) and value > 0):
                raise UsageError(f"{PREFIX}{name} must be {what} ({raw!r})")
            return value

        grace_raw = env.get(PREFIX + "GRACE_SECONDS", "").strip()
        grace = 5.0
        if grace_raw:
            try:
                grace = float(grace_raw)
            except ValueError:
                grace = -1.0
            if not (math.isfinite(grace) and grace >= 0):
                raise UsageError(
                    f"{PREFIX}GRACE_SECONDS must be a number >= 0 ({grace_raw!r})")
        broker = text("BROKER", cls.broker)
        if "://" not in broker:
            broker = "kafka://" + broker
        return cls(
            broker=broker,
            profiles=text("PROFILES", cls.profiles),
            window_seconds=positive("WINDOW_SECONDS", cls.window_seconds),
            grace_seconds=grace,
            min_records=positive("MIN_RECORDS", cls.min_records, int),
            predictions_topic=text("PREDICTIONS_TOPIC", cls.predictions_topic),
            alerts_topic=text("ALERTS_TOPIC", cls.alerts_topic),
            dlq_topic=text("DLQ_TOPIC", cls.dlq_topic),
            reports_topic=text("REPORTS_TOPIC", cls.reports_topic),
            state_topic=text("STATE_TOPIC", cls.state_topic),
            partials_topic=text("PARTIALS_TOPIC", cls.partials_topic),
            windows_topic=text("WINDOWS_TOPIC", cls.windows_topic),
            influx_url=env.get(PREFIX + "INFLUX_URL", "").strip() or None,
            influx_token=env.get(PREFIX + "INFLUX_TOKEN", "").strip(),
            influx_org=env.get(PREFIX + "INFLUX_ORG", "").strip(),
            influx_bucket=text("INFLUX_BUCKET", cls.influx_bucket),
            group=text("GROUP", cls.group),
            batch_size=positive("BATCH_SIZE", cls.batch_size, int),
            metrics_buffer=positive("METRICS_BUFFER", cls.metrics_buffer, int),
            commit_interval_seconds=positive("COMMIT_INTERVAL_SECONDS",
                                             cls.commit_interval_seconds),
            checkpoint_interval_seconds=positive("CHECKPOINT_INTERVAL_SECONDS",
                                                 cls.checkpoint_interval_seconds),
            idle_seconds=positive("IDLE_SECONDS", cls.idle_seconds),
            max_future_seconds=positive("MAX_FUTURE_SECONDS", 0.0) or 0.0,
            retention_seconds=positive("RETENTION_SECONDS", cls.retention_seconds),
            persistent_windows=positive("PERSISTENT_WINDOWS", cls.persistent_windows, int),
        )

    def topic(self, role: str) -> str:
        """The name of an internal topic (`state`, `partials`, `windows`).

        >>> Settings(group="g", predictions_topic="p").topic("partials")
        'g.p.partials'
        >>> Settings(state_topic="mine").topic("state")
        'mine'
        """
        from monitor.service.topics import internal_topic

        explicit = {"state": self.state_topic, "partials": self.partials_topic,
                    "windows": self.windows_topic}[role]
        return explicit or internal_topic(self.group, self.predictions_topic, role)

    @property
    def bootstrap_servers(self) -> list[str]:
        """`kafka://a:9092;b:9092` as the host:port list kafka clients take."""
        hosts = self.broker.split("://", 1)[-1]
        return [h.strip() for h in hosts.replace(";", ",").split(",") if h.strip()]

    def redacted(self) -> dict[str, Any]:
        """The settings for the log, with the InfluxDB token hidden.

        >>> Settings(influx_token="s3cret").redacted()["influx_token"]
        '***'
        """
        data = asdict(self)
        if data["influx_token"]:
            data["influx_token"] = "***"
        return data
