"""`drift-monitor alerts forward`: alert events as Alertmanager alerts (pure mapping), and the
forwarder between the real broker and a real Alertmanager (Debian's prometheus-alertmanager)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from support.kafka import wait_until

from monitor.drift.checks import Severity
from monitor.drift.evaluate import FeatureReport, Finding, WindowReport
from monitor.ingest.schema import Kind
from monitor.outputs.alertmanager import NotAnAlert, parse_time, postable
from monitor.stream.alerts import AlertTracker

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = "127.0.0.1:9092"
AM = "http://127.0.0.1:9095"
NOW = parse_time("2026-11-26T12:03:00Z")


def report(model: str, i: int, checks: list[tuple[str, Severity, float]]) -> WindowReport:
    start = NOW.timestamp() - 180 + 60 * i
    found = [Finding("age", c, s, v, v / 2, "") for c, s, v in checks]
    features = {"age": FeatureReport("age", Kind.NUMERIC, {"mean": 50.0, "training_mean": 40.0},
                                     {}, found)}
    return WindowReport(model, "3", "sha256:p1", start, start + 60, 500, 0, 0, 0.0, [], [],
                        features, [])


WARN = [("psi", Severity.WARNING, 0.3), ("ks", Severity.WARNING, 0.2),
        ("mean_shift", Severity.WARNING, 0.5)]
CRIT = [(c, Severity.CRITICAL, 3 * v) for c, _, v in WARN]


def episode(model: str) -> list[dict[str, Any]]:
    """Real tracker events of one episode: firing (warning), escalation, resolved."""
    tracker = AlertTracker(trend=False)
    reports = [report(model, 0, WARN), report(model, 1, CRIT), report(model, 2, []),
               report(model, 3, [])]
    return [e.to_dict() for r in reports for e in tracker.observe(r)]


# -- the mapping (pure) -------------------------------------------------------------------------
def test_a_firing_alert_is_active_with_the_episode_labels_and_annotations() -> None:
    firing = episode("churn")[0]
    (posted,) = postable(firing, now=NOW, expire_after=600)
    assert posted["labels"] == {"alertname": "DriftDetected", "source": "drift-monitor",
                                "model": "churn", "version": "3", "feature": "age",
                                "severity": "warning"}
    assert posted["annotations"]["message"] == firing["message"]
    assert posted["annotations"]["profile_id"] == "sha256:p1"
    assert posted["annotations"]["alert_id"] == firing["alert_id"]
    assert posted["annotations"]["checks"].startswith("mean_shift 0.5 > 0.25 (warning); psi")
    assert posted["startsAt"] == "2026-11-26T12:00:00.000Z"
    assert parse_time(posted["endsAt"]) == NOW + timedelta(seconds=600)


def test_an_escalation_ends_the_lower_severity_alert_and_starts_the_higher_one() -> None:
    escalation = episode("churn")[1]
    assert escalation["previous_severity"] == "warning"
    old, new = postable(escalation, now=NOW, expire_after=600)
    assert (old["labels"]["severity"], new["labels"]["severity"]) == ("warning", "critical")
    assert {k: v for k, v in old["labels"].items() if k != "severity"} == {
        k: v for k, v in new["labels"].items() if k != "severity"}
    assert parse_time(old["endsAt"]) == parse_time(escalation["window_end"]) <= NOW
    assert parse_time(new["endsAt"]) > NOW


def test_a_resolution_ends_the_alert_of_the_episode_severity() -> None:
    events = episode("churn")
    resolved = events[-1]
    assert resolved["status"] == "resolved"
    (posted,) = postable(resolved, now=NOW + timedelta(hours=1), expire_after=600)
    assert posted["labels"]["severity"] == "critical"
    assert posted["endsAt"] == resolved["window_end"]
    # Event time ahead of the clock: the alert still ends now, not in the future.
    (early,) = postable(resolved, now=NOW - timedelta(seconds=30), expire_after=600)
    assert parse_time(early["endsAt"]) == NOW - timedelta(seconds=30)


def test_model_level_and_persistent_events() -> None:
    alert = {**episode("churn")[0], "feature": "", "episode": "edge_record_rate",
             "status": "persistent"}
    (posted,) = postable(alert, now=NOW, expire_after=600)
    assert "feature" not in posted["labels"] and posted["labels"]["alertname"] == "EdgeRecords"
    assert "retrain" in posted["annotations"]["persistent"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"status": "maybe"}, "unknown status 'maybe'"),
    ({"alert_id": None}, "missing alert_id"),
    ({"since": "yesterday"}, "bad time"),
])
def test_what_is_not_an_alert_event_is_refused(change: dict, reason: str) -> None:
    with pytest.raises(NotAnAlert, match=reason):
        postable({**episode("churn")[0], **change}, now=NOW, expire_after=60)


# -- the forwarder on the real broker and a real Alertmanager --------------------------------------

def am_alerts(base: str, model: str) -> list[dict[str, Any]]:
    """Active alerts of `model` in the Alertmanager at `base` (none when it does not answer)."""
    query = urllib.parse.urlencode({"filter": f'model="{model}"'})
    try:
        with urllib.request.urlopen(f"{base}/api/v2/alerts?{query}", timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return []


def produce(topic: str, events: list[dict[str, Any]]) -> None:
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    try:
        for event in events:
            producer.send(topic, json.dumps(event).encode(), key=event["model"].encode())
        producer.flush(timeout=30)
    finally:
        producer.close()


def fresh(event: dict[str, Any]) -> dict[str, Any]:
    """The event moved to the present (Alertmanager ends alerts whose endsAt has passed)."""
    shift = datetime.now(UTC) - NOW
    out = dict(event)
    for key in ("since", "window_start", "window_end"):
        moved = parse_time(event[key]) + shift
        out[key] = moved.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return out


class Forwarder:
    def __init__(self, tmp: Path, topic: str, url: str, *extra: str) -> None:
        self.log_path = tmp / f"forwarder-{uuid.uuid4().hex[:6]}.log"
        self.topic = topic
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_MONITOR_")}
        env.update(DRIFT_MONITOR_BROKER=f"kafka://{BOOTSTRAP}", DRIFT_MONITOR_ALERTS_TOPIC=topic,
                   DRIFT_MONITOR_GROUP=f"am-{topic}", PYTHONUNBUFFERED="1")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "alerts", "forward", "--alertmanager", url,
                 *extra], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"forwarder ignored SIGTERM:\n{self.log()}")


@pytest.fixture
def forwarders() -> Iterator[list[Forwarder]]:
    """Forwarders started by a test: stopped, and their alert topics deleted, at its end."""
    from kafka.admin import KafkaAdminClient

    running: list[Forwarder] = []
    yield running
    for forwarder in running:
        if forwarder.proc.poll() is None:
            forwarder.stop()
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        mine = {f.topic for f in running} & set(admin.list_topics())
        if mine:
            admin.delete_topics(sorted(mine))
    finally:
        admin.close()


@pytest.mark.integration
def test_a_drift_is_one_active_alert_in_alertmanager_until_resolved(
        services: None, tmp_path: Path, forwarders: list[Forwarder]) -> None:
    model = f"am{uuid.uuid4().hex[:8]}"
    topic = f"it-{model}-alerts"
    firing, escalation, resolved = (fresh(e) for e in episode(model))
    forwarder = Forwarder(tmp_path, topic, AM, "--expire-after", "8")
    forwarders.append(forwarder)
    produce(topic, [firing])
    (active,) = wait_until(lambda: am_alerts(AM, model), 30, "the firing alert in Alertmanager")
    assert active["labels"] == {"alertname": "DriftDetected", "source": "drift-monitor",
                                "model": model, "version": "3", "feature": "age",
                                "severity": "warning"}
    assert active["annotations"]["message"] == firing["message"]
    assert active["annotations"]["profile_id"] == "sha256:p1"
    assert active["status"]["state"] == "active"
    # The forwarder keeps it from expiring: endsAt moves forward (refresh every 2 s here).
    first_end = active["endsAt"]
    wait_until(lambda: [a for a in am_alerts(AM, model) if a["endsAt"] > first_end], 20,
               "the refreshed alert")
    produce(topic, [escalation])
    (critical,) = wait_until(
        lambda: [a for a in am_alerts(AM, model) if a["labels"]["severity"] == "critical"]
        if len(am_alerts(AM, model)) == 1 else [], 30, "only the critical alert")
    assert critical["annotations"]["alert_id"] == firing["alert_id"]
    produce(topic, [resolved])
    wait_until(lambda: not am_alerts(AM, model), 30, "the resolution to end the alert")
    assert forwarder.stop() == 0
    assert "3 alert events forwarded, 0 messages skipped" in forwarder.log()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.integration
def test_alertmanager_down_means_retry_with_backoff_and_nothing_dropped(
        services: None, tmp_path: Path, forwarders: list[Forwarder]) -> None:
    """The forwarder starts before its Alertmanager; the alert arrives once it is up."""
    model = f"am{uuid.uuid4().hex[:8]}"
    topic = f"it-{model}-alerts"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    forwarder = Forwarder(tmp_path, topic, url)
    forwarders.append(forwarder)
    produce(topic, [fresh(episode(model)[0])])
    wait_until(lambda: "retrying with backoff" in forwarder.log(), 30, "a retry in the log")
    env = dict(os.environ, SERVICES_DIR=str(tmp_path / "services"), ALERTMANAGER_PORT=str(port))
    script = ["bash", str(ROOT / "scripts" / "services.sh")]
    started = subprocess.run([*script, "up", "alertmanager"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        (active,) = wait_until(lambda: am_alerts(url, model), 60, "the alert after the outage")
        assert active["labels"]["model"] == model and active["labels"]["severity"] == "warning"
        assert forwarder.stop() == 0
        assert "alertmanager accepted 1 alerts after" in forwarder.log()
    finally:
        subprocess.run([*script, "down", "alertmanager"], env=env, capture_output=True,
                       timeout=60)
