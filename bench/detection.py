"""Detection benchmark: false alarms and power on a grid of profile and window sizes, and the
detection delay of the drift scenarios at two window sizes.

Grid: profiles built from N synthetic training rows (`monitor.demo.synthetic`, 16 input features
+ the prediction) for N in --profiles, windows of n fresh records for n in --sizes. Per cell:
  - false alarms per 1,000 window-features with no drift (warning+ findings on the 16 input
    features; `missing_feature` excluded), with the count behind it;
  - power: the share of (window, numeric feature) pairs flagged (warning+) when every numeric
    feature is shifted by 0.5 training std.
Delays: the scenarios below, on a profile of 200,000 rows, with windows of each --delay-windows
size: windows from drift start to the first warning+ on the drifted feature (1 = first drifted
window), median and max over REPS runs; plus trend-detector firings without drift.

Run:  .venv/bin/python bench/detection.py             (full grid, about 10 minutes here)
      .venv/bin/python bench/detection.py --quick     (a small grid, about a minute)
Writes bench/results/detection.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.demo import synthetic
from monitor.demo.synthetic import Scenario
from monitor.drift.checks import Severity
from monitor.drift.evaluate import MODEL_LEVEL, WindowReport, compare
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.model import Profile
from monitor.stream.alerts import AlertTracker
from monitor.summaries.window import WindowSummary

RESULTS = Path(__file__).parent / "results" / "detection.json"
CACHE = Path("/tmp/bench_detection")
INPUT_FEATURES = synthetic.NUMERIC + synthetic.CATEGORICAL + synthetic.TEXT  # 16
SHIFT_STD = 0.5
PROFILES = (100, 5_000, 50_000, 1_000_000)
SIZES = (50, 200, 1_000, 10_000, 100_000)
# Windows per cell with no drift, and with the shift (fewer: power needs less resolution).
NO_DRIFT_WINDOWS = {50: 1000, 200: 1000, 1_000: 400, 10_000: 100, 100_000: 25}
POWER_WINDOWS = {50: 100, 200: 100, 1_000: 50, 10_000: 20, 100_000: 8}
DELAY_PROFILE_ROWS = 200_000
DELAY_WINDOWS = (1_000, 10_000)
REPS = 5
MAX_DELAY = 30  # windows a scenario runs before it counts as not detected
RAMP_WINDOWS = 50
RAMP_TOP = 0.12  # std of `age` at the end of the ramp
RAMP_EXTRA = 30  # plateau windows after the ramp
TREND_WINDOWS = 300  # no-drift windows watched by one AlertTracker per delay window size


# -- profiles and windows -------------------------------------------------------------------------
def training_csv(rows: int) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"training-{rows}.csv"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        synthetic.write_csv(str(tmp), synthetic.training_table(rows, seed=0))
        tmp.replace(path)
    return path


def make_profile(rows: int) -> tuple[Profile, float]:
    path = training_csv(rows)
    t0 = time.perf_counter()
    profile = build_profile(path, BuildOptions("churn", "1", predictions=("prediction",),
                                               window_size=min(1000, rows)))
    return profile, time.perf_counter() - t0


def training_std(rows: int = 200_000) -> dict[str, float]:
    cols = synthetic.generate_columns(rows, np.random.default_rng(12345))
    return {n: float(np.std(np.asarray(cols[n], dtype=float))) for n in synthetic.NUMERIC}


def columns(n: int, rng: np.random.Generator, scenario: Scenario | None = None,
            shift: dict[str, float] | None = None) -> dict[str, Any]:
    cols = synthetic.generate_columns(n, rng, scenario)
    for name, by in (shift or {}).items():
        cols[name] = (np.asarray(cols[name], dtype=float) + by).tolist()
    cols["prediction"] = synthetic.score(cols)
    return cols


def report_for(profile: Profile, cols: dict[str, Any]) -> WindowReport:
    n = len(cols["age"])
    window = WindowSummary(profile)
    window.update_columns(cols, n)
    window.seen_features = set(cols)  # update_columns does not record names; all are present
    return compare(window, profile)


def flagged(report: WindowReport) -> dict[str, set[str]]:
    """feature -> checks with a warning+ finding (missing_feature excluded)."""
    out: dict[str, set[str]] = {}
    for f in report.findings:
        if f.severity >= Severity.WARNING and f.check != "missing_feature":
            out.setdefault(f.feature, set()).add(f.check)
    return out


# -- the grid --------------------------------------------------------------------------------------
@dataclass
class Cell:
    pairs: int = 0
    flagged: int = 0
    model_level: int = 0
    per_check: Counter[str] | None = None
    power_pairs: int = 0
    power_flagged: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_features": self.pairs, "false_alarms": self.flagged,
            "false_alarms_per_1000": round(1000 * self.flagged / self.pairs, 3) if self.pairs else None,
            "model_level_windows": self.model_level,
            "per_check": dict(sorted((self.per_check or Counter()).items())),
            "power_pairs": self.power_pairs, "power_flagged": self.power_flagged,
            "power": round(self.power_flagged / self.power_pairs, 3) if self.power_pairs else None,
        }


def run_grid(profile_rows: tuple[int, ...], sizes: tuple[int, ...], scale: float
             ) -> dict[str, Any]:
    stds = training_std()
    shift = {n: SHIFT_STD * s for n, s in stds.items()}
    profiles: dict[int, Profile] = {}
    builds: dict[int, float] = {}
    for rows in profile_rows:
        profiles[rows], builds[rows] = make_profile(rows)
        print(f"  profile of {rows:,} rows built in {builds[rows]:.1f} s", flush=True)
    cells: dict[tuple[int, int], Cell] = {(r, n): Cell(per_check=Counter())
                                          for r in profile_rows for n in sizes}
    t_sizes: dict[int, float] = {}
    for n in sizes:
        t0 = time.perf_counter()
        rng = np.random.default_rng(7000 + n)
        for _ in range(max(1, round(NO_DRIFT_WINDOWS.get(n, 50) * scale))):
            cols = columns(n, rng)
            for rows, profile in profiles.items():
                cell = cells[(rows, n)]
                hits = flagged(report_for(profile, cols))
                cell.pairs += len(INPUT_FEATURES)
                cell.flagged += sum(1 for f in INPUT_FEATURES if f in hits)
                cell.model_level += MODEL_LEVEL in hits
                for f in INPUT_FEATURES:
                    assert cell.per_check is not None
                    cell.per_check.update(hits.get(f, set()))
        for _ in range(max(1, round(POWER_WINDOWS.get(n, 20) * scale))):
            cols = columns(n, rng, shift=shift)
            for rows, profile in profiles.items():
                cell = cells[(rows, n)]
                hits = flagged(report_for(profile, cols))
                cell.power_pairs += len(synthetic.NUMERIC)
                cell.power_flagged += sum(1 for f in synthetic.NUMERIC if f in hits)
        t_sizes[n] = time.perf_counter() - t0
        print(f"  windows of {n:,}: {time.perf_counter() - t0:.1f} s", flush=True)
    return {
        "profiles": list(profile_rows), "sizes": list(sizes), "shift_std": SHIFT_STD,
        "build_seconds": {str(r): round(s, 1) for r, s in builds.items()},
        "seconds_per_size": {str(n): round(s, 1) for n, s in t_sizes.items()},
        "cells": {f"{r}x{n}": c.to_dict() for (r, n), c in cells.items()},
    }


def print_grid(grid: dict[str, Any]) -> None:
    sizes, rows = grid["sizes"], grid["profiles"]
    head = "".join(f"{n:>16,}" for n in sizes)
    print("\nFalse alarms per 1,000 window-features, no drift (flagged / window-features)")
    print(f"  {'profile rows':>12} {head}")
    for r in rows:
        cells = [grid["cells"][f"{r}x{n}"] for n in sizes]
        text = "".join(f"{c['false_alarms_per_1000']:>8.2f} ({c['false_alarms']}/{c['window_features']})"
                       .rjust(16) for c in cells)
        print(f"  {r:>12,} {text}")
    print(f"\nPower: share of numeric features flagged, every numeric feature shifted by "
          f"{grid['shift_std']} std")
    print(f"  {'profile rows':>12} {head}")
    for r in rows:
        cells = [grid["cells"][f"{r}x{n}"] for n in sizes]
        print(f"  {r:>12,} " + "".join(f"{c['power']:>16.2f}" for c in cells))
    checks: Counter[str] = Counter()
    for c in grid["cells"].values():
        checks.update(c["per_check"])
    print("  false alarms by check over the grid:", dict(checks.most_common()) or "(none)")


# -- detection delay --------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    scenario: Scenario
    feature: str
    model_level: tuple[str, ...] = ()  # model-level checks that also count as detection
    feature_checks: tuple[str, ...] = ()  # when set, only these checks count on any feature


CASES = [
    Case("mean shift 0.25 std (age)", Scenario(mean_shift=0.25), "age"),
    Case("mean shift 0.5 std (age)", Scenario(mean_shift=0.5), "age"),
    Case("mean shift 1 std (age)", Scenario(mean_shift=1.0), "age"),
    Case("variance x1.5 (income_z)", Scenario(variance_factor=1.5), "income_z"),
    Case("new category 2% (state)", Scenario(new_category_rate=0.02), "state"),
    Case("new category 10% (state)", Scenario(new_category_rate=0.10), "state"),
    Case("category mix (plan)", Scenario(category_mix=True), "plan"),
    Case("null burst 5%", Scenario(null_burst_rate=0.05), "*",
         model_level=("edge_record_rate",), feature_checks=("null_rate",)),
    Case("language switch 10% (comment)", Scenario(language_switch_rate=0.10), "comment"),
    Case("language switch 50% (comment)", Scenario(language_switch_rate=0.50), "comment"),
    Case("text length x2 (comment)", Scenario(text_length_factor=2), "comment"),
]


def detected(case: Case, hits: dict[str, set[str]]) -> list[str]:
    out: list[str] = []
    if case.model_level:
        out += [f"model:{c}" for c in hits.get(MODEL_LEVEL, set()) if c in case.model_level]
    if case.feature == "*":
        for feature, checks in hits.items():
            if feature != MODEL_LEVEL:
                out += [f"{feature}:{c}" for c in checks if c in case.feature_checks]
    else:
        out += sorted(hits.get(case.feature, set()))
    return sorted(out)


def summarize(name: str, delays: list[int | None], checks: Counter[str]) -> dict[str, Any]:
    found = [d for d in delays if d is not None]
    return {"scenario": name, "delays": delays, "detected": f"{len(found)}/{len(delays)}",
            "median": statistics.median(found) if found else None,
            "max": max(found) if len(found) == len(delays) else None,
            "first_checks": dict(checks.most_common())}


def run_case(profile: Profile, case: Case, window: int, seed: int) -> dict[str, Any]:
    delays: list[int | None] = []
    first: Counter[str] = Counter()
    for rep in range(REPS):
        rng = np.random.default_rng(seed + rep)
        delay = None
        for i in range(1, MAX_DELAY + 1):
            hits = detected(case, flagged(report_for(profile, columns(window, rng, case.scenario))))
            if hits:
                delay = i
                first.update(hits)
                break
        delays.append(delay)
    return summarize(case.name, delays, first)


def run_ramp(profile: Profile, window: int, seed: int) -> list[dict[str, Any]]:
    """`age` mean ramps 0 -> RAMP_TOP std over RAMP_WINDOWS windows, then stays; index from 1."""
    delays_trend: list[int | None] = []
    delays_any: list[int | None] = []
    checks: Counter[str] = Counter()
    for rep in range(REPS):
        rng = np.random.default_rng(seed + rep)
        tracker = AlertTracker()
        first_trend = first_any = None
        for i in range(1, RAMP_WINDOWS + RAMP_EXTRA + 1):
            shift = 10 * RAMP_TOP * min(i - 1, RAMP_WINDOWS - 1) / (RAMP_WINDOWS - 1)
            report = report_for(profile, columns(window, rng, shift={"age": shift}))
            tracker.observe(report)
            if first_trend is None and "age" in tracker.open_features("trend"):
                first_trend = i
            on_age = flagged(report).get("age", set())
            if first_any is None and (on_age or first_trend is not None):
                first_any = i
                checks.update([f"age:{c}" for c in on_age] or ["age:trend"])
            if first_trend is not None:
                break
        delays_trend.append(first_trend)
        delays_any.append(first_any)
    name = f"gradual age 0->{RAMP_TOP} std / {RAMP_WINDOWS} windows"
    return [summarize(f"{name}: trend", delays_trend, Counter({"age:trend": REPS})),
            summarize(f"{name}: any check", delays_any, checks)]


def trend_false_alarms(profile: Profile, window: int, windows: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    tracker = AlertTracker()
    firings = 0
    for _ in range(windows):
        events = tracker.observe(report_for(profile, columns(window, rng)))
        firings += sum(1 for e in events if e.check == "trend" and e.status == "firing")
    return firings


def run_delays(windows: tuple[int, ...], trend_windows: int) -> dict[str, Any]:
    profile, build_s = make_profile(DELAY_PROFILE_ROWS)
    print(f"  delay profile: {DELAY_PROFILE_ROWS:,} rows, built in {build_s:.1f} s", flush=True)
    out: dict[str, Any] = {"profile_rows": DELAY_PROFILE_ROWS, "build_seconds": round(build_s, 1),
                           "reps": REPS, "max_delay": MAX_DELAY, "by_window": {}}
    for window in windows:
        t0 = time.perf_counter()
        rows = [run_case(profile, case, window, seed=2000 + 100 * k) for k, case in enumerate(CASES)]
        rows += run_ramp(profile, window, seed=9000)
        trend = trend_false_alarms(profile, window, trend_windows, seed=1000) if trend_windows else None
        out["by_window"][str(window)] = {"scenarios": rows, "trend_firings_no_drift": trend,
                                         "trend_windows": trend_windows,
                                         "seconds": round(time.perf_counter() - t0, 1)}
    return out


def fmt(x: Any) -> str:
    return "-" if x is None else str(x)


def print_delays(delays: dict[str, Any]) -> None:
    for window, data in delays["by_window"].items():
        print(f"\nDetection delay, windows of {int(window):,} (1 = first drifted window; "
              f"{delays['reps']} reps, cap {delays['max_delay']}; {data['seconds']} s)")
        print(f"  {'scenario':<52} {'found':>5} {'median':>6} {'max':>4}  first warning+ checks")
        for r in data["scenarios"]:
            first = dict(r["first_checks"])
            nulls = [c for c in first if c.endswith(":null_rate")]
            if len(nulls) > 3:  # the null burst: one entry per feature
                top = max(first[c] for c in nulls)
                first = {c: k for c, k in first.items() if c not in nulls}
                first[f"null_rate on {len(nulls)} features"] = top
            checks = ", ".join(f"{c} x{k}" for c, k in first.items())
            print(f"  {r['scenario']:<52} {r['detected']:>5} {fmt(r['median']):>6} "
                  f"{fmt(r['max']):>4}  {checks}")
        if data["trend_firings_no_drift"] is not None:
            print(f"  trend detector without drift: {data['trend_firings_no_drift']} firings in "
                  f"{data['trend_windows']} windows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="profiles 100, 5000; sizes 50, 1000, 10000; a fifth of the windows; "
                             "delays at 1000 only")
    parser.add_argument("--profiles", help="comma-separated training sizes (default "
                        + ",".join(map(str, PROFILES)) + ")")
    parser.add_argument("--sizes", help="comma-separated window sizes (default "
                        + ",".join(map(str, SIZES)) + ")")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the windows per cell")
    parser.add_argument("--only", choices=("grid", "delays"), help="run one part")
    parser.add_argument("--out", default=str(RESULTS), help="JSON results file")
    args = parser.parse_args()
    profiles = PROFILES if not args.quick else (100, 5_000)
    sizes = SIZES if not args.quick else (50, 1_000, 10_000)
    scale = args.scale * (0.2 if args.quick else 1.0)
    delay_windows = DELAY_WINDOWS if not args.quick else (1_000,)
    if args.profiles:
        profiles = tuple(int(x) for x in args.profiles.split(","))
    if args.sizes:
        sizes = tuple(int(x) for x in args.sizes.split(","))
    results: dict[str, Any] = {"command": "bench/detection.py " + " ".join(
        f"--{k}={v}" for k, v in vars(args).items() if v not in (None, False) and k != "out")}
    t0 = time.perf_counter()
    if args.only in (None, "grid"):
        print("grid:", flush=True)
        results["grid"] = run_grid(profiles, sizes, scale)
        print_grid(results["grid"])
    if args.only in (None, "delays"):
        print("\ndelays:", flush=True)
        results["delays"] = run_delays(delay_windows, round(TREND_WINDOWS * scale))
        print_delays(results["delays"])
    results["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {out} ({results['seconds']} s)")


if __name__ == "__main__":
    main()
