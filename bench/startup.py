"""The worker's start, from its process's spawn to the moment it fetches records, step by step.

A 4-partition predictions topic is filled with N records (one model, spread unkeyed, event time
over 10 windows of 60 s in the past) before any worker starts, as in `bench/pipeline.py --only
throughput`. Then workers are started one after another (`bench/startup_probe.py`: the worker
with a time mark at each step of its start) and each is stopped (SIGTERM) once a fetch has
returned records of every partition. Modes:

  fresh    each start with a consumer group and internal topics of its own (no checkpoints);
           with `--counted` it runs on until every record is counted in a closed window, the
           end point of bench/pipeline.py's ratio ("all counted", seen from this process);
  restart  every start in one group whose checkpoints an earlier worker wrote (it read all N
           records and stopped cleanly); N more records are produced before each start, so
           each partition loads a checkpoint and then has records to read.

With `--baseline-code DIR` (e.g. an export of main: `git -C /work/main archive <commit> | tar -x
-C DIR`) the starts alternate between that code and this checkout's, so both meet the same
machine load. Printed: for each step, the median over the starts of the time from spawn at
which it began ('>') and ended ('<'), and the worker's CPU seconds (all threads) at its stop.
`--py-spy` records each start (py-spy's speedscope format, idle and every thread included) in
the run's directory.

Run:  .venv/bin/python bench/startup.py [--n N] [--starts K] [--mode fresh,restart]
      [--counted] [--baseline-code DIR] [--py-spy]   (`bash scripts/services.sh up` first)
Writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline_kit import (
    PARTITIONS,
    ROOT,
    WINDOW_CLOSED,
    Run,
    admin,
    encoded_records,
    pid_cpu_seconds,
    produce,
    produce_closers,
    save_profiles,
    say,
)

PROBE = ROOT / "bench" / "startup_probe.py"
RESULTS = ROOT / "bench" / "results" / "startup.json"
LAST = "every partition fetched <"


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


class Start:
    """One worker process: spawned, marked, stopped once it fetched from every partition."""

    def __init__(self, env: dict[str, str], log_path: Path, code: str | None,
                 spy: Path | None = None) -> None:
        self.log_path = log_path
        cmd = [sys.executable, str(PROBE)]
        if spy is not None:
            cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "--idle", "--threads",
                   "--nonblocking", "-r", "250", "-f", "speedscope", "-o", str(spy), "--", *cmd]
        if code:
            env = {**env, "PYTHONPATH": code}
        with open(log_path, "wb") as fh:
            self.spawned = time.time()
            # Another checkout's source must be the working directory too (as `-m` puts it
            # first on sys.path: bench/pipeline_kit.py).
            self.proc = subprocess.Popen(cmd, cwd=code or ROOT, env=env, stdout=fh,
                                         stderr=subprocess.STDOUT)

    def marks(self) -> list[tuple[str, float]]:
        out = []
        *lines, _ = self.log_path.read_text(errors="replace").split("\n")  # whole lines only
        for line in lines:
            if line.startswith("[startup] "):
                _, t, what = line.split(" ", 2)
                out.append((what, float(t) - self.spawned))
        return out

    def counted(self) -> int:
        """Records (and late ones) in the windows this worker closed."""
        found = WINDOW_CLOSED.findall(self.log_path.read_text(errors="replace"))
        return sum(int(m[5]) + int(m[7]) for m in found)

    def wait(self, records: int = 0, timeout: float = 300.0) -> list[tuple[str, float]]:
        """The marks, once every partition was fetched from (and, with `records`, once that
        many records are counted in closed windows: mark "all counted", as seen from here)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            marks = self.marks()
            if any(what == LAST for what, _ in marks) and (
                    not records or self.counted() >= records):
                if records:
                    marks.append(("all counted", time.time() - self.spawned))
                worker = (children(self.proc.pid) or [self.proc.pid])[0]
                # CPU seconds (user + system, all threads) of the worker until now.
                marks.append(("worker CPU seconds", pid_cpu_seconds(worker) or 0.0))
                self.stop()
                return marks
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}: {self.log_path}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"not done within {timeout:.0f} s: {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            # Under py-spy the worker is py-spy's child: stopping the worker lets py-spy write
            # its stacks and exit.
            for child in children(self.proc.pid):
                os.kill(child, signal.SIGTERM)
            if not children(self.proc.pid):
                self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def own_group(run: Run, label: str) -> dict[str, str]:
    """Settings of a start with a consumer group and internal topics of its own."""
    prefix = f"bench-{run.tag}-{label}"
    return {"DRIFT_MONITOR_GROUP": prefix,
            **{f"DRIFT_MONITOR_{role.upper()}_TOPIC": f"{prefix}-{role}"
               for role in ("state", "partials", "windows", "reports")}}


def fill(run: Run, model: str, n: int, t0: float) -> None:
    """`n` records of `model` over 10 minutes from `t0`, spread over the partitions."""
    stream = [(model, v) for v in encoded_records([model], n, t0, 600.0, seed=1)[model]]
    say(f"startup: {n:,} records produced in "
        f"{produce(run.predictions, stream, keyed=False):.1f} s")


def prepare_checkpoints(run: Run, env: dict[str, str], n: int) -> None:
    """A worker of the restart group reads the records and stops cleanly: checkpoints of every
    partition."""
    worker = run.worker("prepare", **env)
    counted, deadline = 0, time.time() + 300
    while counted < n:
        if time.time() > deadline or not worker.alive():
            raise RuntimeError(f"prepare: {counted} of {n} ({worker.log_path})")
        for line in worker.poll_log():
            m = WINDOW_CLOSED.search(line)
            if m:
                counted += int(m[6]) + int(m[8])
        time.sleep(0.1)
    if worker.stop() != 0:
        raise RuntimeError(f"prepare: worker did not stop cleanly ({worker.log_path})")


def summary(runs: list[list[tuple[str, float]]]) -> dict[str, float]:
    """Median time from spawn of each mark (the first time it shows in a run)."""
    per: dict[str, list[float]] = {}
    for marks in runs:
        seen: dict[str, float] = {}
        for what, t in marks:
            seen.setdefault(what, t)
        for what, t in seen.items():
            per.setdefault(what, []).append(t)
    order = sorted(per, key=lambda w: statistics.median(per[w]))
    return {w: round(statistics.median(per[w]), 3) for w in order}


def table(results: dict[str, Any]) -> str:
    lines = []
    for mode, by_code in results["modes"].items():
        codes = list(by_code)
        lines += ["", f"{mode}: median seconds from spawn over {results['starts']} starts "
                  f"('>' step begins, '<' step ends)", ""]
        lines.append(f"{'step':<46}" + "".join(f"{c[-18:]:>20}" for c in codes))
        steps: list[str] = []
        for code in codes:
            steps += [s for s in by_code[code] if s not in steps]
        steps.sort(key=lambda s: (s == "worker CPU seconds",
                                  min(by_code[c].get(s, 1e9) for c in codes)))
        for step in steps:
            cells = "".join(f"{by_code[c][step]:>20.3f}" if step in by_code[c] else f"{'-':>20}"
                            for c in codes)
            lines.append(f"{step[:46]:<46}{cells}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="records in the topic")
    parser.add_argument("--starts", type=int, default=5, help="starts per mode and code")
    parser.add_argument("--mode", default="fresh,restart")
    parser.add_argument("--baseline-code", help="drift-monitor source to compare with")
    parser.add_argument("--counted", action="store_true",
                        help="fresh starts run on until every record is counted in a closed "
                             "window (the time from spawn bench/pipeline.py's ratio uses)")
    parser.add_argument("--py-spy", action="store_true",
                        help="py-spy record each start (speedscope format; py-spy is on PyPI)")
    args = parser.parse_args()
    codes: list[str | None] = ([args.baseline_code] if args.baseline_code else []) + [None]
    run = Run("start")
    model = f"st{run.tag[-8:]}"
    results: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "bench/startup.py", *sys.argv[1:]]),
        "records": args.n, "partitions": PARTITIONS, "starts": args.starts, "modes": {}}
    try:
        save_profiles(run.profiles, [model])
        t0 = (int(time.time() / 60) - 240) * 60.0  # every fill stays in the past
        fills = 0
        fill(run, model, args.n, t0)
        # The stream goes on, as in bench/pipeline.py: the next window's first records close
        # the last filled window on event time.
        produce_closers(run.predictions, [model], t0 + 600.0, {model: list(range(PARTITIONS))})
        base_env = run.env(STARTUP_PARTITIONS=str(PARTITIONS),
                           DRIFT_MONITOR_WINDOW_SECONDS="60", DRIFT_MONITOR_GRACE_SECONDS="0")
        for mode in args.mode.split(","):
            restart = own_group(run, "restart")
            if mode == "restart":
                prepare_checkpoints(run, restart, args.n)
            marks: dict[str, list[list[tuple[str, float]]]] = {c or "this checkout": []
                                                                 for c in codes}
            for i in range(args.starts):
                for code in codes:
                    name = code or "this checkout"
                    label = f"{mode}{i}{'b' if code else 'a'}"
                    if mode == "restart":  # records after the checkpoints, for this start
                        fills += 1
                        fill(run, model, args.n, t0 + 900.0 * fills)
                    env = {**base_env, **(restart if mode == "restart" else own_group(run, label))}
                    spy = run.dir / f"{label}.speedscope.json" if args.py_spy else None
                    start = Start(env, run.dir / f"{label}.log", code, spy)
                    marks[name].append(start.wait(args.n if args.counted and mode == "fresh"
                                                  else 0))
                    done = dict(marks[name][-1])
                    say(f"{mode} {name}: every partition read from {done[LAST]:.2f} s"
                        + (f", all counted at {done['all counted']:.2f} s"
                           if "all counted" in done else "") + f" ({start.log_path})")
            results["modes"][mode] = {name: summary(m) for name, m in marks.items()}
    finally:
        run.cleanup()
        a = admin()
        try:
            mine = [t for t in a.list_topics() if t.startswith(f"bench-{run.tag}-")]
            if mine:
                a.delete_topics(mine)
        finally:
            a.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten {RESULTS.relative_to(ROOT)}; logs and py-spy stacks in {run.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
