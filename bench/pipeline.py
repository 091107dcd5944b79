"""The whole pipeline on this machine: `python -m monitor.service.worker` processes (both stages:
records -> partial windows -> partials topic -> merged windows) against the real Kafka
(127.0.0.1:9092, sharing this machine's 2 cores with the workers) and VictoriaMetrics.
The broker and its security come from DRIFT_MONITOR_BROKER and DRIFT_MONITOR_KAFKA_* as for the
worker (e.g. `set -a; . .services/kafka/sasl-ssl.env` measures over SASL_SSL).

1. throughput  N pre-produced records (16 features + prediction, one JSON record per message),
               event time over 10 windows of 60 s per model, in the past. Layouts:
               keyed     4 models, each keyed to its own partition of a 4-partition topic;
               spread    1 model, each message to a random partition (unkeyed), with 1 and
                         with 2 workers.
               Workers start after the records are in; timed from the first worker's Ready to
               the moment every record is counted in an evaluated window (the sum of records +
               late over the "window closed" lines). The stream goes on as a live one does:
               after the measured records, each model sends 3 records (SUPPORT) per partition it uses,
               in the next window, whose event time closes the last measured window (grace 0);
               with `--stream-ends` it does not, and the last window closes when the stream has
               been idle for DRIFT_MONITOR_IDLE_SECONDS=1 (an idle model's event time runs on
               with the wall clock). Baseline in the same run: `drift-monitor replay`
               of the same records as JSONL (wall time of the process, flushing every window
               at the end of the file), so the figure is the
               ratio worker / replay (goal 0.67), in wall time and in CPU time (the worker's
               from Ready; also from the worker process's start, as replay is timed).
               `--per-message K` sends arrays of K records per message. The
               partials topic is read afterwards: messages and bytes per window per input
               partition.
2. latency     window 2 s, grace 1 s; 3 models streamed in real time (ts = wall clock) at 500
               records/s each, spread unkeyed over 4 partitions, 2 workers; model i drifted
               (age +1 std) in windows w with w % 3 == i, so every window starts an episode.
               For every firing alert: receive time on the alerts topic - (window end + grace).
3. models      many models: M models x 16 features + prediction on one worker, W windows of
               R records each, spread over 4 partitions; RSS of the worker (VmHWM), state topic
               bytes per checkpoint, and (in process) what a checkpoint costs per batch when
               only a few of the M held models are active (`bench/many_models.py`).

Every run uses topics, consumer groups and model names of its own (deleted afterwards).

Run:  .venv/bin/python bench/pipeline.py [--n N] [--only throughput,latency,models]
      [--layouts keyed,spread1,spread2] [--models M]  (`bash scripts/services.sh up` first).
Writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import KafkaConsumer
from pipeline_kit import (
    KAFKA,
    PARTITIONS,
    ROOT,
    WINDOW_CLOSED,
    Run,
    base_profile,
    broker_pid,
    encoded_records,
    interleave,
    partials_stats,
    pct,
    pid_cpu_seconds,
    produce,
    produce_closers,
    producer,
    read_topic,
    save_profiles,
    say,
)

from monitor.demo.synthetic import Scenario, generate_columns, records
from monitor.stream.engine import EngineConfig

RESULTS = ROOT / "bench" / "results" / "pipeline.json"
TP_WINDOW, TP_WINDOWS = 60.0, 10
LAT_WINDOW, LAT_GRACE, LAT_RATE = 2.0, 1.0, 500
LAT_WINDOWS, LAT_WARMUP, LAT_TAIL = 50, 3, 2
STREAM_ENDS = False  # --stream-ends: no records after the measured ones (idle close)
PROFILE_WORKER = False  # --profile-worker: py-spy on the (first) worker of each throughput run
LAYOUTS = {"keyed": (4, True, 1), "spread1": (1, False, 1), "spread2": (1, False, 2)}


def replay_seconds(run: Run, stream: list[tuple[str, bytes]], code: str | None = None
                   ) -> tuple[float, float]:
    """Wall and CPU seconds of `drift-monitor replay` over the same records (the worker's
    baseline)."""
    logs = run.dir / "records.jsonl"
    with open(logs, "wb") as fh:
        fh.writelines(value + b"\n" for _, value in stream)
    cmd = [str(ROOT / ".venv" / "bin" / "drift-monitor"), "replay", str(logs), "--profiles",
           str(run.profiles), "--window", str(TP_WINDOW), "--grace", "0"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": code} if code else None
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    logs.unlink()
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def throughput(n: int, layout: str, code: str | None = None, per_message: int = 1
               ) -> dict[str, Any]:
    """One layout; `code`: a directory of another drift-monitor's source to run instead (the
    worker and the replay get it as PYTHONPATH), for before/after figures in one run."""
    models_n, keyed, workers_n = LAYOUTS[layout]
    run = Run(f"tp-{layout}")
    extra = {"PYTHONPATH": code} if code else {}
    models = [f"tp{run.tag[-8:]}m{i}" for i in range(models_n)]
    try:
        save_profiles(run.profiles, models)
        t0 = (int(time.time() / TP_WINDOW) - TP_WINDOWS - 5) * TP_WINDOW
        by_model = encoded_records(models, n // models_n, t0, TP_WINDOWS * TP_WINDOW, seed=1)
        n = sum(map(len, by_model.values()))
        replay_s, replay_cpu = replay_seconds(run, interleave(by_model), code)
        stream = interleave(by_model, per_message=per_message)
        del by_model
        partition_of = {m: i % PARTITIONS for i, m in enumerate(models)}
        produce_s = produce(run.predictions, stream, keyed=keyed, partition_of=partition_of)
        del stream
        if not STREAM_ENDS:  # the stream goes on: its next records close the last window
            produce_closers(run.predictions, models, t0 + TP_WINDOWS * TP_WINDOW + 1, {
                m: [partition_of[m]] if keyed else list(range(PARTITIONS)) for m in models})
        say(f"throughput {layout} N={n:,}: produced in {produce_s:.1f} s; replay of the same "
            f"records {replay_s:.1f} s ({n / replay_s:,.0f} records/s); starting "
            f"{workers_n} worker(s)")
        broker = broker_pid()
        broker_cpu0 = pid_cpu_seconds(broker) if broker else None
        workers = [run.worker(f"worker{i}", DRIFT_MONITOR_WINDOW_SECONDS=str(TP_WINDOW),
                              DRIFT_MONITOR_GRACE_SECONDS="0", **extra)
                   for i in range(workers_n)]
        t_ready = min(w.wait_for("Worker]: Ready", 120) for w in workers)
        cpu_ready = sum(w.cpu_seconds() for w in workers)
        spy = None
        if PROFILE_WORKER:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(workers[0].proc.pid),
                                    "-r", "200", "-f", "raw", "-o",
                                    str(run.dir / "worker.pyspy.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t_assigned = None
        counted = late = windows = 0
        closed_at: list[float] = []  # seconds from Ready, as each window's close is logged
        deadline = time.time() + 900
        while counted + late < n:
            if time.time() > deadline or not all(w.alive() for w in workers):
                raise RuntimeError(f"{layout}: {counted} + {late} late of {n} "
                                   f"({run.dir})")
            for w in workers:
                for line in w.poll_log():
                    if t_assigned is None and "stage one: partitions assigned" in line:
                        t_assigned = time.time()
                    m = WINDOW_CLOSED.search(line)
                    if m and m[2] in models and float(m[4]) < t0 + TP_WINDOWS * TP_WINDOW:
                        closed_at.append(round(time.time() - t_ready, 2))
                        counted += int(m[6])
                        late += int(m[8])
                        windows += 1
            time.sleep(0.05)
        t_done = time.time()
        cpu = sum(w.cpu_seconds() for w in workers) - cpu_ready
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        broker_cpu = (pid_cpu_seconds(broker) or 0) - broker_cpu0 if broker_cpu0 else None
        rss = max(w.status().get("VmHWM", 0) for w in workers)
        for w in workers:
            w.stop()
        wall = t_done - t_ready
        result = {
            "layout": layout, "code": code or "this checkout", "records": n,
            "records_per_message": per_message, "models": models_n, "keyed": keyed,
            "workers": workers_n, "partitions": PARTITIONS, "windows_evaluated": windows,
            "records_in_windows": counted, "late_records": late,
            "ready_to_all_counted_s": round(wall, 2), "records_per_second": round(n / wall),
            "stream_ends": STREAM_ENDS, "windows_closed_s_from_ready": closed_at,
            "assigned_to_all_counted_s": round(t_done - t_assigned, 2) if t_assigned else None,
            # From the process's start (imports, Faust's start, joining), as replay is timed.
            "spawn_to_all_counted_s": round(t_done - min(w.spawned for w in workers), 2),
            "worker_over_replay_from_spawn": round(
                replay_s / (t_done - min(w.spawned for w in workers)), 3),
            "replay_seconds": round(replay_s, 2), "replay_cpu_seconds": round(replay_cpu, 2),
            "replay_records_per_second": round(n / replay_s),
            "worker_over_replay": round(replay_s / wall, 3), "goal_worker_over_replay": 0.67,
            "worker_over_replay_cpu": round(replay_cpu / cpu, 3) if cpu else None,
            "worker_cpu_seconds_ready_to_done": round(cpu, 1),
            "broker_cpu_seconds": round(broker_cpu, 1) if broker_cpu is not None else None,
            "worker_vmhwm_mb": round(rss / 1024, 1),
            "partials": partials_stats(run.partials, windows, PARTITIONS),
        }
        say(f"throughput {layout}: {result['records_per_second']:,} records/s, "
            f"{result['worker_over_replay']:.2f} of replay; partials "
            f"{result['partials']['partial_bytes_per_window_per_partition']:,} bytes / window "
            f"/ partition")
        return result
    finally:
        run.cleanup()


def latency() -> dict[str, Any]:
    run = Run("latency")
    period = EngineConfig().resolve_after + 1
    models = [f"lat{run.tag[-8:]}{chr(97 + i)}" for i in range(period)]
    try:
        save_profiles(run.profiles, models)
        env = {"DRIFT_MONITOR_WINDOW_SECONDS": str(LAT_WINDOW),
               "DRIFT_MONITOR_GRACE_SECONDS": str(LAT_GRACE)}
        workers = [run.worker(f"worker{i}", **env) for i in range(2)]
        received: list[tuple[float, dict]] = []
        stop, ready = threading.Event(), threading.Event()

        def read() -> None:
            consumer = KafkaConsumer(run.internal["alerts"], **KAFKA.kafka_python(),
                                     group_id=None, auto_offset_reset="earliest",
                                     fetch_max_wait_ms=50)
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=100)
                ready.set()
                now = time.time()
                received.extend((now, json.loads(m.value)) for b in batches.values() for m in b)
            consumer.close()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for w in workers:
            w.wait_for("Worker]: Ready", 120)
        for w in workers:  # both workers own partitions of both stages before the stream
            w.wait_for("partitions assigned", 60)
        ready.wait(30)
        time.sleep(5.0)
        p = producer(linger_ms=5, batch_size=64 * 1024)
        rng = np.random.default_rng(11)
        start = (int(time.time() / LAT_WINDOW) + 1) * LAT_WINDOW
        first = start + LAT_WARMUP * LAT_WINDOW
        last_end = first + LAT_WINDOWS * LAT_WINDOW
        end = start + (LAT_WARMUP + LAT_WINDOWS + LAT_TAIL) * LAT_WINDOW
        say(f"latency: {len(models)} models x {LAT_RATE} records/s, 2 workers, spread over "
            f"{PARTITIONS} partitions, {LAT_WINDOWS} measured windows of {LAT_WINDOW:g} s")
        while time.time() < start:
            time.sleep(0.01)
        t, produced = start, 0
        while t < end:
            now = min(time.time(), end)
            if now - t < 0.02 and now < end:
                time.sleep(0.02)
                continue
            window = int((t - start) // LAT_WINDOW)
            for i, model in enumerate(models):
                k = rng.poisson(LAT_RATE * (now - t))
                drift = LAT_WARMUP <= window < LAT_WARMUP + LAT_WINDOWS and \
                    (window - LAT_WARMUP) % period == i
                cols = generate_columns(k, rng, Scenario(mean_shift=1.0) if drift else None)
                for r in records(cols, model=model, version="1",
                                 ts=np.sort(rng.uniform(t, now, k)), start_id=produced):
                    p.send(run.predictions, value=orjson.dumps(r),
                           partition=int(rng.integers(0, PARTITIONS)))
                produced += k
            p.flush()
            t = now
        p.close()
        time.sleep(LAT_GRACE + 4.0)
        stop.set()
        reader.join(timeout=5)
        rss = max(w.status().get("VmHWM", 0) for w in workers)
        lat: list[float] = []
        for recv, alert in received:
            if alert.get("status") != "firing" or not alert.get("window_end"):
                continue
            w_end = datetime.fromisoformat(alert["window_end"].replace("Z", "+00:00")).timestamp()
            if first < w_end <= last_end:
                lat.append(recv - (w_end + LAT_GRACE))
        result = {"window_seconds": LAT_WINDOW, "grace_seconds": LAT_GRACE, "workers": 2,
                  "partitions": PARTITIONS, "models": len(models),
                  "records_per_second_per_model": LAT_RATE, "records_produced": produced,
                  "firing_alerts": len(lat),
                  "latency_s": {"p50": round(pct(lat, 50), 3), "p99": round(pct(lat, 99), 3),
                                "max": round(max(lat), 3) if lat else None},
                  "definition": "alert received on the alerts topic (this process) - "
                                "(window end + grace), every firing alert of a measured window",
                  "goal_p99_s": 2.0, "meets_goal": bool(lat) and pct(lat, 99) < 2.0,
                  "worker_vmhwm_mb": round(rss / 1024, 1)}
        say(f"latency: {len(lat)} firing alerts, p50 {result['latency_s']['p50']} s, "
            f"p99 {result['latency_s']['p99']} s")
        return result
    finally:
        run.cleanup()


def many_models(count: int, windows: int, per_window: int) -> dict[str, Any]:
    """One worker, `count` models, spread over 4 partitions: RSS and checkpoint sizes."""
    run = Run("models")
    models = [f"mm{run.tag[-8:]}x{i}" for i in range(count)]
    try:
        save_profiles(run.profiles, models)
        t0 = (int(time.time() / 60) - windows - 3) * 60.0
        stream = interleave(encoded_records(models, windows * per_window, t0, windows * 60.0,
                                            seed=21), step=per_window)
        n = len(stream)
        produce_s = produce(run.predictions, stream, keyed=False)
        del stream
        say(f"models: {n:,} records of {count} models produced in {produce_s:.1f} s")
        worker = run.worker("worker", DRIFT_MONITOR_WINDOW_SECONDS="60",
                            DRIFT_MONITOR_MIN_RECORDS="20")
        t_ready = worker.wait_for("Worker]: Ready", 300)
        rss_ready = worker.status().get("VmRSS", 0)
        counted, seen, rss_max = 0, set(), 0
        deadline = time.time() + 1800
        while counted < n:
            if time.time() > deadline or not worker.alive():
                raise RuntimeError(f"models: {counted} of {n} ({worker.log_path})")
            for line in worker.poll_log():
                m = WINDOW_CLOSED.search(line)
                if m and m[2].startswith(f"mm{run.tag[-8:]}"):
                    counted += int(m[6]) + int(m[8])
                    seen.add(m[2])
            rss_max = max(rss_max, worker.status().get("VmRSS", 0))
            time.sleep(0.2)
        wall = time.time() - t_ready
        status = worker.status()
        worker.stop()
        headers = [m for m in read_topic(run.internal["state"]) if b'"h"' in (m.key or b"")]
        state_bytes = sum(len(m.value or b"") for m in read_topic(run.internal["state"]))
        result = {"models": count, "features_per_model": len(base_profile().features),
                  "windows_per_model": windows, "records": n, "models_evaluated": len(seen),
                  "seconds_ready_to_all_counted": round(wall, 1),
                  "rss_mb_after_ready": round(rss_ready / 1024, 1),
                  "rss_mb_max_sampled": round(rss_max / 1024, 1),
                  "vmhwm_mb": round(status.get("VmHWM", 0) / 1024, 1), "goal_mb": 1024,
                  "stage_one_checkpoints": len(headers),
                  "stage_one_state_bytes_per_checkpoint": round(state_bytes / max(len(headers), 1))}
        say(f"models: {count} models, VmHWM {result['vmhwm_mb']} MB")
        return result
    finally:
        run.cleanup()


def table(results: dict[str, Any]) -> str:
    lines = ["", "drift-monitor pipeline (local broker sharing this machine's 2 cores)", ""]
    for r in results.get("throughput", []):
        p = r["partials"]
        if r["code"] != "this checkout":
            lines.append(f"         (code from {r['code']})")
        lines.append(f"{r['layout']:<8} {r['models']} model(s) {'keyed' if r['keyed'] else 'spread'}"
                     f" over {r['partitions']} partitions, {r['workers']} worker(s), "
                     f"{r['records_per_message']} record(s)/message: "
                     f"{r['records_per_second']:>7,} records/s; replay of the same records "
                     f"{r['replay_records_per_second']:,}/s -> worker/replay "
                     f"{r['worker_over_replay']:.2f} (goal 0.67; CPU time "
                     f"{r['worker_over_replay_cpu']:.2f}; from the worker's start "
                     f"{r['worker_over_replay_from_spawn']:.2f}); late {r['late_records']}")
        lines.append(f"         partials topic per window per partition: "
                     f"{p['partial_messages_per_window_per_partition']} partial message(s), "
                     f"{p['partial_bytes_per_window_per_partition']:,} bytes; progress "
                     f"{p['progress_messages_per_window_per_partition']} messages, "
                     f"{p['progress_bytes_per_window_per_partition']:,} bytes")
    lat = results.get("latency")
    if lat:
        ls = lat["latency_s"]
        lines.append(f"latency  2 workers: {lat['firing_alerts']} firing alerts, p50 {ls['p50']} s,"
                     f" p99 {ls['p99']} s, max {ls['max']} s (goal p99 < 2 s)")
    m = results.get("models")
    if m:
        lines.append(f"models   {m['models']} x {m['features_per_model']} features, one worker: "
                     f"VmHWM {m['vmhwm_mb']} MB (goal < 1 GB); "
                     f"{m['stage_one_state_bytes_per_checkpoint']:,} state bytes per checkpoint")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="records per throughput run")
    parser.add_argument("--only", default="throughput,latency,models")
    parser.add_argument("--layouts", default="keyed,spread1,spread2")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--model-windows", type=int, default=2)
    parser.add_argument("--per-window", type=int, default=60)
    parser.add_argument("--stream-ends", action="store_true",
                        help="no records after the measured ones: the last window closes when "
                        "the stream has been idle (DRIFT_MONITOR_IDLE_SECONDS=1), not on the "
                        "next records' event time")
    parser.add_argument("--profile-worker", action="store_true",
                        help="py-spy record the first worker of each throughput run (raw "
                             "stacks in its run directory; figures are then not the benchmark's)")
    parser.add_argument("--per-message", type=int, default=1,
                        help="records per message (a JSON array when more than 1)")
    parser.add_argument("--baseline-code", help="also run each layout with the drift-monitor "
                        "source in this directory (e.g. an export of main), for before/after")
    args = parser.parse_args()
    global PROFILE_WORKER, STREAM_ENDS
    PROFILE_WORKER = args.profile_worker
    STREAM_ENDS = args.stream_ends
    parts = set(args.only.split(","))
    started = time.time()
    results: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "bench/pipeline.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "broker": ",".join(KAFKA.brokers),
                    "note": "the broker and the workers share this machine's cores"},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": uuid.uuid4().hex[:8]}
    if "throughput" in parts:
        results["throughput"] = []
        for layout in args.layouts.split(","):
            if args.baseline_code:
                results["throughput"].append(throughput(args.n, layout, args.baseline_code,
                                                        args.per_message))
            results["throughput"].append(throughput(args.n, layout, None, args.per_message))
    if "latency" in parts:
        results["latency"] = latency()
    if "models" in parts:
        results["models"] = many_models(args.models, args.model_windows, args.per_window)
    results["total_seconds"] = round(time.time() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\ntotal {results['total_seconds']:.0f} s; written {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
