"""The whole pipeline on this machine with the broker local: one `python -m monitor.service.worker`
subprocess against the real Kafka (127.0.0.1:9092) and VictoriaMetrics (127.0.0.1:8428).
The broker and its security come from DRIFT_MONITOR_BROKER and DRIFT_MONITOR_KAFKA_* as for the
worker (e.g. `set -a; . .services/kafka/sasl-ssl.env` measures over SASL_SSL).

1. throughput  N pre-produced records (16 features + prediction, 4 models keyed by model, one
               model per partition of a 4-partition topic, event time spread over 10 windows of
               60 s per model, then one far-future record per model that closes every window);
               the worker is started afterwards and timed until every record has been counted
               in a closed, evaluated window. Two modes: 1 record per message, and a JSON array
               of 100 records per message.
               Completion = the sum of `records` + `late` over the worker's "window closed" log
               lines for the run's models equals N (written after the batch's checkpoint).
               Cross-checks, after the fact: the VictoriaMetrics sum of drift_window_records for
               those models, and the consumer group's committed offsets (lag 0).
2. latency     window 2 s, grace 1 s; resolve_after + 1 (= 3) models streamed in real time
               (ts = wall clock) at 500 records/s each; model i drifted (age +1 std) in windows
               w with w % 3 == i, so its episode resolves after its 2 clean windows and every
               window starts a new alert episode for one model. For every firing alert:
               receive time on `drift-alerts` (this process) - (window_end + grace).
3. memory      20 profiles (20 models x 16 features + prediction), 60 s windows, 20 models x 6
               windows x 1,500 records pre-produced (ts in the past), 1 record per message; RSS of
               the worker (/proc/<pid>/status VmRSS sampled every 0.25 s; VmHWM at the end).

Every run uses topics, a consumer group and model names of its own (deleted afterwards).

Run:  .venv/bin/python bench/pipeline.py [--n N [N ...]] [--only throughput,latency,memory]
      (`bash scripts/services.sh up` first). Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from monitor.demo.synthetic import Scenario, generate_columns, records, training_table, write_csv
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.model import Profile
from monitor.service.settings import Settings
from monitor.stream.engine import EngineConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "pipeline.json"
WORK = Path("/tmp/drift-bench-pipeline")
KAFKA = Settings.from_env({**os.environ, "DRIFT_MONITOR_BROKER": os.environ.get(
    "DRIFT_MONITOR_BROKER", "kafka://127.0.0.1:9092")}).kafka
KAFKA_ENV = {k: v for k, v in os.environ.items() if k.startswith("DRIFT_MONITOR_KAFKA_")}
VM = "http://127.0.0.1:8428"
PARTITIONS = 4

# throughput
TP_MODELS = 4
TP_WINDOW = 60.0
TP_WINDOWS_PER_MODEL = 10
ARRAY_SIZE = 100
GOALS = {"single": 50_000, "batched": 300_000}
# latency
LAT_WINDOW, LAT_GRACE = 2.0, 1.0
LAT_RATE = 500  # records/s per model
LAT_WINDOWS = 50  # measured windows (plus warm-up and tail)
LAT_WARMUP, LAT_TAIL = 3, 2
# memory
MEM_MODELS, MEM_WINDOWS, MEM_PER_WINDOW = 20, 6, 1_500

WINDOW_CLOSED = re.compile(
    r"window closed: partition (\d+) model (\S+) version (\S+) \[([\d.]+), ([\d.]+)\) "
    r"records (\d+) invalid (\d+) late (\d+)")
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- helpers ----------------------------------------------------------------------------------
def say(*args: Any) -> None:
    print("[pipeline]", *args, flush=True)


def admin() -> KafkaAdminClient:
    return KafkaAdminClient(**KAFKA.kafka_python(), client_id="bench-pipeline")


class Run:
    """Topics, group and directory of one worker run."""

    def __init__(self, name: str) -> None:
        self.tag = f"{name}-{uuid.uuid4().hex[:8]}"
        self.predictions = f"bench-{self.tag}-predictions"
        self.alerts = f"bench-{self.tag}-alerts"
        self.dlq = f"bench-{self.tag}-dlq"
        self.state = f"bench-{self.tag}-state"
        self.group = f"bench-{self.tag}"
        self.dir = WORK / self.tag
        self.profiles = self.dir / "profiles"
        self.profiles.mkdir(parents=True)
        a = admin()
        try:
            a.create_topics([NewTopic(self.predictions, PARTITIONS, 1),
                             NewTopic(self.alerts, 1, 1), NewTopic(self.dlq, 1, 1)])
        finally:
            a.close()

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_MONITOR_")}
        env.update({
            "PYTHONUNBUFFERED": "1",
            **KAFKA_ENV,
            "DRIFT_MONITOR_BROKER": ";".join(f"kafka://{b}" for b in KAFKA.brokers),
            "DRIFT_MONITOR_PROFILES": str(self.profiles),
            "DRIFT_MONITOR_PREDICTIONS_TOPIC": self.predictions,
            "DRIFT_MONITOR_ALERTS_TOPIC": self.alerts,
            "DRIFT_MONITOR_DLQ_TOPIC": self.dlq,
            "DRIFT_MONITOR_STATE_TOPIC": self.state,
            "DRIFT_MONITOR_GROUP": self.group,
            "DRIFT_MONITOR_INFLUX_URL": VM,
        })
        env.update(overrides)
        return env

    def cleanup(self) -> None:
        a = admin()
        try:
            existing = set(a.list_topics())
            mine = [t for t in (self.predictions, self.alerts, self.dlq, self.state)
                    if t in existing]
            if mine:
                a.delete_topics(mine)
            try:
                (getattr(a, "delete_groups", None) or a.delete_consumer_groups)([self.group])
            except Exception:  # noqa: BLE001 - best effort
                pass
        finally:
            a.close()


CPROFILE = False  # --cprofile: run the worker under cProfile (diagnosis only; slower)


class Worker:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._fh = open(log_path, "ab")  # noqa: SIM115
        self.spawned = time.time()
        self.prof = log_path.with_suffix(".prof") if CPROFILE else None
        prefix = ["-m", "cProfile", "-o", str(self.prof)] if self.prof else []
        self.proc = subprocess.Popen([sys.executable, *prefix, "-m", "monitor.service.worker"],
                                     cwd=ROOT, env=env, stdout=self._fh,
                                     stderr=subprocess.STDOUT)
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
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])  # kB
        return out

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._fh.close()
        return self.proc.returncode


def pid_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return None


def broker_pid() -> int | None:
    try:
        services = Path(os.environ.get("SERVICES_DIR", ROOT / ".services"))
        return int((services / "kafka" / "kafka.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def log_time(line: str) -> float | None:
    m = LOG_TIME.match(line)
    if not m:
        return None
    return time.mktime(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000


def vm_sum(metric: str, models: list[str]) -> float | None:
    selector = metric + '{model=~"' + "|".join(models) + '"}'
    query = urllib.parse.urlencode({"match[]": selector, "start": "0",
                                    "end": str(int(time.time()) + 10 ** 7)})
    try:
        with urllib.request.urlopen(f"{VM}/api/v1/export?{query}", timeout=10) as resp:
            body = resp.read().decode()
    except OSError:
        return None
    return sum(v for line in body.splitlines() if line.strip()
               for v in json.loads(line)["values"])


def topic_messages(topic: str) -> int:
    consumer = KafkaConsumer(**KAFKA.kafka_python(), group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()


def group_lag(group: str, topic: str) -> int | None:
    a = admin()
    try:
        if hasattr(a, "list_consumer_group_offsets"):  # kafka-python 2.x
            committed = a.list_consumer_group_offsets(group)
        else:  # kafka-python 3.x
            committed = a.list_group_offsets(group)[group]
    finally:
        a.close()
    consumer = KafkaConsumer(**KAFKA.kafka_python(), group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(tps)
    finally:
        consumer.close()
    lag = 0
    for tp in tps:
        meta = committed.get(tp)
        if meta is None or meta.offset < 0:
            lag += ends[tp]
        else:
            lag += ends[tp] - meta.offset
    return lag


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# -- profiles ---------------------------------------------------------------------------------
_BASE: Profile | None = None


def base_profile() -> Profile:
    """One profile of the synthetic model (16 features + prediction), built once; other model
    names are the same profile under another name (its id recomputed on save)."""
    global _BASE
    if _BASE is None:
        csv = WORK / "train.csv"
        WORK.mkdir(parents=True, exist_ok=True)
        write_csv(str(csv), training_table(20_000, seed=0))
        t0 = time.perf_counter()
        _BASE = build_profile(csv, BuildOptions(model="base", version="1",
                                                predictions=("prediction",),
                                                window_size=1000, calibration_windows=50))
        say(f"profile built in {time.perf_counter() - t0:.1f} s "
            f"({len(_BASE.features)} features incl. prediction)")
    return _BASE


def save_profiles(directory: Path, models: list[str]) -> None:
    base = base_profile()
    for model in models:
        dataclasses.replace(base, model=model, profile_id="").save(directory / f"{model}-1.json")


# -- data -------------------------------------------------------------------------------------
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


def producer(**kw: Any) -> KafkaProducer:
    defaults = dict(**KAFKA.kafka_python(), acks=1, linger_ms=20,
                    batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024)
    defaults.update(kw)
    return KafkaProducer(**defaults)


def produce_messages(topic: str, by_model: dict[str, list[bytes]], partition_of: dict[str, int],
                     array: int) -> tuple[int, float]:
    """Interleave the models (a chunk of each in turn) as a live topic would; returns the number
    of messages and the seconds it took (flushed)."""
    p = producer()
    t0 = time.perf_counter()
    sent = 0
    step = array * 50
    longest = max(len(v) for v in by_model.values())
    for start in range(0, longest, step):
        for model, values in by_model.items():
            part, key = partition_of[model], model.encode()
            for i in range(start, min(start + step, len(values)), array):
                if array == 1:
                    value = values[i]
                else:
                    value = b"[" + b",".join(values[i:i + array]) + b"]"
                p.send(topic, value=value, key=key, partition=part)
                sent += 1
    p.flush(timeout=120)
    seconds = time.perf_counter() - t0
    p.close()
    return sent, seconds


# -- 1. throughput ----------------------------------------------------------------------------
def throughput(n: int, data: dict[str, list[bytes]], models: list[str], array: int) -> dict:
    mode = "single" if array == 1 else "batched"
    run = Run(f"tp-{mode}-{n}")
    try:
        save_profiles(run.profiles, models)
        partition_of = {m: i % PARTITIONS for i, m in enumerate(models)}
        messages, produce_s = produce_messages(run.predictions, data, partition_of, array)
        # One far-future record per model: its watermark closes every window of the run.
        far = time.time() + 10 ** 7
        sentinels = {m: [orjson.dumps(records(generate_columns(1, np.random.default_rng(9)),
                                              model=m, version="1", ts=np.array([far]))[0])]
                     for m in models}
        produce_messages(run.predictions, sentinels, partition_of, 1)
        say(f"throughput {mode} N={n:,}: {messages:,} messages produced in {produce_s:.1f} s "
            f"({n / produce_s:,.0f} records/s into Kafka); starting the worker")
        broker = broker_pid()
        broker_cpu0 = pid_cpu_seconds(broker) if broker else None
        worker = Worker(run.env(DRIFT_MONITOR_WINDOW_SECONDS=str(TP_WINDOW)),
                        run.dir / "worker.log")
        try:
            t_ready = worker.wait_for("Worker]: Ready", 90)
            cpu_ready = worker.cpu_seconds()
            counted, late, windows = 0, 0, 0
            first_log_t = last_log_t = None
            deadline = time.time() + 300
            rss_max = 0
            complete = True
            # Done when every record is accounted for: folded into a closed window, or counted
            # late (a record whose window had already closed; the worker logs it with the
            # window it arrived in).
            while counted + late < n:
                if time.time() > deadline:
                    complete = False
                    say(f"timeout: {counted} in windows + {late} late of {n}")
                    break
                if not worker.alive():
                    raise RuntimeError(f"worker died ({worker.log_path})")
                for line in worker.poll_log():
                    if first_log_t is None and ("no checkpoint, starting empty" in line):
                        first_log_t = log_time(line)
                    m = WINDOW_CLOSED.search(line)
                    if m and m[2] in partition_of:
                        counted += int(m[6])
                        late += int(m[8])
                        windows += 1
                        last_log_t = log_time(line)
                rss_max = max(rss_max, worker.status().get("VmRSS", 0))
                time.sleep(0.05)
            t_done = time.time()
            cpu_done = worker.cpu_seconds()
            broker_cpu = (pid_cpu_seconds(broker) - broker_cpu0) if broker_cpu0 is not None \
                else None
            status = worker.status()
            time.sleep(4.0)  # > commit interval (2.8 s) and the metrics sink's flush
            lag = group_lag(run.group, run.predictions)
            in_vm = vm_sum("drift_window_records", models)
            checkpoints = topic_messages(run.state)
        finally:
            code = worker.stop()
        if worker.prof and worker.prof.exists():
            import pstats
            say(f"cProfile of the worker ({worker.prof}), top 35 by cumulative time:")
            pstats.Stats(str(worker.prof)).sort_stats("cumulative").print_stats(35)
            pstats.Stats(str(worker.prof)).sort_stats("tottime").print_stats(25)
        wall = t_done - t_ready
        busy = (last_log_t - first_log_t) if first_log_t and last_log_t else None
        result = {
            "mode": mode, "records": n, "records_per_message": array, "messages": messages,
            "complete": complete, "records_in_windows": counted,
            "models": len(models), "partitions": PARTITIONS, "windows_evaluated": windows,
            "late_records": late,
            "produce_seconds": round(produce_s, 2),
            "worker_start_to_ready_s": round(t_ready - worker.spawned, 2),
            "ready_to_all_counted_s": round(wall, 2),
            "records_per_second": round(n / wall),
            "first_batch_to_last_window_s": round(busy, 2) if busy else None,
            "records_per_second_first_batch_to_last_window":
                round(n / busy) if busy else None,
            "checkpoints_written": checkpoints,
            "mean_messages_per_checkpoint": round(messages / checkpoints, 1)
                if checkpoints else None,
            "worker_cpu_seconds": round(cpu_done - cpu_ready, 1),
            "worker_cpu_utilisation": round((cpu_done - cpu_ready) / wall, 2),
            "broker_cpu_seconds": round(broker_cpu, 1) if broker_cpu is not None else None,
            "worker_rss_mb_max_sampled": round(rss_max / 1024, 1),
            "worker_vmhwm_mb": round(status.get("VmHWM", 0) / 1024, 1),
            "check_vm_sum_drift_window_records": in_vm,
            "check_consumer_group_lag_after": lag,
            "worker_exit": code,
            "goal_records_per_second": GOALS[mode],
            "meets_goal": n / wall >= GOALS[mode],
            "log": str(worker.log_path),
        }
        say(f"throughput {mode} N={n:,}: {result['records_per_second']:,} records/s "
            f"({wall:.1f} s ready->all counted; worker CPU {result['worker_cpu_utilisation']:.0%}"
            f"; VM sum {in_vm}; lag {lag})")
        return result
    finally:
        run.cleanup()


# -- 2. alert latency -------------------------------------------------------------------------
def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def latency() -> dict:
    run = Run("latency")
    # An episode resolves after `resolve_after` clean windows, so each model is drifted once
    # every resolve_after + 1 windows, and as many models, staggered, give one fresh episode
    # (one model's firing alerts) in every window.
    period = EngineConfig().resolve_after + 1
    models = [f"lat{run.tag[-8:]}{chr(97 + i)}" for i in range(period)]
    partition_of = {m: i % PARTITIONS for i, m in enumerate(models)}
    try:
        save_profiles(run.profiles, models)
        worker = Worker(run.env(DRIFT_MONITOR_WINDOW_SECONDS=str(LAT_WINDOW),
                                DRIFT_MONITOR_GRACE_SECONDS=str(LAT_GRACE)),
                        run.dir / "worker.log")
        received: list[tuple[float, int, dict]] = []
        stop = threading.Event()
        ready = threading.Event()

        def read() -> None:
            consumer = KafkaConsumer(run.alerts, **KAFKA.kafka_python(), group_id=None,
                                     auto_offset_reset="earliest", fetch_max_wait_ms=50)
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=100)
                ready.set()
                now = time.time()
                for msgs in batches.values():
                    for m in msgs:
                        received.append((now, m.timestamp, json.loads(m.value)))
            consumer.close()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            worker.wait_for("Worker]: Ready", 90)
            ready.wait(30)
            p = producer(linger_ms=5, batch_size=64 * 1024)
            rng = np.random.default_rng(11)
            total_windows = LAT_WARMUP + LAT_WINDOWS + LAT_TAIL
            start = (int(time.time() / LAT_WINDOW) + 1) * LAT_WINDOW
            first_measured = start + LAT_WARMUP * LAT_WINDOW
            last_measured_end = first_measured + LAT_WINDOWS * LAT_WINDOW
            say(f"latency: streaming {len(models)} models x {LAT_RATE} records/s for "
                f"{total_windows} windows of {LAT_WINDOW:g} s (grace {LAT_GRACE:g} s)")
            while time.time() < start:
                time.sleep(0.01)
            t = start
            produced = 0
            end = start + total_windows * LAT_WINDOW
            while t < end:
                now = min(time.time(), end)
                if now - t < 0.02 and now < end:
                    time.sleep(0.02)
                    continue
                window = int((t - start) // LAT_WINDOW)
                for i, model in enumerate(models):
                    n = rng.poisson(LAT_RATE * (now - t))
                    if not n:
                        continue
                    drift = (window >= LAT_WARMUP and window < LAT_WARMUP + LAT_WINDOWS
                             and (window - LAT_WARMUP) % period == i)
                    ts = np.sort(rng.uniform(t, now, n))
                    cols = generate_columns(n, rng, Scenario(mean_shift=1.0) if drift else None)
                    for r in records(cols, model=model, version="1", ts=ts, start_id=produced):
                        p.send(run.predictions, value=orjson.dumps(r), key=model.encode(),
                               partition=partition_of[model])
                    produced += n
                p.flush()
                t = now
            p.close()
            time.sleep(LAT_GRACE + 3.0)
        finally:
            stop.set()
            reader.join(timeout=5)
            status = worker.status() if worker.alive() else {}
            worker.stop()
        worker.poll_log()
        windows_log = [m for m in map(WINDOW_CLOSED.search, worker.lines)
                       if m and m[2] in partition_of]
        late_total = sum(int(m[8]) for m in windows_log)
        late_windows = [{"model": m[2], "window": [float(m[4]), float(m[5])],
                         "records": int(m[6]), "late": int(m[8])}
                        for m in windows_log if int(m[8])]
        rows = []
        for recv, kafka_ts, alert in received:
            if alert.get("status") != "firing" or not alert.get("window_end"):
                continue
            w_end = parse_iso(alert["window_end"])
            if not (first_measured < w_end <= last_measured_end):
                continue
            due = w_end + LAT_GRACE
            rows.append({"model": alert["model"], "window_end": w_end,
                         "feature": alert.get("feature"), "check": alert["check"],
                         "latency_s": recv - due, "sent_latency_s": kafka_ts / 1000 - due})
        per_window: dict[tuple[str, float], float] = {}
        for r in rows:
            key = (r["model"], r["window_end"])
            per_window[key] = min(per_window.get(key, 1e9), r["latency_s"])
        lat = [r["latency_s"] for r in rows]
        sent = [r["sent_latency_s"] for r in rows]
        first = list(per_window.values())
        checks: dict[str, int] = {}
        for r in rows:
            name = f"{r['feature'] or '-'}/{r['check']}"
            checks[name] = checks.get(name, 0) + 1
        result = {
            "window_seconds": LAT_WINDOW, "grace_seconds": LAT_GRACE,
            "models": len(models), "records_per_second_per_model": LAT_RATE,
            "measured_windows": LAT_WINDOWS, "drifted_windows": LAT_WINDOWS,
            "drift": f"age +1 std (Scenario(mean_shift=1.0)) for one model per window, each "
                     f"model drifted every {period} windows (resolve_after "
                     f"{period - 1} clean windows)",
            "records_produced": produced,
            "firing_alerts": len(rows), "windows_with_firing_alert": len(per_window),
            "firing_by_check": dict(sorted(checks.items(), key=lambda kv: -kv[1])),
            "latency_s": {"p50": round(pct(lat, 50), 3), "p99": round(pct(lat, 99), 3),
                          "max": round(max(lat), 3) if lat else None,
                          "min": round(min(lat), 3) if lat else None},
            "latency_first_alert_per_window_s": {"p50": round(pct(first, 50), 3),
                                                 "p99": round(pct(first, 99), 3),
                                                 "max": round(max(first), 3) if first else None},
            "latency_by_kafka_create_time_s": {"p50": round(pct(sent, 50), 3),
                                               "p99": round(pct(sent, 99), 3)},
            "definition": "receive_time (this process, KafkaConsumer.poll) - "
                          "(window_end + grace), every firing alert of a measured window",
            "goal_p99_s": 2.0,
            "meets_goal": bool(lat) and pct(lat, 99) < 2.0,
            "worker_vmhwm_mb": round(status.get("VmHWM", 0) / 1024, 1) if status else None,
            "windows_evaluated": len(windows_log),
            "late_records": late_total,
            "windows_followed_by_late_records": late_windows,
            "log": str(worker.log_path),
        }
        say(f"latency: {len(rows)} firing alerts in {len(per_window)} windows, "
            f"p50 {result['latency_s']['p50']:.3f} s, p99 {result['latency_s']['p99']:.3f} s")
        return result
    finally:
        run.cleanup()


# -- 3. memory --------------------------------------------------------------------------------
def memory() -> dict:
    run = Run("memory")
    models = [f"mem{run.tag[-8:]}m{i}" for i in range(MEM_MODELS)]
    partition_of = {m: i % PARTITIONS for i, m in enumerate(models)}
    try:
        save_profiles(run.profiles, models)
        worker = Worker(run.env(DRIFT_MONITOR_WINDOW_SECONDS="60"), run.dir / "worker.log")
        samples: list[tuple[float, int]] = []
        try:
            worker.wait_for("Worker]: Ready", 90)
            time.sleep(1.0)
            rss_ready = worker.status()["VmRSS"]
            per_model = MEM_WINDOWS * MEM_PER_WINDOW
            t0 = (int(time.time() / 60) - MEM_WINDOWS - 2) * 60.0
            data = encoded_records(models, per_model, t0, MEM_WINDOWS * 60.0, seed=21)
            total = per_model * len(models)
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set() and worker.alive():
                    samples.append((time.time(), worker.status()["VmRSS"]))
                    time.sleep(0.25)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            _, produce_s = produce_messages(run.predictions, data, partition_of, 1)
            del data
            say(f"memory: {total:,} records for {len(models)} models produced in "
                f"{produce_s:.1f} s; waiting for every window to close")
            counted, windows, seen = 0, 0, set()
            deadline = time.time() + 300
            while counted < total:
                if time.time() > deadline or not worker.alive():
                    raise RuntimeError(f"memory run: {counted} of {total} counted "
                                       f"({worker.log_path})")
                for line in worker.poll_log():
                    m = WINDOW_CLOSED.search(line)
                    if m and m[2] in partition_of:
                        counted += int(m[6])
                        windows += 1
                        seen.add(m[2])
                time.sleep(0.1)
            time.sleep(3.0)
            stop.set()
            sampler.join(timeout=2)
            status = worker.status()
        finally:
            worker.stop()
        rss = [kb for _, kb in samples]
        result = {
            "models": len(models), "features_per_model": len(base_profile().features),
            "window_seconds": 60, "windows_per_model": MEM_WINDOWS,
            "records": total, "windows_evaluated": windows, "models_seen": len(seen),
            "rss_mb_after_ready": round(rss_ready / 1024, 1),
            "rss_mb_max_sampled": round(max(rss) / 1024, 1) if rss else None,
            "rss_mb_end": round(status["VmRSS"] / 1024, 1),
            "vmhwm_mb": round(status["VmHWM"] / 1024, 1),
            "goal_mb": 300, "meets_goal": status["VmHWM"] / 1024 < 300,
            "log": str(worker.log_path),
        }
        say(f"memory: VmHWM {result['vmhwm_mb']} MB, RSS at end {result['rss_mb_end']} MB")
        return result
    finally:
        run.cleanup()


# -- main -------------------------------------------------------------------------------------
def table(results: dict) -> str:
    lines = ["", "drift-monitor pipeline benchmark (one worker, local Kafka, 2 cores)", ""]
    rows = results.get("throughput", [])
    if rows:
        lines.append(f"{'throughput':<12}{'N':>10}{'msgs':>10}{'ready->done s':>15}"
                     f"{'records/s':>11}{'goal':>9}{'cpu':>6}{'VM sum':>10}{'lag':>5}{'late':>8}")
        for r in rows:
            lines.append(f"{r['mode']:<12}{r['records']:>10,}{r['messages']:>10,}"
                         f"{r['ready_to_all_counted_s']:>15.1f}{r['records_per_second']:>11,}"
                         f"{r['goal_records_per_second']:>9,}"
                         f"{r['worker_cpu_utilisation']:>6.0%}"
                         f"{int(r['check_vm_sum_drift_window_records'] or 0):>10,}"
                         f"{r['check_consumer_group_lag_after']:>5}"
                         f"{r['late_records']:>8,}")
        lines.append("  (late = records not folded into their window: it had already closed)")
        lines.append("")
    lat = results.get("latency")
    if lat:
        ls, lf = lat["latency_s"], lat["latency_first_alert_per_window_s"]
        lines.append(f"alert latency (window {lat['window_seconds']:g} s, grace "
                     f"{lat['grace_seconds']:g} s): {lat['firing_alerts']} firing alerts in "
                     f"{lat['windows_with_firing_alert']} windows")
        lines.append(f"  receive - (window_end + grace): p50 {ls['p50']:.3f} s  p99 "
                     f"{ls['p99']:.3f} s  max {ls['max']:.3f} s  (goal p99 < 2 s)")
        lines.append(f"  first alert of each window:     p50 {lf['p50']:.3f} s  p99 "
                     f"{lf['p99']:.3f} s")
        lines.append(f"  late records during the stream: {lat['late_records']:,} of "
                     f"{lat['records_produced']:,} in "
                     f"{len(lat['windows_followed_by_late_records'])} windows")
        lines.append("")
    mem = results.get("memory")
    if mem:
        lines.append(f"memory ({mem['models']} models x {mem['features_per_model']} features, "
                     f"{mem['records']:,} records, {mem['windows_evaluated']} windows): "
                     f"RSS ready {mem['rss_mb_after_ready']} MB, max sampled "
                     f"{mem['rss_mb_max_sampled']} MB, VmHWM {mem['vmhwm_mb']} MB "
                     f"(goal < 300 MB)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[200_000],
                        help="throughput record counts (each run in every mode)")
    parser.add_argument("--n-single", type=int, nargs="+",
                        help="record counts for 1 record per message (default: --n)")
    parser.add_argument("--n-batched", type=int, nargs="+",
                        help="record counts for 100 records per message (default: --n)")
    parser.add_argument("--only", default="throughput,latency,memory")
    parser.add_argument("--modes", default="single,batched")
    parser.add_argument("--cprofile", action="store_true",
                        help="run the worker under cProfile and print its top functions "
                             "(diagnosis: figures are then not the benchmark's)")
    args = parser.parse_args()
    global CPROFILE
    CPROFILE = args.cprofile
    plan = [(n, a) for mode, a, ns in (("single", 1, args.n_single or args.n),
                                       ("batched", ARRAY_SIZE, args.n_batched or args.n))
            if mode in args.modes.split(",") for n in ns]
    parts = set(args.only.split(","))
    started = time.time()
    results: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "bench/pipeline.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "broker": ",".join(KAFKA.brokers),
                    "security_protocol": KAFKA.security_protocol, "metrics": VM},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if "throughput" in parts:
        results["throughput"] = []
        models = [f"tp{uuid.uuid4().hex[:6]}m{i}" for i in range(TP_MODELS)]
        t0 = (int(time.time() / TP_WINDOW) - TP_WINDOWS_PER_MODEL - 5) * TP_WINDOW
        for n, array in plan:
            g0 = time.perf_counter()
            data = encoded_records(models, n // TP_MODELS, t0, TP_WINDOWS_PER_MODEL * TP_WINDOW,
                                   seed=1)
            n_total = sum(len(v) for v in data.values())
            say(f"generated {n_total:,} records in {time.perf_counter() - g0:.1f} s "
                f"({np.mean([len(v) for vs in data.values() for v in vs[:1000]]):.0f} "
                f"bytes each)")
            # fresh model names per run: VictoriaMetrics sums must see this run only
            run_models = [f"{m}{'s' if array == 1 else 'b'}{n}" for m in models]
            renamed = {rm: [v.replace(f'"model":"{m}"'.encode(), f'"model":"{rm}"'.encode(), 1)
                            for v in data[m]] for m, rm in zip(models, run_models, strict=True)}
            del data
            results["throughput"].append(throughput(n_total, renamed, run_models, array))
            del renamed
    if "latency" in parts:
        results["latency"] = latency()
    if "memory" in parts:
        results["memory"] = memory()
    results["total_seconds"] = round(time.time() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\ntotal {results['total_seconds']:.0f} s; written {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
