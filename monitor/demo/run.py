"""`make demo`: the whole pipeline on a real broker, with drift to see, in about two minutes.

It uses the demo model's profile in `profiles/churn-3.json` (or builds it from the training data
the package ships, `monitor/demo/data/churn_train.csv`), starts a worker, produces a stream of
prediction logs at wall-clock time (5-second windows), injects drift part way (a shift of `age`, a
new `state` category, French `comment`s), prints alerts as they arrive on the alert topic, then a
summary. Topics are new for every run and the summary counts only what this run's worker
reported on its own reports topic, so runs never see each other's data (the metrics store,
shared by every run, is only pointed to).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from monitor.demo.synthetic import Scenario, generate_columns, records
from monitor.ingest.timestamps import parse_ts
from monitor.outputs.render import format_alert
from monitor.profile.build import BuildOptions, build_profile
from monitor.service.kafka_config import KafkaConfig
from monitor.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]  # the repository, when run from a checkout
TRAINING_DATA = Path(__file__).resolve().parent / "data" / "churn_train.csv"
PROFILE_NAME = "churn-3.json"
WINDOW_SECONDS = 5
RATE = 400  # records per second
WINDOWS = 16
DRIFT_FROM = 7  # the first drifted window
# What the drift changes: the three drifted inputs and the prediction, which depends on age.
DRIFTED = frozenset({"age", "state", "comment", "prediction"})
VM_URL = os.environ.get("DEMO_VM_URL", "http://127.0.0.1:8428")


def main(windows: int = WINDOWS, drift_from: int = DRIFT_FROM) -> int:
    run = time.strftime("%Y%m%d%H%M%S")
    work = ROOT / ".demo" / run
    work.mkdir(parents=True)
    profiles = ROOT / "profiles"
    if (profiles / PROFILE_NAME).exists():
        print(f"[demo] profile of model churn v3: {profiles / PROFILE_NAME}", flush=True)
    else:
        profiles = work / "profiles"
        profiles.mkdir()
        build_demo_profile(profiles)
    topics = {name: f"demo-{run}-{name}" for name in ("predictions", "alerts", "dlq", "reports")}
    env = dict(os.environ,
               DRIFT_MONITOR_BROKER=os.environ.get("DRIFT_MONITOR_BROKER", "kafka://127.0.0.1:9092"),
               DRIFT_MONITOR_PROFILES=str(profiles),
               DRIFT_MONITOR_WINDOW_SECONDS=str(WINDOW_SECONDS),
               DRIFT_MONITOR_GRACE_SECONDS="1",
               DRIFT_MONITOR_IDLE_SECONDS="2",  # the last window closes 2 s after the stream ends
               DRIFT_MONITOR_MIN_RECORDS="200",
               DRIFT_MONITOR_PREDICTIONS_TOPIC=topics["predictions"],
               DRIFT_MONITOR_ALERTS_TOPIC=topics["alerts"],
               DRIFT_MONITOR_DLQ_TOPIC=topics["dlq"],
               DRIFT_MONITOR_REPORTS_TOPIC=topics["reports"],
               DRIFT_MONITOR_STATE_TOPIC=f"demo-{run}-state",
               DRIFT_MONITOR_GROUP=f"demo-{run}",
               DRIFT_MONITOR_INFLUX_URL=os.environ.get("DRIFT_MONITOR_INFLUX_URL", VM_URL),
               DRIFT_MONITOR_INFLUX_BUCKET="drift", DRIFT_MONITOR_INFLUX_ORG="drift",
               # probes on any free port (logged), so the demo runs beside a worker on 6066
               DRIFT_MONITOR_HTTP_PORT=os.environ.get("DRIFT_MONITOR_HTTP_PORT", "0"))
    kafka = Settings.from_env(env).kafka  # DRIFT_MONITOR_KAFKA_* security, as the worker's
    kafka.check()
    _create_topic(kafka, topics["predictions"], partitions=4)
    log = (work / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-m", "monitor.service.worker"], env=env, cwd=work,
                              stdout=log, stderr=subprocess.STDOUT)
    print(f"[demo] worker started (log: {work / 'worker.log'})", flush=True)
    alerts: list[dict] = []
    stop = threading.Event()
    reader = threading.Thread(target=_read_alerts, args=(kafka, topics["alerts"], alerts, stop),
                              daemon=True)
    reader.start()
    try:
        produced, drift_start = produce_stream(kafka, topics["predictions"], windows=windows,
                                               drift_from=drift_from)
        deadline = time.time() + WINDOW_SECONDS + 8
        while time.time() < deadline and worker.poll() is None:
            time.sleep(0.2)  # wall-clock wait for the last window to close (plus grace)
    finally:
        stop.set()
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        reader.join(timeout=5)
    reports = _read_reports(kafka, topics["reports"])
    counts = episode_counts(alerts)
    early = pages_before(alerts, drift_start)
    print("\n[demo] summary", flush=True)
    print(f"  records produced     {produced}")
    print(f"  records in windows   {sum(r['records'] for r in reports)} (this run's window "
          f"reports, topic {topics['reports']})")
    print(f"  windows evaluated    {len(reports)}")
    print(f"  alert episodes       {counts['episodes']} ({counts['escalations']} escalated, "
          f"{counts['persistent']} persistent, {counts['resolved']} resolved; "
          f"topic {topics['alerts']})")
    print(f"  episodes by feature  {', '.join(counts['by_feature']) or 'none'}")
    print(f"  pages before drift   {len(early)}{': ' + ', '.join(early) if early else ''}")
    stray = undrifted(alerts)
    checked = len(reports) * len(profile_features(reports))
    print(f"  false alarms         {len(stray)}{': ' + ', '.join(stray) if stray else ''} "
          f"(episodes on features the demo does not drift; the thresholds' budget is 1 per "
          f"1,000 window-features, {checked} here)")
    print(f"  metrics              {VM_URL} (VictoriaMetrics, shared by every run; e.g. "
          f"{VM_URL}/api/v1/query?query=drift_feature_psi)")
    print(f"  worker log           {work / 'worker.log'}")
    return 0 if counts["episodes"] else 1


def pages_before(alerts: list[dict], drift_start: float) -> list[str]:
    """`feature/check` of each firing event about a window that ended before the drift began:
    pages the demo should never send.

    >>> pages_before([{"status": "firing", "window_end": "1970-01-01T00:00:10Z",
    ...                "feature": "comment", "check": "language_tvd"},
    ...               {"status": "firing", "window_end": "1970-01-01T00:00:40Z",
    ...                "feature": "age", "check": "psi"}], drift_start=30.0)
    ['comment/language_tvd']
    """
    return [f"{a.get('feature') or 'model'}/{a.get('check')}" for a in alerts
            if a.get("status") == "firing" and parse_ts(a["window_end"]) <= drift_start]


def undrifted(alerts: list[dict]) -> list[str]:
    """`feature/check (severity)` of each episode opened on a feature the demo does not drift.

    >>> undrifted([{"status": "firing", "feature": "age", "check": "psi", "severity": "critical"},
    ...            {"status": "firing", "feature": "tenure", "check": "ks", "severity": "warning"},
    ...            {"status": "firing", "feature": "tenure", "check": "ks", "severity": "critical",
    ...             "previous_severity": "warning"}])
    ['tenure/ks (warning)']
    """
    return [f"{a.get('feature') or 'model'}/{a.get('check')} ({a.get('severity')})"
            for a in alerts if a.get("status") == "firing" and not a.get("previous_severity")
            and a.get("feature") not in DRIFTED]


def profile_features(reports: list[dict]) -> set[str]:
    """The features the window reports evaluated."""
    return {name for r in reports for name in r.get("features", {})}


def episode_counts(alerts: list[dict]) -> dict[str, Any]:
    """Alert events counted as episodes (one `alert_id` each): opened, escalated, persistent,
    resolved, and `feature (kind, worst severity)` per episode.

    >>> events = [{"alert_id": "a", "status": "firing", "severity": "warning", "feature": "age",
    ...            "episode": "drift"},
    ...           {"alert_id": "a", "status": "firing", "severity": "critical", "feature": "age",
    ...            "episode": "drift", "previous_severity": "warning"},
    ...           {"alert_id": "b", "status": "firing", "severity": "warning", "feature": "age",
    ...            "episode": "trend"},
    ...           {"alert_id": "a", "status": "resolved", "severity": "critical", "feature": "age",
    ...            "episode": "drift"}]
    >>> counts = episode_counts(events)
    >>> counts["episodes"], counts["escalations"], counts["resolved"], counts["by_feature"]
    (2, 1, 1, ['age (drift, critical, resolved)', 'age (trend, warning)'])
    """
    opened = [a for a in alerts if a.get("status") == "firing" and not a.get("previous_severity")]
    worst: dict[str, dict] = {}
    for a in alerts:
        if a.get("status") != "resolved":
            worst[a["alert_id"]] = a  # severities only rise within an episode
    ended = {a["alert_id"] for a in alerts if a.get("status") == "resolved"}
    return {
        "episodes": len({a["alert_id"] for a in opened}),
        "escalations": sum(1 for a in alerts if a.get("previous_severity")),
        "persistent": sum(1 for a in alerts if a.get("status") == "persistent"),
        "resolved": sum(1 for a in alerts if a.get("status") == "resolved"),
        "by_feature": sorted(f"{a.get('feature') or 'model'} ({a.get('episode')}, "
                             f"{a.get('severity')}{', resolved' if i in ended else ''})"
                             for i, a in worst.items()),
    }


def build_demo_profile(directory: Path) -> None:
    """The demo model's profile (churn v3) from the training data the package ships; the same as
    `drift-monitor profile build monitor/demo/data/churn_train.csv --model churn --version 3
    --prediction prediction --window-size 2000` (profiles/README.md)."""
    print("[demo] building the profile of model churn v3 from the demo's training data ...",
          flush=True)
    profile = build_profile(TRAINING_DATA, BuildOptions(
        model="churn", version="3", predictions=("prediction",),
        window_size=RATE * WINDOW_SECONDS))
    profile.save(directory / PROFILE_NAME)
    print(f"[demo] profile {profile.profile_id}: {len(profile.features)} features", flush=True)


def produce_stream(kafka: KafkaConfig, topic: str, *, windows: int = WINDOWS,
                   rate: int = RATE, drift_from: int = DRIFT_FROM) -> tuple[int, float]:
    """Prediction logs of model churn v3 at wall-clock time, `rate` records/s for `windows`
    windows of WINDOW_SECONDS, drifted from window `drift_from` (0-based) on; keyed by model.
    Returns the records produced and when the drift began (epoch seconds)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka.kafka_python(), linger_ms=20, acks=1)
    rng = np.random.default_rng(42)
    start = (int(time.time()) // WINDOW_SECONDS + 1) * WINDOW_SECONDS
    while time.time() < start:
        time.sleep(0.05)
    produced = 0
    print(f"[demo] producing {rate} records/s for {windows} windows of {WINDOW_SECONDS}s; "
          f"drift from window {drift_from + 1} on", flush=True)
    for w in range(windows):
        scenario = (Scenario(mean_shift=1.0, new_category_rate=0.05, language_switch_rate=0.5)
                    if w >= drift_from else None)
        if w == drift_from:
            print("[demo] >>> drift injected: age +1 std, state 'Canada' 5%, comment 50% French",
                  flush=True)
        for second in range(WINDOW_SECONDS):
            t = start + w * WINDOW_SECONDS + second
            ts = t + np.sort(rng.uniform(0, 1, rate))
            for r in records(generate_columns(rate, rng, scenario), model="churn", version="3",
                             ts=ts, start_id=produced):
                producer.send(topic, key=b"churn", value=json.dumps(r).encode())
            produced += rate
            producer.flush()
            while time.time() < t + 1:
                time.sleep(0.02)
    producer.close()
    return produced, start + drift_from * WINDOW_SECONDS


def produce_main(windows: int, rate: int) -> int:
    """`drift-monitor demo produce`: the demo stream into the configured Kafka (the Docker
    stack's demo producer). Writes the demo profile into DRIFT_MONITOR_PROFILES first when it is
    missing; the worker picks it up without a restart."""
    settings = Settings.from_env()
    profiles = Path(settings.profiles)
    profiles.mkdir(parents=True, exist_ok=True)
    if not (profiles / PROFILE_NAME).exists():
        build_demo_profile(profiles)
    settings.kafka.check()
    produced, _ = produce_stream(settings.kafka, settings.predictions_topic,
                                 windows=windows, rate=rate)
    print(f"[demo] produced {produced} records to {settings.predictions_topic}", flush=True)
    return 0


def _create_topic(kafka: KafkaConfig, topic: str, *, partitions: int) -> None:
    """The run's predictions topic (the worker requires it to exist; it creates the others)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(**kafka.kafka_python(), client_id="drift-monitor-demo")
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def _read_alerts(kafka: KafkaConfig, topic: str, alerts: list[dict],
                 stop: threading.Event) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, **kafka.kafka_python(), auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=300)
    while not stop.is_set():
        for message in consumer:
            alert = json.loads(message.value)
            alerts.append(alert)
            print(format_alert(alert), flush=True)
    consumer.close()


def _read_reports(kafka: KafkaConfig, topic: str) -> list[dict]:
    """This run's window reports, each window once (delivery is at least once)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka.kafka_python(), group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        reports: dict[tuple, dict] = {}
        deadline = time.monotonic() + 20
        while (any(consumer.position(tp) < ends[tp] for tp in partitions)
               and time.monotonic() < deadline):
            for batch in consumer.poll(timeout_ms=500).values():
                for message in batch:
                    report = json.loads(message.value)
                    reports[(report["model"], report["version"], report["window_start"])] = report
        return [reports[key] for key in sorted(reports)]
    finally:
        consumer.close()


if __name__ == "__main__":
    raise SystemExit(main())
