"""Helpers of bench/pipeline.py: topics of a run, worker processes, the broker, the data."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from monitor.demo.synthetic import generate_columns, records, training_table, write_csv
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.model import Profile
from monitor.service.settings import Settings
from monitor.stream.event_time import SUPPORT

ROOT = Path(__file__).resolve().parents[1]
WORK = Path("/tmp/drift-bench-pipeline")
KAFKA = Settings.from_env({**os.environ, "DRIFT_MONITOR_BROKER": os.environ.get(
    "DRIFT_MONITOR_BROKER", "kafka://127.0.0.1:9092")}).kafka
KAFKA_ENV = {k: v for k, v in os.environ.items() if k.startswith("DRIFT_MONITOR_KAFKA_")}
VM = "http://127.0.0.1:8428"
PARTITIONS = 4
WINDOW_CLOSED = re.compile(
    r"window closed: partition (\d+) model (\S+) version (\S+) \[([\d.]+), ([\d.]+)\) "
    r"records (\d+) invalid (\d+) late (\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(*args: Any) -> None:
    print("[pipeline]", *args, flush=True)


def admin() -> KafkaAdminClient:
    return KafkaAdminClient(**KAFKA.kafka_python(), client_id="bench-pipeline")


class Run:
    """Topics, groups and directory of one measured run (deleted afterwards)."""

    def __init__(self, name: str, partitions: int = PARTITIONS) -> None:
        self.tag = f"{name}-{uuid.uuid4().hex[:8]}"
        self.predictions = f"bench-{self.tag}-predictions"
        self.group = f"bench-{self.tag}"
        self.internal = {role: f"bench-{self.tag}-{role}"
                         for role in ("alerts", "dlq", "reports", "state", "partials", "windows")}
        self.dir = WORK / self.tag
        self.profiles = self.dir / "profiles"
        self.profiles.mkdir(parents=True)
        self.workers: list[Worker] = []
        a = admin()
        try:
            a.create_topics([NewTopic(self.predictions, partitions, 1)]
                            + [NewTopic(self.internal[r], 1, 1) for r in ("alerts", "dlq")])
        finally:
            a.close()

    @property
    def partials(self) -> str:
        return self.internal["partials"]

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_MONITOR_")}
        t = self.internal
        env.update({
            "PYTHONUNBUFFERED": "1", **KAFKA_ENV,
            "DRIFT_MONITOR_BROKER": ";".join(f"kafka://{b}" for b in KAFKA.brokers),
            "DRIFT_MONITOR_PROFILES": str(self.profiles),
            "DRIFT_MONITOR_PREDICTIONS_TOPIC": self.predictions,
            "DRIFT_MONITOR_ALERTS_TOPIC": t["alerts"], "DRIFT_MONITOR_DLQ_TOPIC": t["dlq"],
            "DRIFT_MONITOR_REPORTS_TOPIC": t["reports"], "DRIFT_MONITOR_STATE_TOPIC": t["state"],
            "DRIFT_MONITOR_PARTIALS_TOPIC": t["partials"],
            "DRIFT_MONITOR_WINDOWS_TOPIC": t["windows"],
            "DRIFT_MONITOR_GROUP": self.group, "DRIFT_MONITOR_INFLUX_URL": VM,
            "DRIFT_MONITOR_IDLE_SECONDS": "1",  # the last windows close 1 s after the stream
            "DRIFT_MONITOR_HTTP_PORT": "0",  # probes on any free port: several workers run here
        })
        env.update(overrides)
        return env

    def worker(self, name: str, **overrides: str) -> Worker:
        worker = Worker(self.env(**overrides), self.dir / f"{name}.log")
        self.workers.append(worker)
        return worker

    def cleanup(self) -> None:
        for worker in self.workers:
            worker.stop()
        a = admin()
        try:
            existing = set(a.list_topics())
            mine = [t for t in (self.predictions, *self.internal.values()) if t in existing]
            if mine:
                a.delete_topics(mine)
            for group in (self.group, f"{self.group}.windows"):
                try:
                    (getattr(a, "delete_groups", None) or a.delete_consumer_groups)([group])
                except Exception:  # noqa: BLE001 - best effort
                    pass
        finally:
            a.close()


class Worker:
    """One `python -m monitor.service.worker` process and its log."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._fh = open(log_path, "ab")  # noqa: SIM115
        self.spawned = time.time()
        # `-m` puts the working directory first on sys.path: another checkout's source
        # (PYTHONPATH, bench/pipeline.py --baseline-code) must be the working directory too.
        cwd = env.get("PYTHONPATH") or ROOT
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor.service.worker"], cwd=cwd,
                                     env=env, stdout=self._fh, stderr=subprocess.STDOUT)
        self._pos = 0
        self._buf = ""
        self.lines: list[str] = []

    def poll_log(self) -> list[str]:
        with open(self.log_path, "rb") as f:
            f.seek(self._pos)
            data = f.read()
        self._pos += len(data)
        self._buf += data.decode(errors="replace")
        *complete, self._buf = self._buf.split("\n")
        self.lines += complete
        return complete

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, needle: str, timeout: float) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(needle in line for line in self.poll_log()):
                return time.time()
            if not self.alive():
                raise RuntimeError(f"worker exited {self.proc.returncode}: see {self.log_path}")
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {needle!r} (see {self.log_path})")

    def status(self) -> dict[str, int]:
        out = {}
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        out[key] = int(value.split()[0])  # kB
        except OSError:
            pass
        return out

    def cpu_seconds(self) -> float:
        return pid_cpu_seconds(self.proc.pid) or 0.0

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if not self._fh.closed:
            self._fh.close()
        return int(self.proc.returncode or 0)


def pid_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return None


def broker_pid() -> int | None:
    """The local broker's process (the shared one started by scripts/services.sh)."""
    for services in (Path(os.environ.get("SERVICES_DIR", ROOT / ".services")),
                     Path("/work/main/.services")):
        try:
            return int((services / "kafka" / "kafka.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return None


def read_topic(topic: str, timeout: float = 60.0) -> list[Any]:
    """Every message now in `topic` (all partitions, from the beginning)."""
    consumer = KafkaConsumer(**KAFKA.kafka_python(), group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic)
                                                        or ())]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                break
            for batch in consumer.poll(timeout_ms=500).values():
                out += batch
        return out
    finally:
        consumer.close()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# -- profiles and data ------------------------------------------------------------------------
_BASE: Profile | None = None


def base_profile() -> Profile:
    """The synthetic model's profile (16 features + prediction), built once; other models are
    the same profile under another name (its id recomputed on save)."""
    global _BASE
    if _BASE is None:
        csv = WORK / "train.csv"
        WORK.mkdir(parents=True, exist_ok=True)
        write_csv(str(csv), training_table(20_000, seed=0))
        _BASE = build_profile(csv, BuildOptions(model="base", version="1",
                                                predictions=("prediction",),
                                                window_size=1000, calibration_windows=50))
    return _BASE


def save_profiles(directory: Path, models: list[str]) -> None:
    base = base_profile()
    for model in models:
        dataclasses.replace(base, model=model, profile_id="").save(directory / f"{model}-1.json")


def encoded_records(models: list[str], per_model: int, t0: float, span: float,
                    seed: int, chunk: int = 5_000) -> dict[str, list[bytes]]:
    """Per model, `per_model` encoded records with ts increasing over [t0, t0 + span)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[bytes]] = {m: [] for m in models}
    step = span / per_model
    for model in models:
        for start in range(0, per_model, chunk):
            n = min(chunk, per_model - start)
            ts = t0 + (start + np.arange(n) + rng.uniform(0, 1, n)) * step
            out[model] += [orjson.dumps(r) for r in records(generate_columns(n, rng),
                                                               model=model, version="1", ts=ts,
                                                               start_id=start)]
    return out


def interleave(by_model: dict[str, list[bytes]], step: int = 50,
               per_message: int = 1) -> list[tuple[str, bytes]]:
    """The models' records in turns of `step`, as a live topic would carry them; with
    `per_message` > 1, consecutive records of a model are sent as one JSON array."""
    out: list[tuple[str, bytes]] = []
    longest = max(len(v) for v in by_model.values())
    step = max(step, per_message)
    for start in range(0, longest, step):
        for model, values in by_model.items():
            part = values[start:start + step]
            if per_message == 1:
                out += [(model, v) for v in part]
            else:
                out += [(model, b"[" + b",".join(part[i:i + per_message]) + b"]")
                        for i in range(0, len(part), per_message)]
    return out


def producer(**kw: Any) -> KafkaProducer:
    defaults = dict(**KAFKA.kafka_python(), acks=1, linger_ms=20,
                    batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024)
    defaults.update(kw)
    return KafkaProducer(**defaults)


def produce(topic: str, stream: list[tuple[str, bytes]], *, keyed: bool, seed: int = 3,
            partition_of: dict[str, int] | None = None) -> float:
    """Send every record: keyed (each model to its own partition, `partition_of`) or unkeyed
    (each message to a random partition, as a default partitioner spreads them). Seconds."""
    rng = np.random.default_rng(seed)
    spread = rng.integers(0, PARTITIONS, len(stream)).tolist()
    p = producer()
    t0 = time.perf_counter()
    for i, (model, value) in enumerate(stream):
        if keyed:
            p.send(topic, value=value, key=model.encode(),
                   partition=(partition_of or {}).get(model, 0))
        else:
            p.send(topic, value=value, partition=spread[i])
    p.flush(timeout=300)
    seconds = time.perf_counter() - t0
    p.close()
    return seconds


def produce_closers(topic: str, models: list[str], ts: float,
                    partitions: dict[str, list[int]]) -> None:
    """`SUPPORT` records per model and partition of `partitions[model]`, at `ts`: the traffic
    that follows a live stream's records, which closes their windows on event time (the
    watermark follows a model's `SUPPORT`-th newest time on each partition)."""
    base = orjson.loads(encoded_records(models[:1], 1, ts, 1.0, seed=9)[models[0]][0])
    p = producer()
    for model in models:
        for partition in partitions[model] * SUPPORT:
            p.send(topic, value=orjson.dumps({**base, "model": model, "ts": ts}),
                   key=model.encode(), partition=partition)
    p.flush(timeout=60)
    p.close()


def partials_stats(topic: str, windows: int, partitions: int) -> dict[str, Any]:
    """Messages and bytes on the partials topic: partial window summaries and progress."""
    kinds: dict[str, list[int]] = {"partial": [], "progress": []}
    for message in read_topic(topic):
        kind = json.loads(message.value).get("kind", "?")
        kinds.setdefault(kind, []).append(len(message.value))
    per = max(windows * partitions, 1)
    return {
        "partial_messages": len(kinds["partial"]), "partial_bytes": sum(kinds["partial"]),
        "progress_messages": len(kinds["progress"]), "progress_bytes": sum(kinds["progress"]),
        "windows": windows, "input_partitions": partitions,
        "partial_messages_per_window_per_partition": round(len(kinds["partial"]) / per, 2),
        "partial_bytes_per_window_per_partition": round(sum(kinds["partial"]) / per),
        "progress_messages_per_window_per_partition": round(len(kinds["progress"]) / per, 2),
        "progress_bytes_per_window_per_partition": round(sum(kinds["progress"]) / per),
        "mean_partial_bytes": round(float(np.mean(kinds["partial"]))) if kinds["partial"]
        else None,
    }
