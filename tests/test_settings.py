"""Worker settings from `DRIFT_MONITOR_*`: Kafka security, secrets from files, redaction, and one
readable line for every bad value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.errors import UsageError
from monitor.service.settings import Settings

SASL = {"DRIFT_MONITOR_BROKER": "kafka://k1:9094;kafka://k2:9094",
        "DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "DRIFT_MONITOR_KAFKA_SASL_MECHANISM": "scram-sha-256",
        "DRIFT_MONITOR_KAFKA_SASL_USERNAME": "drift"}


def secret_file(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def test_sasl_settings_reach_every_client_family() -> None:
    settings = Settings.from_env({**SASL, "DRIFT_MONITOR_KAFKA_SASL_PASSWORD": "pw-1"})
    kafka = settings.kafka
    assert kafka.brokers == ("k1:9094", "k2:9094")
    assert (kafka.security_protocol, kafka.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")
    assert kafka.aiokafka()["sasl_plain_password"] == "pw-1"
    assert kafka.kafka_python()["sasl_plain_username"] == "drift"
    assert kafka.faust()["broker_credentials"].password == "pw-1"


def test_secrets_come_from_files_without_the_final_newline(tmp_path: Path) -> None:
    env = {**SASL, "DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE": secret_file(tmp_path, "pw", "pw-2\n"),
           "DRIFT_MONITOR_INFLUX_TOKEN_FILE": secret_file(tmp_path, "token", "tok-3\n")}
    env.pop("DRIFT_MONITOR_KAFKA_SASL_USERNAME")
    env["DRIFT_MONITOR_KAFKA_SASL_USERNAME_FILE"] = secret_file(tmp_path, "user", "svc-drift\n")
    settings = Settings.from_env(env)
    assert settings.kafka_sasl_password == "pw-2"
    assert settings.kafka_sasl_username == "svc-drift"
    assert settings.influx_token == "tok-3"


@pytest.mark.parametrize("content, setup, message", [
    (None, "missing", r"KAFKA_SASL_PASSWORD_FILE cannot be read \('.*nope': No such file"),
    ("\n", "file", r"KAFKA_SASL_PASSWORD_FILE is empty"),
    ("pw", "both", r"set DRIFT_MONITOR_KAFKA_SASL_PASSWORD or DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE, not both"),
])
def test_a_bad_secret_file_is_one_usage_error_without_the_secret(
        tmp_path: Path, content: str | None, setup: str, message: str) -> None:
    env = dict(SASL)
    if setup == "missing":
        env["DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE"] = str(tmp_path / "nope")
    else:
        env["DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE"] = secret_file(tmp_path, "pw", content or "")
    if setup == "both":
        env["DRIFT_MONITOR_KAFKA_SASL_PASSWORD"] = "direct-secret"
    with pytest.raises(UsageError, match=message) as caught:
        Settings.from_env(env)
    assert "direct-secret" not in str(caught.value) and "\n" not in str(caught.value)


def test_secrets_are_hidden_from_the_settings_line_and_repr(tmp_path: Path) -> None:
    settings = Settings.from_env({**SASL, "DRIFT_MONITOR_KAFKA_SASL_PASSWORD": "pw-hidden",
                                  "DRIFT_MONITOR_INFLUX_TOKEN": "token-hidden"})
    line = str(settings.redacted())
    assert "pw-hidden" not in line and "token-hidden" not in line
    assert settings.redacted()["kafka_sasl_password"] == "***"
    assert settings.redacted()["kafka_sasl_username"] == "drift"  # not a secret on its own
    assert "pw-hidden" not in repr(settings) and "token-hidden" not in repr(settings)
    assert "pw-hidden" not in repr(settings.kafka)


@pytest.mark.parametrize("env, message", [
    ({"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "TLS"},
     r"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL must be one of .* \('TLS'\)"),
    ({**SASL, "DRIFT_MONITOR_KAFKA_SASL_PASSWORD": "x", "DRIFT_MONITOR_KAFKA_SASL_MECHANISM": "MD5"},
     r"DRIFT_MONITOR_KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 \('MD5'\)"),
    ({**SASL}, "DRIFT_MONITOR_KAFKA_SASL_USERNAME and DRIFT_MONITOR_KAFKA_SASL_PASSWORD are required"),
    ({"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "SSL",
      "DRIFT_MONITOR_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
     r"DRIFT_MONITOR_KAFKA_SSL_CAFILE cannot be read \('/nonexistent/ca.pem': No such file"),
    ({"DRIFT_MONITOR_INFLUX_CA_FILE": "/nonexistent/ca.pem"},
     r"DRIFT_MONITOR_INFLUX_CA_FILE cannot be read \('/nonexistent/ca.pem'"),
    ({"DRIFT_MONITOR_BROKER": "kafka://k1:90x2"}, r"DRIFT_MONITOR_BROKER has a bad port"),
    ({"DRIFT_MONITOR_HTTP_PORT": "70000"},
     r"DRIFT_MONITOR_HTTP_PORT must be a port number from 0 to 65535 \('70000'\)"),
    ({"DRIFT_MONITOR_HTTP_PORT": "-1"}, r"DRIFT_MONITOR_HTTP_PORT must be a port number"),
    ({"DRIFT_MONITOR_MAX_MESSAGE_BYTES": "0"},
     r"DRIFT_MONITOR_MAX_MESSAGE_BYTES must be a positive integer \('0'\)"),
    # str.isdigit() is true for these, int() fails on the first and reads the second as 3
    ({"DRIFT_MONITOR_HTTP_PORT": "\u00b2"}, r"DRIFT_MONITOR_HTTP_PORT must be a port number"),
    ({"DRIFT_MONITOR_HTTP_PORT": "\u0663"}, r"DRIFT_MONITOR_HTTP_PORT must be a port number"),
    # a store URL the client cannot use: refused at start, not write errors forever
    ({"DRIFT_MONITOR_INFLUX_URL": "vm:8428"},
     r"DRIFT_MONITOR_INFLUX_URL must be an http:// or https:// URL with a host \('vm:8428'\)"),
    ({"DRIFT_MONITOR_INFLUX_URL": "ftp://vm"}, r"DRIFT_MONITOR_INFLUX_URL must be an http"),
    ({"DRIFT_MONITOR_INFLUX_URL": "http://vm:99999"}, r"DRIFT_MONITOR_INFLUX_URL has a bad port"),
    # topics that can never exist: not waited for forever
    ({"DRIFT_MONITOR_PREDICTIONS_TOPIC": "bad topic/name"},
     r"DRIFT_MONITOR_PREDICTIONS_TOPIC is not a valid Kafka topic name"),
    ({"DRIFT_MONITOR_DLQ_TOPIC": "dlq:1"}, r"DRIFT_MONITOR_DLQ_TOPIC is not a valid Kafka topic"),
    # a window per record (and times / window overflowing), or none closing within a year
    ({"DRIFT_MONITOR_WINDOW_SECONDS": "1e-300"},
     r"DRIFT_MONITOR_WINDOW_SECONDS must be from 1 to 31622400 seconds \(366 days\) \(1e-300\)"),
    ({"DRIFT_MONITOR_WINDOW_SECONDS": "1e300"}, r"DRIFT_MONITOR_WINDOW_SECONDS must be from 1"),
    ({"DRIFT_MONITOR_GROUP": "g" * 300},
     r"DRIFT_MONITOR_STATE_TOPIC \(named after DRIFT_MONITOR_GROUP and .*\) is not a valid"),
])
def test_bad_values_are_one_usage_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        Settings.from_env(env)
    assert "\n" not in str(caught.value)


def test_the_worker_command_prints_one_error_line_for_a_bad_setting() -> None:
    env = {"DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "DRIFT_MONITOR_KAFKA_SASL_USERNAME": "drift",
           "DRIFT_MONITOR_KAFKA_SASL_PASSWORD": "pw-never-printed",
           "DRIFT_MONITOR_KAFKA_SASL_MECHANISM": "KERBEROS"}
    proc = subprocess.run([sys.executable, "-m", "monitor", "worker"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: DRIFT_MONITOR_KAFKA_SASL_MECHANISM must be one of PLAIN, SCRAM-SHA-256, "
        "SCRAM-SHA-512 ('KERBEROS')"]
    assert "pw-never-printed" not in proc.stdout + proc.stderr


def test_a_taken_http_port_stops_the_worker_with_one_error_line() -> None:
    """Before anything connects: the port the probes need is checked first."""
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin", "DRIFT_MONITOR_HTTP_BIND": "127.0.0.1",
               "DRIFT_MONITOR_HTTP_PORT": str(port), "DRIFT_MONITOR_BROKER": "127.0.0.1:9",
               "DRIFT_MONITOR_PROFILES": "."}
        proc = subprocess.run([sys.executable, "-m", "monitor", "worker"], env=env,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    # The settings line (the worker's log), then the one error line; nothing connected.
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port} (DRIFT_MONITOR_HTTP_PORT): Address already "
        f"in use"), proc.stderr
    assert "Traceback" not in proc.stderr and "Kafka" not in proc.stderr


def test_credentials_in_the_store_url_are_refused_without_showing_them() -> None:
    """They would otherwise be printed in the settings line and the sink's log line."""
    with pytest.raises(UsageError, match=r"must not hold credentials") as caught:
        Settings.from_env({"DRIFT_MONITOR_INFLUX_URL": "http://admin:pw-in-url@vm:8428/"})
    assert "pw-in-url" not in str(caught.value) and "vm:8428" in str(caught.value)


def test_a_group_with_a_slash_gives_the_faust_app_a_data_directory_of_its_own_name() -> None:
    """Faust's data directory is named after the group: 'team/a' crashed the worker at start
    with a traceback (FileNotFoundError: /tmp/drift-monitor-team/a)."""
    from monitor.service.app import create_app

    app = create_app(Settings.from_env({"DRIFT_MONITOR_GROUP": "team/a"}))
    assert Path(str(app.conf.datadir)).name == "drift-monitor-team_a"
