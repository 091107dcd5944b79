"""`drift-monitor demo produce` (the Docker stack's demo producer) on the real broker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from monitor.profile.model import Profile

pytestmark = pytest.mark.integration


def test_demo_produce_writes_the_profile_and_the_stream(services: None, tmp_path: Path) -> None:
    topic = f"demo-test-{uuid.uuid4().hex[:8]}"
    profiles = tmp_path / "profiles"
    env = dict(os.environ, DRIFT_MONITOR_PREDICTIONS_TOPIC=topic,
               DRIFT_MONITOR_BROKER="kafka://127.0.0.1:9092", DRIFT_MONITOR_PROFILES=str(profiles))
    proc = subprocess.run([sys.executable, "-m", "monitor", "demo", "produce", "--windows", "1",
                           "--rate", "20"], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    profile = Profile.load(profiles / "churn-3.json")
    assert (profile.model, profile.version) == ("churn", "3")
    consumer = KafkaConsumer(topic, bootstrap_servers=["127.0.0.1:9092"], group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    records = [json.loads(m.value) for m in consumer]
    consumer.close()
    assert len(records) == 100  # 20 records/s for one 5-second window
    assert {(r["model"], r["version"]) for r in records} == {("churn", "3")}
    assert set(records[0]["features"]) == set(profile.schema) - {"prediction"}


def test_make_demo_main_job_ends_with_alerts_and_every_record_counted(services: None) -> None:
    """The README's command one (`make demo` runs `python -m monitor.demo`), shortened to 8
    windows with drift from the 5th: it exits 0 only when alerts fired. Its counts are its own
    run's (its reports topic), whatever else the shared metrics store holds, and nothing pages
    before the drift."""
    code = "from monitor.demo.run import main; raise SystemExit(main(windows=8, drift_from=4))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "FIRING" in out and "age/mean_shift" in out and "state/novelty_rate" in out
    # One page per drifted feature once the drift is on (trend episodes are their own).
    after = out.split(">>> drift injected")[1].split("[demo] summary")[0]
    paged = [m[1] for m in re.finditer(r" FIRING .* churn v3  (\S+)/(?!trend)", after)]
    assert paged and len(paged) == len(set(paged)), paged
    assert {"age", "state", "comment"} <= set(paged)
    episodes = int(out.split("alert episodes")[1].split()[0])
    assert episodes >= len(set(paged))
    produced = int(out.split("records produced")[1].split()[0])
    counted = int(out.split("records in windows")[1].split()[0])
    assert produced == counted == 8 * 5 * 400
    assert int(out.split("windows evaluated")[1].split()[0]) == 8
    before = out.split(">>> drift injected")[0]
    assert " FIRING " not in before
    assert "pages before drift   0\n" in out
    # Episodes on features the demo leaves alone are named as false alarms, none hidden.
    from monitor.demo.run import DRIFTED
    stray = [m[1] for m in re.finditer(r" FIRING .* churn v3  (\S+)/", out) if m[1] not in DRIFTED]
    assert int(out.split("false alarms")[1].split()[0].rstrip(":")) == len(stray)
    assert f"{8 * 17} here" in out  # 8 windows x 16 features and the prediction
