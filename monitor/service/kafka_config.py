"""One Kafka configuration for every client the project makes.

`KafkaConfig` holds the broker list and the security settings (`DRIFT_MONITOR_BROKER`,
`DRIFT_MONITOR_KAFKA_*`, see `monitor.service.settings`); one method per client family turns it
into that client's keyword arguments, so the Faust app, the aiokafka consumer and producer, the
kafka-python admin, `alerts tail` and the demo all connect the same way:

* `aiokafka()` for `AIOKafkaConsumer` / `AIOKafkaProducer`,
* `kafka_python()` for `KafkaAdminClient` / `KafkaConsumer` / `KafkaProducer`,
* `faust()` for `faust.App` (`broker` and `broker_credentials`).

All of them get the same `ssl.SSLContext` (aiokafka's `create_ssl_context`: the CA file, or the
system's CAs, and the host name checked). `check_connection` opens one connection the way the
clients will and turns a refusal into one readable line (`ServiceError`): the clients themselves
only log the reason and retry (kafka-python for 30 s), then report "Unable to bootstrap".

>>> KafkaConfig.parse(" kafka://k1:9092;kafka://k2:9092 ").brokers
('k1:9092', 'k2:9092')
>>> KafkaConfig.parse("k1:9092").kafka_python()
{'bootstrap_servers': ['k1:9092'], 'security_protocol': 'PLAINTEXT'}
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import ServiceError, UsageError

PREFIX = "DRIFT_MONITOR_"
DEFAULT_PORT = 9092
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
CHECK_TIMEOUT_S = 10.0  # the longest `check_connection` waits for one broker


def parse_brokers(url: str) -> tuple[str, ...]:
    """The `host:port` list of a broker setting: `kafka://` URLs (Faust's form) or bare
    `host:port`, separated by `;` or `,`; the port defaults to 9092.

    >>> parse_brokers("kafka://k1:9092;kafka://k2:9093")
    ('k1:9092', 'k2:9093')
    >>> parse_brokers("k1, kafka://[::1]:9094/")
    ('k1:9092', '[::1]:9094')
    >>> parse_brokers("kafka://k1:x")
    Traceback (most recent call last):
    ...
    monitor.errors.UsageError: DRIFT_MONITOR_BROKER has a bad port ('kafka://k1:x')
    """
    servers = []
    for part in url.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        part = part.strip("/")
        if not part:
            continue
        if part.startswith("["):  # [IPv6]:port
            host, _, rest = part.partition("]")
            host, port = host + "]", rest.removeprefix(":") or str(DEFAULT_PORT)
        elif part.count(":") <= 1:
            host, _, port = part.partition(":")
            port = port or str(DEFAULT_PORT)
        else:
            raise UsageError(f"{PREFIX}BROKER: write an IPv6 address as [address]:port "
                             f"({url.strip()!r})")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"{PREFIX}BROKER has a bad port ({url.strip()!r})")
        if host in ("", "[]"):
            raise UsageError(f"{PREFIX}BROKER has an empty host name ({url.strip()!r})")
        servers.append(f"{host}:{int(port)}")
    if not servers:
        raise UsageError(f"{PREFIX}BROKER names no broker ({url!r})")
    return tuple(servers)


def readable_file(setting: str, path: str | None) -> str | None:
    """`path` when it names a readable file (or is unset), else a `UsageError` naming
    `DRIFT_MONITOR_<setting>`."""
    if path:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise UsageError(f"{PREFIX}{setting} cannot be read ({path!r}: "
                             f"{exc.strerror or exc})") from None
    return path or None


@dataclass(frozen=True)
class KafkaConfig:
    """Where the brokers are and how to talk to them. The password never shows in `repr`.

    >>> KafkaConfig(("k:9092",), "SASL_SSL", "SCRAM-SHA-512", "drift", "s3cret")
    KafkaConfig(brokers=('k:9092',), security_protocol='SASL_SSL', sasl_mechanism='SCRAM-SHA-512', sasl_username='drift', ssl_cafile=None, ssl_certfile=None, ssl_keyfile=None)
    >>> KafkaConfig(("k:9092",), "SASL_SSL")
    Traceback (most recent call last):
    ...
    monitor.errors.UsageError: DRIFT_MONITOR_KAFKA_SASL_USERNAME and DRIFT_MONITOR_KAFKA_SASL_PASSWORD are required with DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL=SASL_SSL
    """

    brokers: tuple[str, ...]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None  # PLAIN when a SASL protocol is set without one
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None  # unset with SSL: the system's CA certificates
    ssl_certfile: str | None = None  # client certificate (mutual TLS), may hold the key too
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        protocol = (self.security_protocol or "PLAINTEXT").strip().upper()
        if protocol not in PROTOCOLS:
            raise UsageError(f"{PREFIX}KAFKA_SECURITY_PROTOCOL must be one of "
                             f"{', '.join(PROTOCOLS)} ({self.security_protocol!r})")
        object.__setattr__(self, "security_protocol", protocol)
        mechanism = (self.sasl_mechanism or "").strip().upper() or None
        if mechanism is not None and mechanism not in MECHANISMS:
            raise UsageError(f"{PREFIX}KAFKA_SASL_MECHANISM must be one of "
                             f"{', '.join(MECHANISMS)} ({self.sasl_mechanism!r})")
        if self.uses_sasl:
            if not (self.sasl_username and self.sasl_password):
                raise UsageError(f"{PREFIX}KAFKA_SASL_USERNAME and {PREFIX}KAFKA_SASL_PASSWORD "
                                 f"are required with {PREFIX}KAFKA_SECURITY_PROTOCOL={protocol}")
            mechanism = mechanism or "PLAIN"
        else:
            given = [name for name, value in (("KAFKA_SASL_MECHANISM", mechanism),
                                              ("KAFKA_SASL_USERNAME", self.sasl_username),
                                              ("KAFKA_SASL_PASSWORD", self.sasl_password))
                     if value]
            if given:
                raise UsageError(f"{PREFIX}{given[0]} is set but {PREFIX}KAFKA_SECURITY_PROTOCOL "
                                 f"is {protocol} (SASL_SSL or SASL_PLAINTEXT use it)")
        object.__setattr__(self, "sasl_mechanism", mechanism)
        if not self.uses_tls:
            given = [name for name, value in (("KAFKA_SSL_CAFILE", self.ssl_cafile),
                                              ("KAFKA_SSL_CERTFILE", self.ssl_certfile),
                                              ("KAFKA_SSL_KEYFILE", self.ssl_keyfile)) if value]
            if given:
                raise UsageError(f"{PREFIX}{given[0]} is set but {PREFIX}KAFKA_SECURITY_PROTOCOL "
                                 f"is {protocol} (SSL or SASL_SSL use it)")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise UsageError(f"{PREFIX}KAFKA_SSL_KEYFILE needs {PREFIX}KAFKA_SSL_CERTFILE "
                             f"({self.ssl_keyfile!r})")

    @classmethod
    def parse(cls, broker: str, **security: Any) -> KafkaConfig:
        return cls(parse_brokers(broker), **security)

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context every client gets (None without TLS); a file that cannot be loaded
        is a `UsageError` naming the setting.

        >>> KafkaConfig(("k:9093",), "SSL", ssl_cafile="/nonexistent/ca.pem").ssl_context()
        Traceback (most recent call last):
        ...
        monitor.errors.UsageError: DRIFT_MONITOR_KAFKA_SSL_CAFILE cannot be read ('/nonexistent/ca.pem': No such file or directory)
        """
        if not self.uses_tls:
            return None
        from aiokafka.helpers import create_ssl_context

        for name, path in (("KAFKA_SSL_CAFILE", self.ssl_cafile),
                           ("KAFKA_SSL_CERTFILE", self.ssl_certfile),
                           ("KAFKA_SSL_KEYFILE", self.ssl_keyfile)):
            readable_file(name, path)
        try:
            return create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile,
                                      keyfile=self.ssl_keyfile)
        except (ssl.SSLError, ValueError) as exc:
            files = ", ".join(p for p in (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
                              if p)
            raise UsageError(f"{PREFIX}KAFKA_SSL_* files are not valid PEM ({files}: "
                             f"{getattr(exc, 'reason', None) or exc})") from None

    # -- one function per client family ----------------------------------------------------------
    def _security(self, context: ssl.SSLContext | None) -> dict[str, Any]:
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if context is not None:
            options["ssl_context"] = context
        if self.uses_sasl:
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        return options

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of `AIOKafkaConsumer` and `AIOKafkaProducer`."""
        return {"bootstrap_servers": list(self.brokers), **self._security(self.ssl_context())}

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's `KafkaAdminClient`, `KafkaConsumer` and
        `KafkaProducer` (the same TLS context as aiokafka's, passed as `ssl_context`)."""
        return {"bootstrap_servers": list(self.brokers), **self._security(self.ssl_context())}

    def faust(self) -> dict[str, Any]:
        """Keyword arguments of `faust.App`: the broker URLs and `broker_credentials`.

        >>> KafkaConfig(("a:1", "b:2")).faust()
        {'broker': ['kafka://a:1', 'kafka://b:2'], 'broker_credentials': None}
        """
        import faust

        credentials: Any = None
        context = self.ssl_context()
        if self.uses_sasl:
            credentials = faust.SASLCredentials(username=self.sasl_username,
                                                password=self.sasl_password,
                                                mechanism=self.sasl_mechanism,
                                                ssl_context=context)
        elif context is not None:
            credentials = faust.SSLCredentials(context)
        return {"broker": [f"kafka://{server}" for server in self.brokers],
                "broker_credentials": credentials}

    # -- the first connection ------------------------------------------------------------------
    async def check_connection(self, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        """Connect to the brokers as the clients will (TLS, SASL, one metadata request); return
        at the first that accepts, else raise `ServiceError` with why each refused, in one line."""
        from aiokafka.conn import create_conn
        from aiokafka.protocol.metadata import MetadataRequest

        context = self.ssl_context()
        security = self._security(context)
        reasons = []
        for server in self.brokers:
            host, _, port = server.rpartition(":")
            conn = None
            stage = "handshake"
            try:
                async with asyncio.timeout(timeout_s):
                    conn = await create_conn(host.strip("[]"), int(port),
                                             client_id="drift-monitor-check",
                                             request_timeout_ms=int(timeout_s * 1000),
                                             **security)
                    stage = "first request"
                    await conn.send(MetadataRequest([]))
                return
            except Exception as exc:  # each refusal is explained, nothing is raised raw
                reasons.append(self.explain(exc, server, stage, timeout_s))
            finally:
                if conn is not None:
                    conn.close()
        raise ServiceError("; ".join(reasons))

    def check(self, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        """`check_connection` for synchronous callers (`alerts tail`, the worker's start); from
        inside an event loop it runs on a thread of its own (blocking that loop, like the
        synchronous admin client that follows it)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.check_connection(timeout_s))
            return
        with ThreadPoolExecutor(1, thread_name_prefix="kafka-check") as pool:
            pool.submit(asyncio.run, self.check_connection(timeout_s)).result()

    def explain(self, exc: BaseException, server: str, stage: str = "handshake",
                timeout_s: float | None = None) -> str:
        """One line on why `server` refused us; never the password."""
        from aiokafka import errors

        protocol = f"{PREFIX}KAFKA_SECURITY_PROTOCOL={self.security_protocol}"
        if isinstance(exc, errors.SaslAuthenticationFailed):
            return (f"Kafka at {server} refused SASL user {self.sasl_username!r} "
                    f"({self.sasl_mechanism}): wrong username or password")
        if isinstance(exc, errors.UnsupportedSaslMechanismError):
            return (f"Kafka at {server} does not accept SASL mechanism {self.sasl_mechanism} "
                    f"({PREFIX}KAFKA_SASL_MECHANISM)")
        if isinstance(exc, ssl.SSLCertVerificationError):
            trusted = (f"the CA in {PREFIX}KAFKA_SSL_CAFILE ({self.ssl_cafile})"
                       if self.ssl_cafile else f"the system CAs ({PREFIX}KAFKA_SSL_CAFILE unset)")
            return (f"TLS certificate of Kafka at {server} not accepted by {trusted}: "
                    f"{exc.verify_message}")
        if isinstance(exc, ssl.SSLError):
            return (f"TLS handshake with Kafka at {server} failed "
                    f"({exc.reason or exc}): is it a TLS listener? ({protocol})")
        if isinstance(exc, ConnectionRefusedError):
            return f"nothing listens at {server} (connection refused)"
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve the Kafka host of {server} ({exc.strerror})"
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            waited = f" within {timeout_s:g} s" if timeout_s else ""
            return f"no answer from Kafka at {server}{waited} ({stage}; {protocol})"
        if isinstance(exc, ConnectionError | errors.KafkaConnectionError):
            return (f"Kafka at {server} closed the connection ({stage}): does {protocol} "
                    f"match that listener?")
        if isinstance(exc, errors.KafkaError):
            return f"Kafka at {server} refused us ({stage}): {type(exc).__name__}"
        return f"cannot connect to Kafka at {server} ({stage}): {type(exc).__name__}: {exc}"
