"""The worker and `alerts tail` on the local broker's real SASL_SSL listener (SCRAM-SHA-512 over
TLS with a CA of our own, set up by `scripts/services.sh up`): consuming and publishing through it,
and one clear error line, quickly, for wrong credentials or a TLS mismatch.

Every client here, the test's own included, is built from `Settings.kafka`, on topics of its own.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from support.kafka import ROOT, Worker, record_messages, wait_until

from monitor.service.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# A refused connection must end the process well before kafka-python's own 30 s retry loop.
REFUSED_WITHIN_S = 20.0


class Secured:
    """Topics of one test on the SASL_SSL listener, and the settings to reach them."""

    def __init__(self, listener: dict[str, str], tmp_path: Path) -> None:
        self.listener = listener
        tag = uuid.uuid4().hex[:10]
        self.model = f"m{tag}"
        self.predictions, self.alerts = f"sec-{tag}-predictions", f"sec-{tag}-alerts"
        self.dlq, self.state, self.group = f"sec-{tag}-dlq", f"sec-{tag}-state", f"sec-{tag}"
        self.profiles = tmp_path / "profiles"
        self.profiles.mkdir()
        self.tmp = tmp_path
        self.kafka = Settings.from_env(listener).kafka
        self.password = Path(listener["DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE"]).read_text().strip()
        admin = KafkaAdminClient(**self.kafka.kafka_python())
        try:
            admin.create_topics([NewTopic(self.predictions, 2, 1), NewTopic(self.alerts, 1, 1),
                                 NewTopic(self.dlq, 1, 1)])
        finally:
            admin.close()

    def env(self, **overrides: str) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_MONITOR_")}
        env.update(self.listener)
        env.update({
            "PYTHONUNBUFFERED": "1",
            "DRIFT_MONITOR_PROFILES": str(self.profiles),
            "DRIFT_MONITOR_WINDOW_SECONDS": "2",
            "DRIFT_MONITOR_GRACE_SECONDS": "1",
            "DRIFT_MONITOR_MIN_RECORDS": "50",
            "DRIFT_MONITOR_PREDICTIONS_TOPIC": self.predictions,
            "DRIFT_MONITOR_ALERTS_TOPIC": self.alerts,
            "DRIFT_MONITOR_DLQ_TOPIC": self.dlq,
            "DRIFT_MONITOR_STATE_TOPIC": self.state,
            "DRIFT_MONITOR_IDLE_SECONDS": "1",
            "DRIFT_MONITOR_GROUP": self.group,
            "DRIFT_MONITOR_HTTP_PORT": "0",  # probes on any free port: tests run side by side
        })
        env.update(overrides)
        return {k: v for k, v in env.items() if v != ""}  # "" unsets a listener setting

    def produce(self, topic: str, values: list[bytes], key: bytes) -> None:
        producer = KafkaProducer(**self.kafka.kafka_python(), acks="all", linger_ms=5)
        try:
            for value in values:
                producer.send(topic, value, key=key, partition=0)
            producer.flush(timeout=30)
        finally:
            producer.close()

    def read(self, topic: str) -> list[bytes]:
        """Every message now in `topic` (one partition), read over SASL_SSL."""
        consumer = KafkaConsumer(**self.kafka.kafka_python(), group_id=None,
                                 enable_auto_commit=False)
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            values: list[bytes] = []
            deadline = time.monotonic() + 20
            while consumer.position(tp) < end and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    values += [r.value for r in records]
            return values
        finally:
            consumer.close()

    def delete_topics(self) -> None:
        admin = KafkaAdminClient(**self.kafka.kafka_python())
        try:
            mine = {self.predictions, self.alerts, self.dlq, self.state,
                    f"{self.group}.{self.predictions}.partials",
                    f"{self.group}.{self.predictions}.windows"}
            admin.delete_topics(sorted(mine & set(admin.list_topics())))
        finally:
            admin.close()

    def run(self, args: list[str], **overrides: str) -> tuple[subprocess.CompletedProcess[str],
                                                              float]:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env(**overrides),
                              capture_output=True, text=True, timeout=120)
        return proc, time.monotonic() - started


@pytest.fixture
def secured(sasl_ssl: dict[str, str], tmp_path: Path) -> Iterator[Secured]:
    s = Secured(sasl_ssl, tmp_path)
    yield s
    s.delete_topics()


def assert_one_error_line(proc: subprocess.CompletedProcess[str], elapsed: float,
                          expected: str, *secrets: str) -> None:
    output = proc.stdout + proc.stderr
    errors = [line for line in output.splitlines() if "error:" in line]
    assert proc.returncode != 0, output
    assert len(errors) == 1 and expected in errors[0], output
    assert "Traceback" not in output, output
    assert elapsed < REFUSED_WITHIN_S, f"took {elapsed:.1f} s"
    for secret in secrets:
        assert secret not in output


# -- the worker --------------------------------------------------------------------------------------
def test_the_worker_consumes_and_publishes_alerts_over_sasl_ssl(
        secured: Secured,
        make_profile: Callable[[str, Path], Path]) -> None:
    make_profile(secured.model, secured.profiles)
    worker = Worker(secured.env(), secured.tmp / "worker.log").start()
    try:
        secured.produce(secured.predictions, record_messages(secured.model, 300, time.time(),
                                                             seed=11, x_mean=2.5),
                        key=secured.model.encode())
        worker.wait_for(re.compile(rf"window closed: .* model {secured.model} "), 30)
        assert [(records, invalid) for _, _, records, invalid in worker.windows(secured.model)
                ] == [(300, 0)]

        def x_alert() -> list[dict[str, Any]]:
            alerts = [json.loads(v) for v in secured.read(secured.alerts)]
            return [a for a in alerts if a["model"] == secured.model and a["feature"] == "x"
                    and a["status"] == "firing"]

        alert = wait_until(x_alert, 20, "the alert on x in the alert topic")[0]
        assert alert["value"] > alert["threshold"]
    finally:
        assert worker.stop() == 0
    log = worker.log()
    assert "Authenticated as drift via SCRAM-SHA-512" in log
    assert secured.password not in log


def test_a_wrong_password_stops_the_worker_with_one_error_line(
        secured: Secured, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    proc, elapsed = secured.run(["-m", "monitor.service.worker"],
                                DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE=str(wrong))
    assert_one_error_line(proc, elapsed, "refused SASL user 'drift' (SCRAM-SHA-512): wrong "
                          "username or password", "not-the-password", secured.password)


def test_plaintext_against_the_tls_port_stops_the_worker_with_one_error_line(
        secured: Secured) -> None:
    port = secured.kafka.brokers[0]
    proc, elapsed = secured.run(
        ["-m", "monitor.service.worker"], DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL="PLAINTEXT",
        DRIFT_MONITOR_KAFKA_SASL_MECHANISM="", DRIFT_MONITOR_KAFKA_SASL_USERNAME="",
        DRIFT_MONITOR_KAFKA_SASL_PASSWORD_FILE="", DRIFT_MONITOR_KAFKA_SSL_CAFILE="")
    assert_one_error_line(proc, elapsed, f"Kafka at {port} closed the connection (handshake): "
                          "does DRIFT_MONITOR_KAFKA_SECURITY_PROTOCOL=PLAINTEXT match")


# -- alerts tail -------------------------------------------------------------------------------------
def test_alerts_tail_reads_the_alert_topic_over_sasl_ssl(secured: Secured) -> None:
    alert = {"alert_id": "b7", "status": "firing", "severity": "warning", "model": secured.model,
             "version": "1", "feature": "x", "check": "mean_shift", "value": 0.9,
             "threshold": 0.3, "message": f"[{secured.model} v1] x: mean moved"}
    secured.produce(secured.alerts, [json.dumps(alert).encode()], key=secured.model.encode())
    proc, _ = secured.run(["-m", "monitor", "alerts", "tail", "--from-beginning", "--json",
                           "--timeout", "3"])
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [alert]


def test_alerts_tail_without_our_ca_is_one_error_line(secured: Secured) -> None:
    """The broker's certificate is signed by the local CA, not one the system trusts."""
    proc, elapsed = secured.run(["-m", "monitor", "alerts", "tail", "--timeout", "3"],
                                DRIFT_MONITOR_KAFKA_SSL_CAFILE="")
    assert_one_error_line(proc, elapsed, "not accepted by the system CAs "
                          "(DRIFT_MONITOR_KAFKA_SSL_CAFILE unset): self-signed certificate",
                          secured.password)
    assert proc.returncode == 2 and proc.stdout == ""
