"""Outage figures of the worker (README, "Operations"), measured on this machine.

1. broker   A broker of the bench's own (scripts/services.sh with its own SERVICES_DIR and ports:
            the shared servers are never stopped). The demo's model (16 features + prediction),
            10 s windows, records streamed live (ts = wall clock) at --broker-rate records/s over
            a 4-partition topic by a producer that keeps its records and resends them while the
            broker is down (kafka-python, idempotent). After 20 s the broker is stopped for
            --outages seconds (each in a run of its own), then started again.
            Figures: seconds from the broker answering again to the worker's records_processed
            moving again (/metrics every 0.1 s) and to its next window report; records lost =
            produced - (records + late) of the window reports; reports equal to `replay` of
            the same records (exactly).
2. store    A VictoriaMetrics of the bench's own; the shared broker. --store-rate records/s
            live, the store stopped after 30 s for --store-outage seconds, then 40 s more.
            Figures: peak of metric_points_buffered (the outbox; /metrics every 0.5 s), windows
            closed during the outage, seconds from the store answering again to an empty
            outbox, drift_window_records points in the store afterwards against the windows.
3. memory   The shared broker; --wide records of the demo model pre-produced, each with 10,000
            more feature names of its own (none of them in the profile); the same number of
            plain records for comparison. Figures: the worker's peak RSS (VmHWM) and RSS at the
            end, checkpoint bytes, unexpected names the window keeps and counts.

Run:  .venv/bin/python bench/outages.py [--only broker,store,memory] [--outages 10 60]
      (`bash scripts/services.sh up` first). Writes bench/results/outages.json.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the integration tests' helpers: topics, worker, servers

from support.kafka import (  # noqa: E402
    BOOTSTRAP,
    Setup,
    Worker,
    replayed,
    reports_in,
    vm_export,
)
from support.servers import OwnServers  # noqa: E402

from monitor.demo.run import TRAINING_DATA  # noqa: E402
from monitor.demo.synthetic import generate_columns, records  # noqa: E402
from monitor.profile.build import BuildOptions, build_profile  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "outages.json"
WINDOW = 10.0
SETTINGS = {"DRIFT_MONITOR_WINDOW_SECONDS": str(WINDOW), "DRIFT_MONITOR_GRACE_SECONDS": "2",
            "DRIFT_MONITOR_IDLE_SECONDS": "5", "DRIFT_MONITOR_MIN_RECORDS": "200"}
MODEL = "churn"


def say(*args: Any) -> None:
    print("[outages]", *args, flush=True)


def profile(setup: Setup, rate: int) -> None:
    built = build_profile(TRAINING_DATA, BuildOptions(
        model=MODEL, version="1", predictions=("prediction",),
        window_size=max(200, min(rate * int(WINDOW), 5000)), calibration_windows=100))
    built.save(setup.profiles / f"{MODEL}-1.json")


def until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class LiveStream(threading.Thread):
    """The demo model's records at wall-clock time, `rate` per second, spread over partitions;
    every message sent is kept (to replay it) and counted when the broker acknowledged it."""

    def __init__(self, bootstrap: str, topic: str, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.topic, self.rate, self.seconds = topic, rate, seconds
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                      enable_idempotence=True, reconnect_backoff_max_ms=500,
                                      delivery_timeout_ms=600_000, max_block_ms=600_000)
        self.sent: list[bytes] = []
        self.acked = 0
        self.failed = 0

    def run(self) -> None:
        rng = np.random.default_rng(7)
        started, tick, i = time.time(), 0.05, 0
        while (now := time.time()) < started + self.seconds:
            due = int((now - started) * self.rate) - i
            if due > 0:
                cols = generate_columns(due, rng)
                for record in records(cols, model=MODEL, version="1", ts=np.full(due, now),
                                      start_id=i):
                    raw = orjson.dumps(record)
                    self.sent.append(raw)
                    future = self.producer.send(self.topic, raw, partition=i % 4)
                    future.add_callback(self._ok).add_errback(self._error)
                    i += 1
            time.sleep(tick)
        self.producer.flush(timeout=600)
        self.producer.close()

    def _ok(self, _: Any) -> None:
        self.acked += 1

    def _error(self, _: Any) -> None:
        self.failed += 1


def place(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def counted(reports: list[dict[str, Any]]) -> int:
    return sum(r["records"] + r["late_records"] for r in reports)


# -- 1. broker ------------------------------------------------------------------------------------
class Watch(threading.Thread):
    """From the broker's start: when its port accepts connections again, and when the worker's
    records_processed moves past `frozen` (polled every 0.1 s)."""

    def __init__(self, port: int, worker: Worker, frozen: float) -> None:
        super().__init__(daemon=True)
        self.port, self.worker, self.frozen = port, worker, frozen
        self.began = time.monotonic()
        self.port_open: float | None = None
        self.flowing: float | None = None

    def run(self) -> None:
        while time.monotonic() - self.began < 300:
            if self.port_open is None:
                with socket.socket() as sock:
                    sock.settimeout(0.2)
                    if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                        self.port_open = time.monotonic()
            elif self.worker.metrics().get("records_processed", 0) > self.frozen:
                self.flowing = time.monotonic()
                return
            time.sleep(0.1)


def broker_run(outage: float, rate: int, work: Path) -> dict[str, Any]:
    servers = OwnServers(work / f"kafka-{int(outage)}")
    servers.up("kafka")
    setup = Setup(place(work / f"broker-{int(outage)}"), 4, bootstrap=servers.bootstrap)
    try:
        profile(setup, rate)
        worker = setup.worker("worker", **SETTINGS)
        stream = LiveStream(servers.bootstrap, setup.predictions, rate, 40 + outage)
        stream.start()
        time.sleep(20)
        say(f"broker: stopping it for {outage:.0f} s")
        servers.down("kafka")
        time.sleep(min(5.0, outage / 2))
        frozen = worker.metrics().get("records_processed", 0)  # nothing read while it is down
        time.sleep(outage - min(5.0, outage / 2))
        watch = Watch(servers.kafka_port, worker, frozen)
        watch.start()
        servers.up("kafka")
        ready = time.monotonic()
        reports_before = len(reports_in(setup.reports, setup.bootstrap))
        watch.join(300)
        if watch.flowing is None or watch.port_open is None:
            raise SystemExit("records did not flow again after the broker restart")
        until(lambda: len(reports_in(setup.reports, setup.bootstrap)) > reports_before, 300,
              "a window report after the restart", every=0.2)
        reporting = time.monotonic() - watch.port_open
        stream.join(900)
        produced = len(stream.sent)
        reports = until(lambda: (r := reports_in(setup.reports, setup.bootstrap))
                        and counted(r) >= produced and r, 120, "every record in a report")
        time.sleep(2 * WINDOW)  # nothing counted twice would show up late
        reports = reports_in(setup.reports, setup.bootstrap)
        same = reports == replayed(setup.profiles, stream.sent, setup.env(**SETTINGS))
        alive = worker.proc is not None and worker.proc.poll() is None
        log = worker.log()
        worker.stop()
        return {"outage_seconds": outage, "rate": rate, "produced": produced,
                "producer_failures": stream.failed, "counted": counted(reports),
                "lost": produced - counted(reports), "windows": len(reports),
                "reports_equal_replay": same, "same_process": alive,
                "broker_start_seconds": round(ready - watch.began, 2),
                "seconds_port_open_to_records_flowing": round(watch.flowing - watch.port_open, 2),
                "seconds_port_open_to_next_window_report": round(reporting, 2),
                "kafka_failures_logged": len(re.findall("Kafka failed", log)),
                "worker_log_lines": len(log.splitlines())}
    finally:
        setup.delete_topics()
        servers.close()


# -- 2. store -------------------------------------------------------------------------------------
class StoreWatch(threading.Thread):
    """From the store's start: when it answers /health, and when the worker's outbox is empty
    (polled every 0.1 s)."""

    def __init__(self, url: str, worker: Worker) -> None:
        super().__init__(daemon=True)
        self.url, self.worker = url, worker
        self.answering: float | None = None
        self.emptied: float | None = None

    def run(self) -> None:
        began = time.monotonic()
        while time.monotonic() - began < 300:
            if self.answering is None:
                try:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                        if response.status == 200:
                            self.answering = time.monotonic()
                except OSError:
                    pass
            elif self.worker.metrics().get("metric_points_buffered", 1) == 0:
                self.emptied = time.monotonic()
                return
            time.sleep(0.1)


def store_run(outage: float, rate: int, work: Path) -> dict[str, Any]:
    servers = OwnServers(work / "vm")
    servers.up("vm")
    setup = Setup(place(work / "store"), 4, vm=servers.vm)
    try:
        profile(setup, rate)
        worker = setup.worker("worker", **SETTINGS)
        stream = LiveStream(BOOTSTRAP, setup.predictions, rate, 30 + outage + 40)
        stream.start()
        peak, samples = 0.0, []
        time.sleep(30)
        windows_before = len(reports_in(setup.reports))
        servers.down("vm")
        down_at = time.monotonic()
        while time.monotonic() - down_at < outage:
            m = worker.metrics()
            peak = max(peak, m.get("metric_points_buffered", 0))
            samples.append((round(time.monotonic() - down_at, 1),
                            m.get("metric_points_buffered", 0), m.get("metrics_store_up")))
            time.sleep(0.5)
        windows_during = len(reports_in(setup.reports)) - windows_before
        watch = StoreWatch(servers.vm, worker)
        watch.start()
        servers.up("vm")
        watch.join(300)
        if watch.answering is None or watch.emptied is None:
            raise SystemExit("the outbox was not emptied after the store came back")
        emptied = watch.emptied - watch.answering
        m = worker.metrics()
        stream.join(600)
        reports = until(lambda: (r := reports_in(setup.reports))
                        and counted(r) >= len(stream.sent) and r, 120, "every record reported")
        time.sleep(3)
        points = vm_export("drift_window_records", servers.vm, model=MODEL)
        in_store = {t for s in points for t in s["timestamps"]
                    if s["metric"].get("version") == "1"}
        log = worker.log()
        worker.stop()
        return {"outage_seconds": outage, "rate": rate, "produced": len(stream.sent),
                "outbox_peak_points": int(peak), "windows_closed_during_outage": windows_during,
                "seconds_store_answering_to_empty_outbox": round(emptied, 2),
                "metric_write_failures": int(m.get("metric_write_failures", 0)),
                "metric_points_dropped": int(m.get("metric_points_dropped", 0)),
                "windows": len(reports), "window_points_in_store": len(in_store),
                "store_lines_logged": len(re.findall("points wait in the outbox", log)),
                "outbox_samples": samples[::10]}
    finally:
        setup.delete_topics()
        servers.close()


# -- 3. memory ------------------------------------------------------------------------------------
def memory_run(n: int, extra: int, work: Path) -> dict[str, Any]:
    setup = Setup(place(work / f"memory-{extra}"), 4)
    try:
        profile(setup, 200)
        rng = np.random.default_rng(3)
        start = (int(time.time()) // 3600 - 2) * 3600
        ts = start + np.sort(rng.uniform(0, 2 * WINDOW, n))
        producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=20,
                                 max_request_size=4 << 20)
        size = 0
        for i, record in enumerate(records(generate_columns(n, rng), model=MODEL, version="1",
                                           ts=ts)):
            record["features"].update({f"u{i}_{k}": k * 0.5 for k in range(extra)})
            raw = orjson.dumps(record)
            size += len(raw)
            producer.send(setup.predictions, raw, partition=i % 4)
        producer.flush(timeout=300)
        producer.close()
        began = time.monotonic()
        worker = setup.worker("worker", **SETTINGS)
        reports = until(lambda: (r := reports_in(setup.reports)) and counted(r) >= n and r, 600,
                        "every record reported")
        seconds = time.monotonic() - began
        assert worker.proc is not None
        status = Path(f"/proc/{worker.proc.pid}/status").read_text()
        kb = {k: int(re.search(rf"{k}:\s+(\d+) kB", status)[1]) for k in ("VmHWM", "VmRSS")}
        m = worker.metrics()
        worker.stop()
        return {"records": n, "unknown_keys_per_record": extra,
                "message_bytes_mean": size // n, "peak_rss_mb": round(kb["VmHWM"] / 1024),
                "rss_at_end_mb": round(kb["VmRSS"] / 1024),
                "checkpoint_bytes": int(m.get("checkpoint_bytes", 0)),
                "unexpected_names_kept": max(len(r["unexpected_features"]) for r in reports),
                "names_counted_not_kept": sum(r.get("dropped_values", 0) for r in reports),
                "seconds_to_report_all": round(seconds, 1)}
    finally:
        setup.delete_topics()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="broker,store,memory")
    parser.add_argument("--outages", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--broker-rate", type=int, default=1000)
    parser.add_argument("--store-rate", type=int, default=2000)
    parser.add_argument("--store-outage", type=float, default=60.0)
    parser.add_argument("--wide", type=int, default=1000)
    args = parser.parse_args()
    only = set(args.only.split(","))
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with tempfile.TemporaryDirectory(prefix="drift-bench-outages-") as tmp:
        work = Path(tmp)
        if "broker" in only:
            results["broker"] = []
            for outage in args.outages:
                results["broker"].append(broker_run(outage, args.broker_rate, work))
                say("broker:", json.dumps(results["broker"][-1]))
        if "store" in only:
            results["store"] = store_run(args.store_outage, args.store_rate, work)
            say("store:", json.dumps(results["store"]))
        if "memory" in only:
            results["memory"] = [memory_run(args.wide, extra, work) for extra in (0, 10_000)]
            say("memory:", json.dumps(results["memory"]))
    command = "python bench/outages.py " + " ".join(sys.argv[1:])
    results.pop("command", None)
    results.setdefault("commands", {}).update({section: command for section in only})
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    say(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
