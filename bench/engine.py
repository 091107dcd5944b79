"""Engine throughput on one core: 16 features (10 numeric, 5 categorical, 1 short text), batches
of 1,000 records; per-window evaluation cost; memory; profile build time for 1M rows.

Every goal of issue 10 is a ratio, so each figure is printed with its baseline measured in the
same run, back to back:
- in process (one core; best of REPEATS, time.process_time): the fast decode path and the
  per-record reference against `orjson.loads` of the same messages; raw bytes to window
  summaries; the window update from parsed columns (goal: 1,000,000 rows/s): from the columns
  the decoder makes (what a replay or a worker updates) and from lists of Python values;
- whole process (`--records N`, default 1,000,000 records as JSONL): `drift-monitor replay`
  against a process that only runs `orjson.loads` over the same lines (goal: 0.5 or more), run
  alternately WHOLE_REPEATS times each; wall and CPU time (user + system) both printed, the best
  of each (other work on the machine inflates wall time most). A replay decodes the next batch
  on a second core (the compiled decoder releases the GIL), so its wall time is below its CPU
  time; the orjson loop runs on one.

Run: .venv/bin/python bench/engine.py [--records N] [--no-build]. Writes bench/results/engine.json.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.demo import synthetic
from monitor.drift.evaluate import compare
from monitor.ingest.fast_decode import FastDecoder
from monitor.ingest.records import parse_messages
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.model import Profile
from monitor.profile.store import schemas
from monitor.summaries.window import WindowSummary

BATCH = 1_000
BATCHES = 20  # 20,000 records per timed run
REPEATS = 3
PROFILE_ROWS = 50_000
BUILD_ROWS = 1_000_000
TEXT_SAMPLE = 500
FEATURES = synthetic.NUMERIC + synthetic.CATEGORICAL + synthetic.TEXT
RESULTS = Path(__file__).parent / "results" / "engine.json"
VENV_BIN = Path(sys.executable).parent


WHOLE_REPEATS = 3
ORJSON_LOOP = ("import sys, orjson\n"
               "with open(sys.argv[1], 'rb') as f:\n"
               "    for line in f:\n"
               "        if line.strip():\n"
               "            orjson.loads(line)\n")


def best(fn: Callable[[], Any]) -> float:
    """Best CPU time of REPEATS runs (this process only: other work on the machine counts less
    than in wall time)."""
    times = []
    for _ in range(REPEATS):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_logs(path: Path, n: int, seed: int = 7, chunk: int = 20_000) -> float:
    """`n` records of model churn v1 over 10 windows of 60 s, one JSON line each; mean bytes."""
    rng = np.random.default_rng(seed)
    size = 0
    with open(path, "wb") as fh:
        for start in range(0, n, chunk):
            k = min(chunk, n - start)
            ts = 1.7e9 + (start + np.arange(k)) * (600.0 / n)
            lines = [orjson.dumps(r) + b"\n" for r in synthetic.records(
                {c: v for c, v in synthetic.generate_columns(k, rng).items() if c in FEATURES},
                model="churn", version="1", ts=ts, start_id=start)]
            size += sum(map(len, lines))
            fh.writelines(lines)
    return size / n


def whole_process(profile: Profile, n: int) -> dict[str, Any]:
    """`drift-monitor replay` and an orjson-only loop over the same N-line file, alternately."""
    work = Path("/tmp/bench_engine_replay")
    (work / "profiles").mkdir(parents=True, exist_ok=True)
    profile.save(work / "profiles" / "churn-1.json")
    logs = work / f"logs-{n}.jsonl"
    avg = write_logs(logs, n)
    replay = [str(VENV_BIN / "drift-monitor"), "replay", str(logs), "--profiles",
              str(work / "profiles")]
    decode = [sys.executable, "-c", ORJSON_LOOP, str(logs)]
    runs: dict[str, list[tuple[float, float]]] = {"orjson": [], "replay": []}
    for _ in range(WHOLE_REPEATS):
        runs["orjson"].append(timed(decode))
        runs["replay"].append(timed(replay))
    wall = {k: min(w for w, _ in v) for k, v in runs.items()}
    cpu = {k: min(c for _, c in v) for k, v in runs.items()}
    return {"records": n, "bytes_per_record": round(avg, 1), "repeats": WHOLE_REPEATS,
            "replay_command": " ".join(replay[:2] + ["LOGS", "--profiles", "DIR"]),
            "seconds_wall": {k: round(v, 2) for k, v in wall.items()},
            "seconds_cpu": {k: round(v, 2) for k, v in cpu.items()},
            "records_per_second_wall": {k: round(n / v) for k, v in wall.items()},
            "records_per_second_cpu": {k: round(n / v) for k, v in cpu.items()},
            "replay_over_orjson_wall": round(wall["orjson"] / wall["replay"], 3),
            "replay_over_orjson_cpu": round(cpu["orjson"] / cpu["replay"], 3),
            "goal": 0.5, "all_runs": runs}


def write_training(path: Path, rows: int, seed: int, chunk: int = 100_000) -> None:
    """16 feature columns, no prediction, written in chunks to bound this process's memory."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(FEATURES)
        for start in range(0, rows, chunk):
            cols = synthetic.generate_columns(min(chunk, rows - start), rng)
            w.writerows(zip(*(cols[n] for n in FEATURES), strict=True))


def make_profile() -> Profile:
    path = Path("/tmp/bench_engine_profile.csv")
    write_training(path, PROFILE_ROWS, seed=0)
    return build_profile(path, BuildOptions("churn", "1", window_size=BATCH))


def rss_mb(kb: int) -> float:
    return kb / 1024  # ru_maxrss and /usr/bin/time report kilobytes on Linux


def build_1m() -> dict[str, Any]:
    path = Path("/tmp/bench_engine_1m.csv")
    out = Path("/tmp/bench_engine_1m_profile.json")
    t0 = time.perf_counter()
    write_training(path, BUILD_ROWS, seed=1)
    write_s = time.perf_counter() - t0
    cmd = [str(VENV_BIN / "drift-monitor"), "profile", "build", str(path), "--model", "churn",
           "--version", "1", "-o", str(out)]
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    t0 = time.perf_counter()
    if timer:
        proc = subprocess.run([timer, "-v", *cmd], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak_kb = int(match.group(1)) if match else 0
        method = "/usr/bin/time -v"
    else:
        subprocess.run(cmd, capture_output=True, check=True)
        wall = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        method = "getrusage(RUSAGE_CHILDREN)"
    return {"rows": BUILD_ROWS, "features": len(FEATURES), "csv_mb": round(path.stat().st_size / 2**20, 1),
            "csv_write_seconds": round(write_s, 1), "build_seconds": round(wall, 1),
            "build_peak_rss_mb": round(rss_mb(peak_kb), 1), "measured_with": method,
            "command": " ".join(cmd)}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records of the whole-process replay comparison (0: skip it)")
    parser.add_argument("--no-build", action="store_true", help="skip the 1M-row profile build")
    args = parser.parse_args()
    profile = make_profile()
    decoder = FastDecoder(schemas([profile]))
    rng = np.random.default_rng(42)
    batches = [synthetic.generate_columns(BATCH, rng) for _ in range(BATCHES)]
    batches = [{n: b[n] for n in FEATURES} for b in batches]
    total = BATCH * BATCHES
    ts = np.arange(BATCH, dtype=float) + 1.7e9
    messages = [[orjson.dumps(r) for r in synthetic.records(b, model="churn", version="1", ts=ts,
                                                             start_id=k * BATCH)]
                for k, b in enumerate(batches)]
    avg_bytes = sum(map(len, messages[0])) / BATCH

    def from_columns() -> None:
        window = WindowSummary(profile)
        for b in batches:
            window.update_columns(b, BATCH)

    decoded = [list(parse_messages(batch, decoder).groups.values()) for batch in messages]

    def from_decoded() -> None:  # the columns the decoder made: what a replay or worker updates
        window = WindowSummary(profile)
        for groups in decoded:
            for group in groups:
                window.update(group)

    def from_bytes() -> None:
        window = WindowSummary(profile)
        for batch in messages:
            for group in parse_messages(batch, decoder).groups.values():
                window.update(group)

    def from_bytes_reference() -> None:
        window = WindowSummary(profile)
        for batch in messages:
            for group in parse_messages(batch).groups.values():
                window.update(group)

    def parse_fast() -> None:
        for batch in messages:
            parse_messages(batch, decoder)

    def decode_orjson() -> None:
        for batch in messages:
            for m in batch:
                orjson.loads(m)

    def decode_stdlib() -> None:
        for batch in messages:
            for m in batch:
                json.loads(m)

    def parse_only() -> None:
        for batch in messages:
            parse_messages(batch)

    rates = {name: total / best(fn) for name, fn in (
        ("orjson.loads only", decode_orjson), ("update_columns", from_columns),
        ("update from decoded columns", from_decoded),
        ("parse_messages+update", from_bytes), ("parse_messages (fast) only", parse_fast),
        ("parse_messages+update, reference", from_bytes_reference),
        ("parse_messages (reference) only", parse_only), ("json.loads only", decode_stdlib))}
    ratios = {
        "bytes to window / orjson.loads": rates["parse_messages+update"]
        / rates["orjson.loads only"],
        "fast parse / orjson.loads": rates["parse_messages (fast) only"]
        / rates["orjson.loads only"],
        "fast / reference, bytes to window": rates["parse_messages+update"]
        / rates["parse_messages+update, reference"],
        "update_columns / 1,000,000 rows/s goal": rates["update_columns"] / 1e6,
        "update from decoded columns / 1,000,000 rows/s goal":
            rates["update from decoded columns"] / 1e6,
    }

    window = WindowSummary(profile)
    window.update_columns(batches[0], BATCH)
    no_lang: Callable[[Any], collections.Counter[str]] = lambda texts: collections.Counter()  # noqa: E731
    with_lang = best(lambda: compare(window, profile))
    without_lang = best(lambda: compare(window, profile, detect_languages=no_lang))
    rss_self = rss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    build = build_1m() if not args.no_build else None
    whole = whole_process(profile, args.records) if args.records else None
    sampling = {f"p={p}": round(math.sqrt(p * (1 - p) / TEXT_SAMPLE), 4) for p in (0.5, 0.1)}

    print(f"Engine throughput, one core, {len(FEATURES)} features (10 numeric, 5 categorical, "
          f"1 text), batches of {BATCH:,}, {total:,} records per run, best of {REPEATS} "
          f"(CPU time of this process)")
    print(f"  message size: {avg_bytes:.0f} bytes/record (JSON)")
    for name, rate in rates.items():
        print(f"  {name:<36} {rate:>12,.0f} records/s  ({1e6 / rate:7.2f} us/record)")
    print("  ratios, measured side by side above:")
    for name, value in ratios.items():
        print(f"    {name:<40} {value:6.2f}")
    if whole:
        print(f"\nWhole process, {whole['records']:,} records ({whole['bytes_per_record']:.0f} "
              f"bytes each, JSONL), best of {whole['repeats']} alternate runs:")
        for key in ("orjson", "replay"):
            print(f"  {key:<8} wall {whole['seconds_wall'][key]:6.2f} s "
                  f"({whole['records_per_second_wall'][key]:>9,} records/s)   "
                  f"CPU {whole['seconds_cpu'][key]:6.2f} s "
                  f"({whole['records_per_second_cpu'][key]:>9,} records/s)")
        print(f"  replay / orjson.loads: {whole['replay_over_orjson_wall']:.2f} (wall), "
              f"{whole['replay_over_orjson_cpu']:.2f} (CPU); goal 0.5")
    print(f"\nPer-window evaluation (compare) on a {BATCH:,}-record window:")
    print(f"  with language detection ({TEXT_SAMPLE} sampled texts): {with_lang * 1000:8.1f} ms")
    print(f"  without language detection:                   {without_lang * 1000:8.1f} ms")
    print(f"  language detection share:                     {(with_lang - without_lang) * 1000:8.1f} ms "
          f"({TEXT_SAMPLE / max(with_lang - without_lang, 1e-9):,.0f} texts/s)")
    print(f"\nMemory: peak RSS of this benchmark process (profile, {total:,} records as columns and "
          f"as JSON, windows): {rss_self:.1f} MB")
    if build:
        print(f"\nProfile build, {build['rows']:,} rows x {build['features']} features "
              f"({build['csv_mb']} MB CSV, written in {build['csv_write_seconds']} s):")
        print(f"  {build['command']}")
        print(f"  wall {build['build_seconds']} s, peak RSS {build['build_peak_rss_mb']} MB "
              f"({build['measured_with']})")
    print(f"\nSampling error of a language share from {TEXT_SAMPLE} sampled texts, sqrt(p(1-p)/{TEXT_SAMPLE}):")
    for k, v in sampling.items():
        print(f"  {k}: {v:.4f} ({100 * v:.1f} percentage points; 95% CI +/- {196 * v:.1f} pp)")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "batch": BATCH, "records_per_run": total, "repeats": REPEATS, "features": len(FEATURES),
        "bytes_per_record": round(avg_bytes, 1),
        "records_per_second": {k: round(v) for k, v in rates.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "whole_process": whole,
        "timing": "in process: best CPU time (time.process_time) of the repeats",
        "compare_ms": {"with_language_detection": round(with_lang * 1000, 2),
                       "without_language_detection": round(without_lang * 1000, 2)},
        "peak_rss_mb_benchmark_process": round(rss_self, 1),
        "profile_build_1m": build,
        "language_share_sampling_error_500": sampling,
    }, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
