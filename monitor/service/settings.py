"""Worker settings, read from `DRIFT_MONITOR_*` environment variables.

Secrets (`KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`, `INFLUX_TOKEN`) can instead come from a
file named by the same variable with `_FILE` appended, as Docker and Kubernetes mount secrets;
they never show in `repr`, `redacted()` (the settings line of the log) or error messages.

>>> s = Settings.from_env({"DRIFT_MONITOR_WINDOW_SECONDS": "30"})
>>> s.window_seconds, s.broker, s.influx_url, s.kafka.security_protocol
(30.0, 'kafka://localhost:9092', None, 'PLAINTEXT')
>>> Settings.from_env({"DRIFT_MONITOR_WINDOW_SECONDS": "abc"})
Traceback (most recent call last):
...
monitor.errors.UsageError: DRIFT_MONITOR_WINDOW_SECONDS must be a positive number ('abc')
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from monitor.errors import UsageError
from monitor.service.kafka_config import KafkaConfig, readable_file
from monitor.stream.config import MAX_WINDOW_SECONDS, MIN_WINDOW_SECONDS

PREFIX = "DRIFT_MONITOR_"
HIDDEN = ("kafka_sasl_password", "influx_token")  # shown as '***' in redacted()


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
    influx_token: str = field(default="", repr=False)
    influx_ca_file: str | None = None  # CA of the store's TLS certificate (private CAs)
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
    max_message_bytes: int = 1 << 20  # larger messages are dead letters, never parsed
    http_port: int = 6066  # /healthz, /ready, /metrics; 0: any free port (logged)
    http_bind: str = "0.0.0.0"
    # Kafka security (monitor.service.kafka_config): every client gets it through `kafka`.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

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

        def secret(name: str) -> str | None:
            """`NAME`, or the content of the file `NAME_FILE` names (whitespace around it and
            the final newline dropped); never both."""
            value = env.get(PREFIX + name, "").strip()
            path = env.get(PREFIX + name + "_FILE", "").strip()
            if not path:
                return value or None
            if value:
                raise UsageError(f"set {PREFIX}{name} or {PREFIX}{name}_FILE, not both "
                                 f"({PREFIX}{name}_FILE={path!r})")
            try:
                with open(path, encoding="utf-8") as f:
                    content = f.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise UsageError(f"{PREFIX}{name}_FILE cannot be read ({path!r}: {reason})"
                                 ) from None
            if not content:
                raise UsageError(f"{PREFIX}{name}_FILE is empty ({path!r})")
            return content

        def readable(name: str) -> str | None:
            return readable_file(name, env.get(PREFIX + name, "").strip())

        def port(name: str, default: int) -> int:
            raw = env.get(PREFIX + name, "").strip()
            if not raw:
                return default
            if not (raw.isascii() and raw.isdigit()) or int(raw) > 65535:
                raise UsageError(f"{PREFIX}{name} must be a port number from 0 to 65535 "
                                 f"({raw!r})")
            return int(raw)

        def url(name: str) -> str | None:
            raw = env.get(PREFIX + name, "").strip()
            return store_url(raw) if raw else None

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
        window = positive("WINDOW_SECONDS", cls.window_seconds)
        if not MIN_WINDOW_SECONDS <= window <= MAX_WINDOW_SECONDS:
            raise UsageError(f"{PREFIX}WINDOW_SECONDS must be from 1 to "
                             f"{MAX_WINDOW_SECONDS:.0f} seconds (366 days) ({window:g})")
        settings = cls(
            broker=broker,
            profiles=text("PROFILES", cls.profiles),
            window_seconds=window,
            grace_seconds=grace,
            min_records=positive("MIN_RECORDS", cls.min_records, int),
            predictions_topic=text("PREDICTIONS_TOPIC", cls.predictions_topic),
            alerts_topic=text("ALERTS_TOPIC", cls.alerts_topic),
            dlq_topic=text("DLQ_TOPIC", cls.dlq_topic),
            reports_topic=text("REPORTS_TOPIC", cls.reports_topic),
            state_topic=text("STATE_TOPIC", cls.state_topic),
            partials_topic=text("PARTIALS_TOPIC", cls.partials_topic),
            windows_topic=text("WINDOWS_TOPIC", cls.windows_topic),
            influx_url=url("INFLUX_URL"),
            influx_token=secret("INFLUX_TOKEN") or "",
            influx_ca_file=readable("INFLUX_CA_FILE"),
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
            max_message_bytes=positive("MAX_MESSAGE_BYTES", cls.max_message_bytes, int),
            http_port=port("HTTP_PORT", cls.http_port),
            http_bind=text("HTTP_BIND", cls.http_bind),
            kafka_security_protocol=text("KAFKA_SECURITY_PROTOCOL", cls.kafka_security_protocol),
            kafka_sasl_mechanism=text("KAFKA_SASL_MECHANISM", "") or None,
            kafka_sasl_username=secret("KAFKA_SASL_USERNAME"),
            kafka_sasl_password=secret("KAFKA_SASL_PASSWORD"),
            kafka_ssl_cafile=readable("KAFKA_SSL_CAFILE"),
            kafka_ssl_certfile=readable("KAFKA_SSL_CERTFILE"),
            kafka_ssl_keyfile=readable("KAFKA_SSL_KEYFILE"),
        )
        settings.kafka.ssl_context()  # every Kafka setting checked now, in one readable line
        for name, topic in (("PREDICTIONS_TOPIC", settings.predictions_topic),
                            ("ALERTS_TOPIC", settings.alerts_topic),
                            ("DLQ_TOPIC", settings.dlq_topic),
                            ("REPORTS_TOPIC", settings.reports_topic),
                            ("STATE_TOPIC", settings.topic("state")),
                            ("PARTIALS_TOPIC", settings.topic("partials")),
                            ("WINDOWS_TOPIC", settings.topic("windows"))):
            if topic:
                check_topic_name(name, topic)
        return settings

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
    def kafka(self) -> KafkaConfig:
        """The brokers and security settings every Kafka client is built from.

        >>> Settings(broker="kafka://k1:9092;kafka://k2:9092").kafka.brokers
        ('k1:9092', 'k2:9092')
        """
        return KafkaConfig.parse(
            self.broker, security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism, sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password, ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile, ssl_keyfile=self.kafka_ssl_keyfile)

    def redacted(self) -> dict[str, Any]:
        """The settings for the log, with the secrets hidden.

        >>> r = Settings(influx_token="s3cret", kafka_sasl_password="pw").redacted()
        >>> r["influx_token"], r["kafka_sasl_password"], r["kafka_sasl_username"]
        ('***', '***', None)
        """
        data = asdict(self)
        for name in HIDDEN:
            if data[name]:
                data[name] = "***"
        return data


TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def check_topic_name(setting: str, topic: str) -> None:
    """Kafka's rule for topic names (ASCII letters, digits, `.`, `_`, `-`; at most 249), checked
    before the worker waits for a topic that can never exist. An internal topic named after the
    group and the predictions topic names both settings.

    >>> check_topic_name("PREDICTIONS_TOPIC", "bad topic")
    Traceback (most recent call last):
    ...
    monitor.errors.UsageError: DRIFT_MONITOR_PREDICTIONS_TOPIC is not a valid Kafka topic name: use at most 249 ASCII letters, digits, '.', '_' and '-' ('bad topic')
    """
    if TOPIC_NAME.fullmatch(topic) and topic not in (".", ".."):
        return
    what = f"{PREFIX}{setting}"
    if setting in ("STATE_TOPIC", "PARTIALS_TOPIC", "WINDOWS_TOPIC"):
        what += f" (named after {PREFIX}GROUP and {PREFIX}PREDICTIONS_TOPIC unless set)"
    shown = topic if len(topic) <= 80 else topic[:77] + "..."
    raise UsageError(f"{what} is not a valid Kafka topic name: use at most 249 ASCII letters, "
                     f"digits, '.', '_' and '-' ({shown!r})")


def store_url(raw: str) -> str:
    """`DRIFT_MONITOR_INFLUX_URL` checked: http(s), a host, no credentials (they would show in
    the log; the token goes in `DRIFT_MONITOR_INFLUX_TOKEN`).

    >>> store_url("http://vm:8428")
    'http://vm:8428'
    >>> store_url("https://user:s3cret@vm:8428")
    Traceback (most recent call last):
    ...
    monitor.errors.UsageError: DRIFT_MONITOR_INFLUX_URL must not hold credentials: put the token in DRIFT_MONITOR_INFLUX_TOKEN ('https://***@vm:8428')
    >>> store_url("vm:8428")
    Traceback (most recent call last):
    ...
    monitor.errors.UsageError: DRIFT_MONITOR_INFLUX_URL must be an http:// or https:// URL with a host ('vm:8428')
    """
    parts = urlsplit(raw)
    if parts.username is not None or parts.password is not None:
        hidden = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
        raise UsageError(f"{PREFIX}INFLUX_URL must not hold credentials: put the token in "
                         f"{PREFIX}INFLUX_TOKEN ({hidden!r})")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"{PREFIX}INFLUX_URL has a bad port ({raw!r})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{PREFIX}INFLUX_URL must be an http:// or https:// URL with a host "
                         f"({raw!r})")
    return raw
