"""`drift-monitor alerts tail` on a real broker: readable lines, or the raw JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaProducer

pytestmark = pytest.mark.integration

ALERT = {"alert_id": "a1b2", "status": "firing", "severity": "critical",
         "previous_severity": "warning", "model": "churn", "version": "3", "feature": "state",
         "episode": "drift", "check": "novelty_rate", "value": 0.06, "threshold": 0.002,
         "checks": [{"check": "novelty_rate", "value": 0.06, "threshold": 0.002,
                     "severity": "critical"},
                    {"check": "psi", "value": 0.3, "threshold": 0.02, "severity": "critical"}],
         "window_start": "2026-11-26T12:00:00.000Z", "window_end": "2026-11-26T12:01:00.000Z",
         "since": "2026-11-26T11:58:00.000Z", "windows": 3, "profile_id": "sha256:0123",
         "message": "[churn v3] state: now critical (was warning): 6.0% values never seen"}


@pytest.mark.parametrize("raw", [False, True], ids=["readable", "json"])
def test_tail_prints_the_alerts_on_the_topic(services: None, raw: bool) -> None:
    topic = f"tail-test-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=["127.0.0.1:9092"], acks="all")
    producer.send(topic, json.dumps(ALERT).encode(), key=b"churn").get(timeout=30)
    producer.close()
    env = dict(os.environ, DRIFT_MONITOR_ALERTS_TOPIC=topic,
               DRIFT_MONITOR_BROKER="kafka://127.0.0.1:9092")
    args = [sys.executable, "-m", "monitor", "alerts", "tail", "--from-beginning", "--timeout", "5"]
    proc = subprocess.run(args + (["--json"] if raw else []), env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if raw:
        assert json.loads(proc.stdout.strip()) == ALERT
    else:
        first = proc.stdout.splitlines()[0]
        assert "ESCALATED CRITICAL (was warning)" in first and "state/novelty_rate" in first
        assert "value=0.06 threshold=0.002 +1 checks" in first
        assert "[churn v3] state: now critical (was warning): 6.0% values never" in proc.stdout
