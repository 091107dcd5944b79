"""One Kafka configuration for every client: the broker-URL parser, each client family's keyword
arguments, validation, and the one-line explanation of a refused connection."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
from kafka import KafkaAdminClient

from monitor.errors import ServiceError, UsageError
from monitor.service.kafka_config import KafkaConfig, parse_brokers


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A throwaway self-signed CA certificate (PEM), for building TLS contexts."""
    d = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
                    "-subj", "/CN=test CA"], check=True, capture_output=True)
    return str(d / "ca.pem")


def sasl_ssl(ca_file: str | None = None, **overrides: str) -> KafkaConfig:
    values = dict(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                  sasl_username="drift", sasl_password="pw-123", ssl_cafile=ca_file)
    values.update(overrides)
    return KafkaConfig.parse("kafka://k1:9094;kafka://k2:9094", **values)


# -- the one parser -------------------------------------------------------------------------------
@pytest.mark.parametrize("url, expected", [
    ("kafka://k1:9092;kafka://k2:9092", ("k1:9092", "k2:9092")),  # the worker used to get
    ("kafka://k1:9092,k2:9093", ("k1:9092", "k2:9093")),           # 'kafka://k2:9092' here
    ("k1:9092, k2:9092 ;", ("k1:9092", "k2:9092")),
    ("kafka://broker", ("broker:9092",)),
    ("kafka://[::1]:9094/", ("[::1]:9094",)),
])
def test_broker_urls_give_host_port_lists(url: str, expected: tuple[str, ...]) -> None:
    assert parse_brokers(url) == expected


@pytest.mark.parametrize("url, message", [
    ("kafka://k1:port", "bad port"),
    ("kafka://k1:0", "bad port"),
    (" ; ", "names no broker"),
    ("kafka://:9092", "empty host"),
    ("::1:9092", "IPv6"),
])
def test_bad_broker_urls_are_one_usage_error(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_brokers(url)


def test_every_client_family_gets_the_same_brokers() -> None:
    config = KafkaConfig.parse("kafka://k1:9092;kafka://k2:9092")
    assert config.aiokafka()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert config.kafka_python()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert config.faust()["broker"] == ["kafka://k1:9092", "kafka://k2:9092"]


# -- each client family's keyword arguments ---------------------------------------------------------
def test_sasl_ssl_options_for_aiokafka_and_kafka_python(ca_file: str) -> None:
    config = sasl_ssl(ca_file)
    for options in (config.aiokafka(), config.kafka_python()):
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("drift",
                                                                                    "pw-123")
        context = options["ssl_context"]
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test CA"),),)]


def test_the_options_are_accepted_by_the_clients_themselves(ca_file: str) -> None:
    """No unknown keyword: the real constructors take them (neither connects here)."""
    config = sasl_ssl(ca_file)

    async def build() -> None:
        AIOKafkaProducer(**config.aiokafka())

    asyncio.run(build())
    nowhere = KafkaConfig.parse("127.0.0.1:1", **{k: getattr(config, k) for k in (
        "security_protocol", "sasl_mechanism", "sasl_username", "sasl_password", "ssl_cafile")})
    with pytest.raises(Exception) as caught:  # kafka-python connects at once: nothing there
        KafkaAdminClient(**nowhere.kafka_python(), request_timeout_ms=100,
                         api_version_auto_timeout_ms=100)
    assert not isinstance(caught.value, TypeError)
    faust.App("kafka-config-test", **config.faust())


def test_faust_gets_sasl_credentials_with_the_tls_context(ca_file: str) -> None:
    credentials = sasl_ssl(ca_file).faust()["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("drift", "pw-123")
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert "pw-123" not in repr(credentials)


def test_faust_gets_ssl_credentials_without_sasl(ca_file: str) -> None:
    credentials = KafkaConfig(("k:9093",), "SSL", ssl_cafile=ca_file).faust()["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.verify_mode == ssl.CERT_REQUIRED


def test_sasl_plaintext_has_no_tls_and_plain_is_the_default_mechanism() -> None:
    config = KafkaConfig(("k:9092",), "sasl_plaintext", sasl_username="u", sasl_password="p")
    assert config.security_protocol == "SASL_PLAINTEXT"
    assert config.sasl_mechanism == "PLAIN"
    assert "ssl_context" not in config.aiokafka()
    credentials = config.faust()["broker_credentials"]
    assert credentials.protocol.value == "SASL_PLAINTEXT" and credentials.ssl_context is None


def test_plaintext_has_no_security_options() -> None:
    assert KafkaConfig(("k:9092",)).aiokafka() == {"bootstrap_servers": ["k:9092"],
                                                   "security_protocol": "PLAINTEXT"}


# -- validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, message", [
    (dict(security_protocol="TLS"), r"must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL \('TLS'\)"),
    (dict(security_protocol="SASL_SSL", sasl_mechanism="GSSAPI", sasl_username="u",
          sasl_password="p"), r"KAFKA_SASL_MECHANISM must be one of .* \('GSSAPI'\)"),
    (dict(security_protocol="SASL_SSL", sasl_username="u"), "PASSWORD are required"),
    (dict(sasl_username="u", sasl_password="p"),
     "KAFKA_SASL_USERNAME is set but DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    (dict(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p",
          ssl_cafile="/ca.pem"), "KAFKA_SSL_CAFILE is set but .* is SASL_PLAINTEXT"),
    (dict(security_protocol="SSL", ssl_keyfile="/k.pem"), "KAFKA_SSL_KEYFILE needs"),
])
def test_inconsistent_settings_are_one_usage_error(values: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        KafkaConfig(("k:9092",), **values)
    assert "\n" not in str(caught.value)
    assert "'p'" not in str(caught.value)  # never the password


def test_a_pem_file_that_is_not_a_certificate_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(UsageError, match=r"not valid PEM \(.*ca\.pem"):
        KafkaConfig(("k:9093",), "SSL", ssl_cafile=str(bad)).ssl_context()


def test_the_password_is_not_in_repr() -> None:
    config = sasl_ssl(None, sasl_password="very-secret-pw")
    assert "very-secret-pw" not in repr(config) and "very-secret-pw" not in str(config)


# -- explaining a refusal ---------------------------------------------------------------------------
@pytest.mark.parametrize("exc, expected", [
    (SaslAuthenticationFailed("Authentication failed due to invalid credentials"),
     "Kafka at k1:9094 refused SASL user 'drift' (SCRAM-SHA-512): wrong username or password"),
    (UnsupportedSaslMechanismError("x"),
     "Kafka at k1:9094 does not accept SASL mechanism SCRAM-SHA-512"),
    (ConnectionRefusedError(111, "refused"), "nothing listens at k1:9094 (connection refused)"),
    (ConnectionResetError(), "Kafka at k1:9094 closed the connection (handshake): does "
                             "DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL=SASL_SSL match"),
    (TimeoutError(), "no answer from Kafka at k1:9094 within 3 s"),
])
def test_a_refusal_is_explained_in_one_line(exc: BaseException, expected: str) -> None:
    line = sasl_ssl(None, sasl_password="pw-secret").explain(exc, "k1:9094", timeout_s=3)
    assert expected in line
    assert "\n" not in line and "pw-secret" not in line


def test_nothing_listening_is_a_service_error_naming_the_server() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServiceError, match=rf"nothing listens at 127.0.0.1:{port}"):
        KafkaConfig((f"127.0.0.1:{port}",)).check(timeout_s=5)
