"""Shared helpers of the worker's integration tests: the worker as a subprocess, topics of
a test's own, producing, reading topics and VictoriaMetrics, waiting on conditions.

Each test runs `python -m monitor.service.worker` as a subprocess on topics, a consumer group
and model names of its own, so tests neither see each other's data nor earlier runs' metrics.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
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

from monitor.ingest.records import parse_messages
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.store import ProfileStore
from monitor.service.state_store import decode, header_key
from monitor.stream.alerts import Alert
from monitor.stream.config import EngineConfig
from monitor.stream.engine import Engine, Evaluated

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = "127.0.0.1:9092"
VM = "http://127.0.0.1:8428"
COLORS = ["red", "green", "blue", "black"]
COLOR_P = [0.4, 0.3, 0.2, 0.1]
WINDOW_CLOSED = re.compile(
    r"window closed: partition (\d+) model (\S+) version (\S+) \[([\d.]+), ([\d.]+)\) "
    r"records (\d+) invalid (\d+) late (\d+)")
HTTP_PORT = re.compile(r"HTTP: /healthz, /ready and /metrics on http://\S+:(\d+)")
PROM_SAMPLE = re.compile(r"^drift_service_(\w+)\{[^}]*\} (\S+)$", re.MULTILINE)
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


def history(model: str, windows: int, per_window: int, *, seed: int,
            drift_from: int | None = None, first: int = 0, window: float = 10.0) -> list[bytes]:
    """Records of one model in time order over windows `first` to `first + windows - 1` (of
    `window` seconds) of an hour in the past (no wall clock is involved in closing them, only
    the records' times); x drifts by 2 std from window `drift_from` on."""
    start = (int(time.time()) // 3600 - 2) * 3600
    out: list[bytes] = []
    for w in range(first, first + windows):
        shift = 2.0 if drift_from is not None and w >= drift_from else 0.0
        rng = np.random.default_rng(seed + w)
        ts = start + w * window + np.sort(rng.uniform(0, window, per_window))
        batch = record_messages(model, per_window, 0.0, seed=seed + 100 + w, x_mean=shift)
        for t, raw in zip(ts, batch, strict=True):
            record = json.loads(raw)
            record["ts"] = float(t)
            out.append(json.dumps(record).encode())
    return out


def replayed(profiles: Path, messages: list[bytes], env: dict[str, str]) -> list[dict[str, Any]]:
    """`replay` of the same records with the workers' settings, as the reports topic has them."""
    return replayed_with_alerts(profiles, messages, env)[0]


def replayed_with_alerts(profiles: Path, messages: list[bytes], env: dict[str, str]
                         ) -> tuple[list[dict[str, Any]], set[tuple[str, str, str]]]:
    """`replayed`, and the (alert id, status, severity) of every alert the replay sent."""
    engine = Engine(ProfileStore(profiles), EngineConfig(
        window_seconds=float(env["DRIFT_MONITOR_WINDOW_SECONDS"]),
        grace_seconds=float(env["DRIFT_MONITOR_GRACE_SECONDS"]),
        min_records=int(env["DRIFT_MONITOR_MIN_RECORDS"])))
    out = []
    for i in range(0, len(messages), 1000):
        out += engine.ingest(parse_messages(messages[i:i + 1000]))
    out += engine.flush()
    reports = [json.loads(json.dumps(e.report.to_dict(), allow_nan=False, default=str))
               for e in out if isinstance(e, Evaluated)]
    alerts = {(a.alert_id, a.status, a.severity) for e in out if isinstance(e, Evaluated)
              for a in e.alerts} | {(a.alert_id, a.status, a.severity) for a in out
                                   if isinstance(a, Alert)}
    return (sorted(reports, key=lambda r: (r["model"], r["version"], r["window_start"])),
            alerts)


def produce(topic: str, values: list[bytes], *, key: bytes | None, partition: int = 0,
            bootstrap: str = BOOTSTRAP) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for value in values:
            producer.send(topic, value, key=key, partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close()


def produce_spread(topic: str, values: list[bytes], partitions: int, *, seed: int,
                   pace: Callable[[int], None] | None = None,
                   bootstrap: str = BOOTSTRAP, **config: Any) -> None:
    """Each message to a random partition, unkeyed (as a serving fleet's default partitioner
    spreads them); `pace(i)` is called before message i (to stream at a rate). `config`: more
    KafkaProducer settings."""
    rng = np.random.default_rng(seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **config)
    try:
        for i, (value, partition) in enumerate(
                zip(values, rng.integers(0, partitions, len(values)), strict=True)):
            if pace is not None:
                pace(i)
            producer.send(topic, value, partition=int(partition))
        producer.flush(timeout=30)
    finally:
        producer.close()


def reports_in(topic: str, bootstrap: str = BOOTSTRAP) -> list[dict[str, Any]]:
    """Window reports on a reports topic, per model in window order. Delivery is at least once:
    a report sent twice must be the same report."""
    unique: dict[tuple[str, str, float], dict[str, Any]] = {}
    for message in read_topic(topic, bootstrap):
        report = json.loads(message.value)
        key = (report["model"], report["version"], report["window_start"])
        assert unique.setdefault(key, report) == report, f"two different reports for {key}"
    return [unique[k] for k in sorted(unique)]


def wait_for_reports(setup: Setup, expected: int, timeout: float = 180) -> list[dict[str, Any]]:
    """At least `expected` window reports on the setup's reports topic (`reports_in`)."""
    return wait_until(lambda: (r := reports_in(setup.reports, setup.bootstrap))
                      and len(r) >= expected and r, timeout,
                      f"{expected} window reports on {setup.reports}")


def read_topic(topic: str, bootstrap: str = BOOTSTRAP) -> list[Any]:
    """Every message now in `topic` (all partitions, from the beginning)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
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


def assert_dead_lettered(setup: Setup, want: set[tuple[Any, ...]], *,
                         keys: bool = False) -> None:
    """The dead-letter topic comes to hold exactly `want`: (source partition, source offset),
    and the message's key with `keys`."""

    def letters() -> set[tuple[Any, ...]]:
        return {(int(dict(m.headers)["source_partition"]), int(dict(m.headers)["source_offset"]),
                 *((m.key,) if keys else ())) for m in read_topic(setup.dlq)}

    wait_until(lambda: letters() >= want, 30, "every bad message dead-lettered")
    assert letters() == want


def stress_env(batch_size: int, max_message_bytes: int) -> dict[str, str]:
    """A worker for the adversarial pipeline tests: windows of 10 s closing 3 s after a quiet
    stream, a checkpoint every second, small batches and a small message limit."""
    return {"DRIFT_MONITOR_WINDOW_SECONDS": "10", "DRIFT_MONITOR_IDLE_SECONDS": "3",
            "DRIFT_MONITOR_CHECKPOINT_INTERVAL_SECONDS": "1",
            "DRIFT_MONITOR_BATCH_SIZE": str(batch_size),
            "DRIFT_MONITOR_MAX_MESSAGE_BYTES": str(max_message_bytes)}


def alerts_in(topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in read_topic(topic)]


def last_checkpoint(topic: str, partition: int) -> dict[str, Any] | None:
    """The newest checkpoint header of input partition `partition`."""
    records = [m for m in read_topic(topic)
               if m.partition == partition and m.key == header_key(partition)]
    return decode(records[-1].value) if records else None


def vm_export(metric: str, vm: str = VM, **labels: str) -> list[dict[str, Any]]:
    """Samples of `metric` (VictoriaMetrics names it <measurement>_<field>) with these labels."""
    selector = metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    query = urllib.parse.urlencode({"match[]": selector, "start": "0",
                                    "end": str(int(time.time()) + 3600)})
    with urllib.request.urlopen(f"{vm}/api/v1/export?{query}", timeout=10) as response:
        body = response.read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


class Worker:
    """`python -m monitor.service.worker` in a subprocess, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: str = "Worker]: Ready") -> Worker:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "monitor.service.worker"], cwd=ROOT,
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_for(ready, 60)
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

    def http(self, path: str, timeout: float = 10) -> tuple[int, str]:
        """GET `path` on the worker's web server (the port it logged): (status, body)."""
        port = self.wait_for(HTTP_PORT, 60)[1]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                        timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        """/metrics as {name without the drift_service_ prefix: value}."""
        status, body = self.http("/metrics")
        assert status == 200, body
        return {m[1]: float(m[2]) for m in PROM_SAMPLE.finditer(body)}

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
def worker_training_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("worker-data") / "train.csv"
    rows = training_rows(6000, seed=7)
    with open(path, "w") as f:
        f.write("x,y,color\n")
        for x, y, c in zip(rows["x"], rows["y"], rows["color"], strict=True):
            f.write(f"{x:.6f},{y:.6f},{c}\n")
    return path


@pytest.fixture
def make_profile(worker_training_csv: Path) -> Callable[[str, Path], Path]:
    def make(model: str, directory: Path) -> Path:
        profile = build_profile(worker_training_csv, BuildOptions(
            model=model, version="1", window_size=200, calibration_windows=50,
            sample_rows=6000))
        target = directory / f"{model}-1.json"
        partial = directory.parent / f"{model}-1.json.partial"
        profile.save(partial)
        partial.replace(target)  # atomic: the worker never reads half a file
        return target
    return make


class Setup:
    def __init__(self, tmp_path: Path, partitions: int = 4, *, bootstrap: str = BOOTSTRAP,
                 vm: str = VM, create: bool = True) -> None:
        self.bootstrap = bootstrap
        self.vm = vm
        tag = uuid.uuid4().hex[:10]
        self.tag = tag
        self.model = f"m{tag}"
        self.predictions = f"it-{tag}-predictions"
        self.alerts = f"it-{tag}-alerts"
        self.dlq = f"it-{tag}-dlq"
        self.state = f"it-{tag}-state"
        self.partials = f"it-{tag}-partials"
        self.windows = f"it-{tag}-windows"
        self.reports = f"it-{tag}-reports"
        self.partitions = partitions
        self.profiles = tmp_path / "profiles"
        self.profiles.mkdir()
        self.tmp = tmp_path
        self.workers: list[Worker] = []
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            admin.create_topics([NewTopic(self.alerts, 1, 1), NewTopic(self.dlq, 1, 1)])
        finally:
            admin.close()
        if create:
            self.create_predictions()

    def create_predictions(self, **config: str) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(self.predictions, self.partitions, 1,
                                          topic_configs=config)])
        finally:
            admin.close()

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_MONITOR_")}
        env.update({
            "PYTHONUNBUFFERED": "1",
            "DRIFT_MONITOR_BROKER": f"kafka://{self.bootstrap}",
            "DRIFT_MONITOR_PROFILES": str(self.profiles),
            "DRIFT_MONITOR_WINDOW_SECONDS": "2",
            "DRIFT_MONITOR_GRACE_SECONDS": "1",
            "DRIFT_MONITOR_MIN_RECORDS": "50",
            "DRIFT_MONITOR_PREDICTIONS_TOPIC": self.predictions,
            "DRIFT_MONITOR_ALERTS_TOPIC": self.alerts,
            "DRIFT_MONITOR_DLQ_TOPIC": self.dlq,
            "DRIFT_MONITOR_STATE_TOPIC": self.state,
            "DRIFT_MONITOR_GROUP": f"it-{self.tag}",
            "DRIFT_MONITOR_PARTIALS_TOPIC": self.partials,
            "DRIFT_MONITOR_WINDOWS_TOPIC": self.windows,
            "DRIFT_MONITOR_IDLE_SECONDS": "1",
            "DRIFT_MONITOR_REPORTS_TOPIC": self.reports,
            "DRIFT_MONITOR_INFLUX_URL": self.vm,
            "DRIFT_MONITOR_HTTP_PORT": "0",  # any free port (logged): workers run side by side
        })
        env.update(overrides)
        return env

    def delete_topics(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            existing = set(admin.list_topics())
            mine = [self.predictions, self.alerts, self.dlq, self.state, self.partials,
                    self.windows, self.reports]
            admin.delete_topics([t for t in mine if t in existing])
        finally:
            admin.close()

    def worker(self, name: str = "worker", ready: str = "Worker]: Ready",
               **overrides: str) -> Worker:
        worker = Worker(self.env(**overrides), self.tmp / f"{name}.log")
        self.workers.append(worker)
        return worker.start(ready)


def _stop_workers(request: pytest.FixtureRequest, setups: list[Setup]) -> None:
    """Stop every worker; when the test failed, print their logs (shown with the failure)."""
    report = getattr(request.node, "rep_call", None)
    failed = report is not None and report.failed
    for s in setups:
        for worker in s.workers:
            worker.stop()
            if failed:
                print(f"\n--- {worker.log_path.name} ({s.tag}) ---\n{worker.digest()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


@pytest.fixture
def setup(services: None, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    _stop_workers(request, [s])
    s.delete_topics()


@pytest.fixture
def make_setup(services: None, tmp_path: Path,
               request: pytest.FixtureRequest) -> Iterator[Callable[[int], Setup]]:
    """Setups of their own (topics, group, profiles), as many as a test needs (keyword
    arguments go to `Setup`: another broker, no predictions topic yet...)."""
    made: list[Setup] = []

    def make(partitions: int = 4, **kwargs: Any) -> Setup:
        directory = tmp_path / f"setup{len(made)}"
        directory.mkdir()
        made.append(Setup(directory, partitions, **kwargs))
        return made[-1]

    yield make
    _stop_workers(request, made)
    for s in made:
        s.delete_topics()
