"""The Faust worker against the real local servers (Kafka 4 KRaft, VictoriaMetrics).

Each test runs `python -m monitor.service.worker` as a subprocess on topics, a consumer group and model
names of its own, so tests neither see each other's data nor earlier runs' metrics.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from monitor.profile.build import BuildOptions, build_profile
from monitor.service.checkpoints import decode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = "127.0.0.1:9092"
VM = "http://127.0.0.1:8428"
COLORS = ["red", "green", "blue", "black"]
COLOR_P = [0.4, 0.3, 0.2, 0.1]
WINDOW_CLOSED = re.compile(
    r"window closed: partition (\d+) model (\S+) version (\S+) \[([\d.]+), ([\d.]+)\) "
    r"records (\d+) invalid (\d+) late (\d+)")
T = TypeVar("T")


# -- helpers ----------------------------------------------------------------------------------
def wait_until(condition: Callable[[], T], timeout: float, what: str,
               interval: float = 0.25) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def training_rows(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(0.0, 1.0, n), "y": rng.normal(5.0, 2.0, n),
            "color": rng.choice(COLORS, n, p=COLOR_P)}


def record_messages(model: str, n: int, ts: float, *, seed: int, x_mean: float = 0.0,
                    version: str = "1") -> list[bytes]:
    rng = np.random.default_rng(seed)
    xs, ys = rng.normal(x_mean, 1.0, n), rng.normal(5.0, 2.0, n)
    colors = rng.choice(COLORS, n, p=COLOR_P)
    return [json.dumps({"model": model, "version": version, "ts": ts, "id": f"r{i}",
                        "features": {"x": float(x), "y": float(y), "color": str(c)}}).encode()
            for i, (x, y, c) in enumerate(zip(xs, ys, colors, strict=True))]


def produce(topic: str, values: list[bytes], *, key: bytes, partition: int = 0) -> None:
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    try:
        for value in values:
            producer.send(topic, value, key=key, partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()


def read_topic(topic: str) -> list[Any]:
    """Every message now in `topic` (all partitions, from the beginning)."""
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + 20
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                pytest.fail(f"could not read {topic} to its end")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def alerts_in(topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in read_topic(topic)]


def last_checkpoint(topic: str, partition: int) -> dict[str, Any] | None:
    records = [m for m in read_topic(topic) if m.partition == partition]
    return decode(records[-1].value) if records else None


def vm_export(metric: str, **labels: str) -> list[dict[str, Any]]:
    """Samples of `metric` (VictoriaMetrics names it <measurement>_<field>) with these labels."""
    selector = metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    query = urllib.parse.urlencode({"match[]": selector, "start": "0",
                                    "end": str(int(time.time()) + 3600)})
    with urllib.request.urlopen(f"{VM}/api/v1/export?{query}", timeout=10) as response:
        body = response.read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


class Worker:
    """`python -m monitor.service.worker` in a subprocess, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "monitor.service.worker"], cwd=ROOT,
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_for("Worker]: Ready", 60)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def digest(self) -> str:
        """The log without Faust's service start/stop chatter, for failure messages."""
        lines = [line for line in self.log().splitlines()
                 if not re.search(r"\[\^[-\w]*\s*[\w.: ]*\]: (Starting|Stopping|Restarting)",
                                  line)]
        return "\n".join(lines[-80:])

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        regex = re.compile(pattern if isinstance(pattern, re.Pattern) else re.escape(pattern))

        def found() -> re.Match[str] | None:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"worker exited with {self.proc.returncode}:\n{self.digest()}")
            return regex.search(self.log())

        return wait_until(found, timeout, f"{regex.pattern!r} in the worker log")

    def windows(self, model: str) -> list[tuple[float, float, int, int]]:
        """(start, end, records, invalid) of every window the worker logged as closed."""
        return [(float(m[4]), float(m[5]), int(m[6]), int(m[7]))
                for m in WINDOW_CLOSED.finditer(self.log()) if m[2] == model]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            pytest.fail(f"worker ignored SIGTERM for {timeout} s:\n{self.digest()}")


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def training_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("worker-data") / "train.csv"
    rows = training_rows(6000, seed=7)
    with open(path, "w") as f:
        f.write("x,y,color\n")
        for x, y, c in zip(rows["x"], rows["y"], rows["color"], strict=True):
            f.write(f"{x:.6f},{y:.6f},{c}\n")
    return path


@pytest.fixture
def make_profile(training_csv: Path) -> Callable[[str, Path], Path]:
    def make(model: str, directory: Path) -> Path:
        profile = build_profile(training_csv, BuildOptions(
            model=model, version="1", window_size=200, calibration_windows=50,
            sample_rows=6000))
        target = directory / f"{model}-1.json"
        partial = directory.parent / f"{model}-1.json.partial"
        profile.save(partial)
        partial.replace(target)  # atomic: the worker never reads half a file
        return target
    return make


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        tag = uuid.uuid4().hex[:10]
        self.tag = tag
        self.model = f"m{tag}"
        self.predictions = f"it-{tag}-predictions"
        self.alerts = f"it-{tag}-alerts"
        self.dlq = f"it-{tag}-dlq"
        self.state = f"it-{tag}-state"
        self.profiles = tmp_path / "profiles"
        self.profiles.mkdir()
        self.tmp = tmp_path
        self.workers: list[Worker] = []
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        try:
            admin.create_topics([NewTopic(self.predictions, 4, 1), NewTopic(self.alerts, 1, 1),
                                 NewTopic(self.dlq, 1, 1)])
        finally:
            admin.close()

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_MONITOR_")}
        env.update({
            "PYTHONUNBUFFERED": "1",
            "DRIFT_MONITOR_BROKER": f"kafka://{BOOTSTRAP}",
            "DRIFT_MONITOR_PROFILES": str(self.profiles),
            "DRIFT_MONITOR_WINDOW_SECONDS": "2",
            "DRIFT_MONITOR_GRACE_SECONDS": "1",
            "DRIFT_MONITOR_MIN_RECORDS": "50",
            "DRIFT_MONITOR_PREDICTIONS_TOPIC": self.predictions,
            "DRIFT_MONITOR_ALERTS_TOPIC": self.alerts,
            "DRIFT_MONITOR_DLQ_TOPIC": self.dlq,
            "DRIFT_MONITOR_STATE_TOPIC": self.state,
            "DRIFT_MONITOR_GROUP": f"it-{self.tag}",
            "DRIFT_MONITOR_INFLUX_URL": VM,
        })
        env.update(overrides)
        return env

    def delete_topics(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        try:
            existing = set(admin.list_topics())
            mine = [self.predictions, self.alerts, self.dlq, self.state]
            admin.delete_topics([t for t in mine if t in existing])
        finally:
            admin.close()

    def worker(self, name: str = "worker", **overrides: str) -> Worker:
        worker = Worker(self.env(**overrides), self.tmp / f"{name}.log")
        self.workers.append(worker)
        return worker.start()


@pytest.fixture
def setup(services: None, tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    for worker in s.workers:
        worker.stop()
    s.delete_topics()


# -- tests ------------------------------------------------------------------------------------
def test_drift_in_one_feature_fires_an_alert_for_that_feature_only(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    make_profile(setup.model, setup.profiles)
    worker = setup.worker()
    produce(setup.predictions, record_messages(setup.model, 300, time.time(), seed=1,
                                               x_mean=2.5), key=setup.model.encode())
    worker.wait_for(re.compile(rf"window closed: .* model {setup.model} "), 20)
    alerts = [a for a in alerts_in(setup.alerts) if a["model"] == setup.model]
    firing = {(a["feature"], a["check"]) for a in alerts if a["status"] == "firing"}
    assert {"x"} == {feature for feature, _ in firing if feature}, firing
    assert ("x", "mean_shift") in firing
    x_alert = next(a for a in alerts if a["feature"] == "x" and a["check"] == "mean_shift")
    assert x_alert["alert_id"] and x_alert["profile_id"].startswith("sha256:")
    assert x_alert["value"] > x_alert["threshold"]


def test_window_feature_alert_and_service_metrics_reach_victoria_metrics(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    make_profile(setup.model, setup.profiles)
    worker = setup.worker()
    produce(setup.predictions, record_messages(setup.model, 120, time.time(), seed=2,
                                               x_mean=2.5), key=setup.model.encode())
    model = setup.model
    rows = wait_until(lambda: vm_export("drift_window_records", model=model), 30,
                      "drift_window_records in VictoriaMetrics")
    assert rows[0]["values"] == [120]
    psi = wait_until(lambda: vm_export("drift_feature_psi", model=model, feature="x"), 10,
                     "drift_feature_psi")
    assert psi[0]["metric"]["kind"] == "numeric" and psi[0]["metric"]["profile"]
    assert psi[0]["values"][0] > 0.5
    severity = vm_export("drift_feature_severity", model=model, feature="x")
    assert severity[0]["values"] == [3]  # critical
    assert vm_export("drift_feature_threshold_psi", model=model, feature="color")
    alert = wait_until(lambda: vm_export("drift_alert_value", model=model, feature="x",
                                         check="mean_shift"), 10, "drift_alert_value")
    assert alert[0]["metric"]["status"] == "firing"
    service = wait_until(lambda: [s for s in vm_export("drift_service_records_processed")
                                  if 120 in s["values"]
                                  and s["metric"]["worker"].endswith(f"-{worker.proc.pid}")],
                         20, "drift_service_records_processed from this worker")
    assert service
    # SIGTERM: clean shutdown that flushes the metrics sink.
    assert worker.stop() == 0
    assert "metrics sink closed" in worker.log()


def test_malformed_messages_go_to_the_dead_letter_topic_with_reasons(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    make_profile(setup.model, setup.profiles)
    worker = setup.worker()
    model = setup.model
    now = time.time()
    good = record_messages(model, 100, now, seed=3)
    missing_ts = {"model": model, "version": "1", "features": {"x": 1.0}}
    bad = [
        b'{"model": "oops", "version": ',
        b'{"model": "\xff\xfe", "version": "1", "ts": 0}',
        json.dumps([json.loads(good[0]), missing_ts]).encode(),
        json.dumps({"version": "1", "ts": now, "features": {"x": 1.0}}).encode(),
    ]
    produce(setup.predictions, good[1:50] + bad + good[50:], key=model.encode())
    letters = wait_until(lambda: len(read_topic(setup.dlq)) >= 4 and read_topic(setup.dlq), 20,
                         "four dead letters")
    assert len(letters) == 4
    by_reason = {}
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers["source_topic"] == setup.predictions
        assert headers["source_partition"] == "0"
        by_reason[headers["reason"]] = (letter.value, int(headers["source_offset"]))
    def reason(prefix: str) -> tuple[bytes, int]:
        found = [v for r, v in by_reason.items() if r.startswith(prefix)]
        assert len(found) == 1, (prefix, sorted(by_reason))
        return found[0]

    # Whole bad messages keep their bytes and offsets; a bad array element goes alone.
    assert reason("not valid JSON") == (bad[0], 49)
    assert reason("message is not valid UTF-8") == (bad[1], 50)
    assert json.loads(reason("missing 'ts'")[0]) == missing_ts
    assert reason("missing 'ts'")[1] == 51
    assert reason("missing or empty 'model'")[1] == 52
    # Good records keep being counted: 99 plain ones and the good element of the array.
    worker.wait_for(re.compile(rf"window closed: .* model {model} "), 20)
    assert [(records, invalid) for _, _, records, invalid in worker.windows(model)] == [(100, 1)]


def test_sigkill_mid_window_then_restart_counts_every_record_exactly_once(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """Records folded in and checkpointed before the kill are redelivered (offsets are not
    committed) and skipped; records produced while the worker is down are counted."""
    make_profile(setup.model, setup.profiles)
    model, window = setup.model, 10.0
    # Faust commits rarely here, so the restarted worker is sure to see the first records again.
    overrides = {"DRIFT_MONITOR_WINDOW_SECONDS": str(window),
                 "DRIFT_MONITOR_COMMIT_INTERVAL_SECONDS": "600"}
    worker = setup.worker("before-kill", **overrides)
    # A window that starts after now, so that it stays open through the kill and the restart.
    start = math.ceil(time.time() / window) * window + window
    first, second = 300, 180
    produce(setup.predictions, record_messages(model, first, start + 1, seed=4),
            key=model.encode())
    wait_until(lambda: (cp := last_checkpoint(setup.state, 0)) and cp["offset"] == first - 1,
               20, "the checkpoint of the first records")
    worker.kill()
    assert not worker.windows(model)
    produce(setup.predictions, record_messages(model, second, start + 2, seed=5),
            key=model.encode())
    restarted = setup.worker("after-kill", **overrides)
    restarted.wait_for(f"restored checkpoint at offset {first - 1}", 30)
    # One record beyond the window's end plus the grace moves the watermark past it.
    produce(setup.predictions, record_messages(model, 1, start + window + 2, seed=6),
            key=model.encode())
    restarted.wait_for(re.compile(rf"window closed: .* model {model} "), 30)
    assert restarted.windows(model) == [(start, start + window, first + second, 0)]
    skipped = sum(int(n) for n in re.findall(
        r"partition 0: skipped (\d+) redelivered records", restarted.log()))
    assert skipped == first
    samples = wait_until(lambda: vm_export("drift_window_records", model=model), 20,
                         "drift_window_records in VictoriaMetrics")
    points = [(t, v) for s in samples for t, v in zip(s["timestamps"], s["values"], strict=True)]
    end_ms = int((start + window) * 1000)
    assert [v for t, v in points if t == end_ms] == [first + second]
    assert all(t > end_ms for t, _ in points if t != end_ms)  # later windows only


def test_a_profile_added_while_running_is_picked_up(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    worker = setup.worker()
    model = setup.model
    produce(setup.predictions, record_messages(model, 60, time.time(), seed=7),
            key=model.encode())
    no_profile = wait_until(
        lambda: [a for a in alerts_in(setup.alerts)
                 if a["model"] == model and a["check"] == "no_profile"],
        20, "a no_profile alert")
    assert len(no_profile) == 1 and no_profile[0]["status"] == "firing"
    make_profile(model, setup.profiles)
    worker.wait_for(f"profile loaded: {model} version 1", 20)
    produce(setup.predictions, record_messages(model, 150, time.time(), seed=8),
            key=model.encode())
    worker.wait_for(re.compile(rf"window closed: .* model {model} "), 20)
    assert [records for _, _, records, _ in worker.windows(model)] == [150]
    psi = wait_until(lambda: vm_export("drift_feature_psi", model=model, feature="x"), 20,
                     "drift_feature_psi for the newly profiled model")
    assert psi
    # One episode: fired for the first records, resolved when the profile's records came.
    episode = [(a["status"], a["alert_id"]) for a in alerts_in(setup.alerts)
               if a["check"] == "no_profile"]
    assert [status for status, _ in episode] == ["firing", "resolved"]
    assert episode[0][1] == episode[1][1]


def test_one_feature_drifting_on_five_checks_is_one_episode_fired_escalated_resolved(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """Issue 9's promise on the real broker: `x` fails psi, js, ks, wasserstein and mean_shift
    at warning (one firing event), then at critical (one escalation), then is clean for two
    windows (one resolution); nothing else pages."""
    make_profile(setup.model, setup.profiles)
    worker = setup.worker()
    model, window = setup.model, 2.0
    # Windows a little ahead of the wall clock: only these records close them, never the timer.
    base = math.ceil(time.time() / window) * window + 30
    plan = [(0.3, 11), (1.0, 12), (0.0, 14), (0.0, 15)]  # (x mean shift in std, seed)
    messages = [m for i, (shift, seed) in enumerate(plan)
                for m in record_messages(model, 300, base + i * window + 0.5, seed=seed,
                                         x_mean=shift)]
    messages += record_messages(model, 1, base + (len(plan) + 1) * window + 1.5, seed=16)
    produce(setup.predictions, messages, key=model.encode())

    def events() -> list[dict[str, Any]]:
        return [a for a in alerts_in(setup.alerts) if a["model"] == model]

    wait_until(lambda: any(a["status"] == "resolved" for a in events()), 40,
               "the episode's resolution")
    alerts = events()
    assert [(a["status"], a["severity"], a["previous_severity"], a["feature"], a["episode"])
            for a in alerts] == [("firing", "warning", None, "x", "drift"),
                                 ("firing", "critical", "warning", "x", "drift"),
                                 ("resolved", "critical", None, "x", "drift")], alerts
    assert len({a["alert_id"] for a in alerts}) == 1
    fired = alerts[0]
    assert sorted(c["check"] for c in fired["checks"]) == [
        "js", "ks", "mean_shift", "psi", "wasserstein"]
    assert all(c["value"] > c["threshold"] and c["severity"] == "warning"
               for c in fired["checks"])
    assert fired["check"] == "mean_shift" and fired["message"].startswith(
        f"[{model} v1] x: mean up 0.")
    assert all(c["severity"] == "critical" for c in alerts[1]["checks"])
    assert [records for _, _, records, _ in worker.windows(model)] == [300] * len(plan)
