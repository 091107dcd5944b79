"""Detection benchmark: false alarms without drift and detection delay per drift scenario.

One profile from 200,000 synthetic training rows (window size 1000, default calibration); every
window holds 1,000 records of `monitor.demo.synthetic` traffic. Run: .venv/bin/python bench/detection.py [N]
(N no-drift windows, default 1000). Writes bench/results/detection.json.
"""

from __future__ import annotations

import json
import statistics
import sys
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

TRAINING_ROWS = 200_000
WINDOW = 1_000
REPS = 5
MAX_DELAY = 30  # windows a scenario runs before it counts as not detected
RAMP_WINDOWS = 50
RAMP_TOP = 0.12  # std of `age` at the end of the ramp
RAMP_EXTRA = 30  # plateau windows after the ramp
RESULTS = Path(__file__).parent / "results" / "detection.json"
INPUT_FEATURES = synthetic.NUMERIC + synthetic.CATEGORICAL + synthetic.TEXT  # 16


def make_profile() -> tuple[Profile, float]:
    csv = Path("/tmp/bench_detection_training.csv")
    synthetic.write_csv(str(csv), synthetic.training_table(TRAINING_ROWS, seed=0))
    t0 = time.perf_counter()
    profile = build_profile(csv, BuildOptions("churn", "1", predictions=("prediction",),
                                              window_size=WINDOW))
    return profile, time.perf_counter() - t0


def window_report(profile: Profile, cols: dict[str, list[Any]]) -> WindowReport:
    cols["prediction"] = synthetic.score(cols)
    window = WindowSummary(profile)
    window.update_columns(cols, WINDOW)
    window.seen_features = set(cols)  # update_columns does not record names; all are present
    return compare(window, profile)


def warnings_by_feature(report: WindowReport) -> dict[str, set[str]]:
    """feature -> checks with a warning+ finding (missing_feature excluded)."""
    out: dict[str, set[str]] = {}
    for f in report.findings:
        if f.severity >= Severity.WARNING and f.check != "missing_feature":
            out.setdefault(f.feature, set()).add(f.check)
    return out


def no_drift(profile: Profile, n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    tracker = AlertTracker()
    pairs: Counter[str] = Counter()  # feature -> windows with a warning+
    per_check: Counter[str] = Counter()  # check -> (window, feature) pairs
    trend_firings = 0
    trend_windows = 0
    t0 = time.perf_counter()
    for _ in range(n):
        report = window_report(profile, synthetic.generate_columns(WINDOW, rng))
        for feature, checks in warnings_by_feature(report).items():
            pairs[feature or "(model)"] += 1
            per_check.update(checks)
        events = tracker.observe(report)
        firing = [e for e in events if e.check == "trend" and e.status == "firing"]
        trend_firings += len(firing)
        trend_windows += bool(tracker_trend_now(tracker))
    elapsed = time.perf_counter() - t0
    inputs = sum(pairs[f] for f in INPUT_FEATURES)
    denominator = n * len(INPUT_FEATURES)
    return {
        "windows": n, "features": len(INPUT_FEATURES), "seconds": round(elapsed, 1),
        "flagged_pairs_input_features": inputs,
        "false_alarms_per_1000_window_features": round(1000 * inputs / denominator, 3),
        "flagged_windows_prediction": pairs.get("prediction", 0),
        "flagged_windows_model_level": pairs.get("(model)", 0),
        "per_feature_windows": dict(sorted(pairs.items())),
        "per_check_pairs": dict(sorted(per_check.items())),
        "per_check_per_1000_window_features": {
            c: round(1000 * k / denominator, 3) for c, k in sorted(per_check.items())},
        "trend_firings": trend_firings,
        "trend_firings_per_1000_windows": round(1000 * trend_firings / n, 3),
    }


def tracker_trend_now(tracker: AlertTracker) -> list[str]:
    return tracker.open_features("trend")


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


def detected(case: Case, flagged: dict[str, set[str]]) -> list[str]:
    hits: list[str] = []
    if case.model_level:
        hits += [f"model:{c}" for c in flagged.get(MODEL_LEVEL, set()) if c in case.model_level]
    if case.feature == "*":
        for feature, checks in flagged.items():
            if feature != MODEL_LEVEL:
                hits += [f"{feature}:{c}" for c in checks if c in case.feature_checks]
    else:
        hits += sorted(flagged.get(case.feature, set()))
    return sorted(hits)


def run_case(profile: Profile, case: Case, seed: int) -> dict[str, Any]:
    delays: list[int | None] = []
    first_checks: Counter[str] = Counter()
    for rep in range(REPS):
        rng = np.random.default_rng(seed + rep)
        delay = None
        for i in range(1, MAX_DELAY + 1):
            report = window_report(profile, synthetic.generate_columns(WINDOW, rng, case.scenario))
            hits = detected(case, warnings_by_feature(report))
            if hits:
                delay = i
                first_checks.update(hits)
                break
        delays.append(delay)
    return summarize(case.name, delays, first_checks)


def summarize(name: str, delays: list[int | None], checks: Counter[str]) -> dict[str, Any]:
    found = [d for d in delays if d is not None]
    return {"scenario": name, "delays": delays, "detected": f"{len(found)}/{len(delays)}",
            "median": statistics.median(found) if found else None,
            "max": max(found) if len(found) == len(delays) else None,
            "first_checks": dict(checks.most_common())}


def run_ramp(profile: Profile, seed: int) -> dict[str, Any]:
    """`age` mean ramps 0 -> RAMP_TOP std over RAMP_WINDOWS windows, then stays; index from 1."""
    delays_trend: list[int | None] = []
    delays_any: list[int | None] = []
    checks: Counter[str] = Counter()
    trend_hits = 0
    for rep in range(REPS):
        rng = np.random.default_rng(seed + rep)
        tracker = AlertTracker()
        first_trend = first_any = None
        for i in range(1, RAMP_WINDOWS + RAMP_EXTRA + 1):
            cols = synthetic.generate_columns(WINDOW, rng)
            shift = 10 * RAMP_TOP * min(i - 1, RAMP_WINDOWS - 1) / (RAMP_WINDOWS - 1)
            cols["age"] = [None if v is None else v + shift for v in cols["age"]]
            report = window_report(profile, cols)
            tracker.observe(report)
            if first_trend is None and "age" in tracker.open_features("trend"):
                first_trend = i
                trend_hits += 1
            flagged = warnings_by_feature(report).get("age", set())
            if first_any is None and (flagged or first_trend is not None):
                first_any = i
                checks.update([f"age:{c}" for c in flagged] or ["age:trend"])
            if first_trend is not None:
                break
        delays_trend.append(first_trend)
        delays_any.append(first_any)
    return {"trend": summarize(f"gradual age 0->{RAMP_TOP} std / {RAMP_WINDOWS} windows: trend",
                               delays_trend, Counter({"age:trend": trend_hits})),
            "any": summarize(f"gradual age 0->{RAMP_TOP} std / {RAMP_WINDOWS} windows: any check",
                             delays_any, checks)}


def fmt(x: Any) -> str:
    return "-" if x is None else str(x)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    profile, build_s = make_profile()
    print(f"profile: {TRAINING_ROWS:,} training rows, {len(profile.features)} profiled features "
          f"({len(INPUT_FEATURES)} inputs + prediction), window {WINDOW}, built in {build_s:.1f} s")

    nd = no_drift(profile, n, seed=1000)
    print(f"\nNo drift: {nd['windows']} windows x {nd['features']} input features "
          f"({nd['seconds']} s)")
    print(f"  false alarms (warning+, excl. missing_feature): {nd['flagged_pairs_input_features']} "
          f"pairs = {nd['false_alarms_per_1000_window_features']} per 1,000 window-features")
    print(f"  prediction feature flagged in {nd['flagged_windows_prediction']} windows; "
          f"model-level findings in {nd['flagged_windows_model_level']} windows")
    print("  per check (pairs, per 1,000 window-features):")
    for check, k in nd["per_check_pairs"].items():
        print(f"    {check:<22} {k:>4}  {nd['per_check_per_1000_window_features'][check]}")
    if not nd["per_check_pairs"]:
        print("    (none)")
    print("  per feature (windows flagged):", nd["per_feature_windows"] or "(none)")
    print(f"  trend detector (Page-Hinkley, one AlertTracker): {nd['trend_firings']} firings "
          f"= {nd['trend_firings_per_1000_windows']} per 1,000 windows")

    t0 = time.perf_counter()
    rows = [run_case(profile, case, seed=2000 + 100 * k) for k, case in enumerate(CASES)]
    ramp = run_ramp(profile, seed=9000)
    rows += [ramp["trend"], ramp["any"]]
    print(f"\nDetection delay (windows of {WINDOW} from drift start, 1 = first drifted window; "
          f"{REPS} reps, cap {MAX_DELAY}; gradual: window index from ramp start) "
          f"({time.perf_counter() - t0:.1f} s)")
    print(f"  {'scenario':<52} {'found':>5} {'median':>6} {'max':>4}  first warning+ checks")
    for r in rows:
        first = r["first_checks"]
        nulls = [c for c in first if c.endswith(":null_rate")]
        if len(nulls) > 3:  # the null burst: one entry per feature
            first = {c: k for c, k in first.items() if c not in nulls}
            first[f"null_rate on {len(nulls)} features"] = max(r["first_checks"][c] for c in nulls)
        checks = ", ".join(f"{c} x{k}" for c, k in first.items())
        print(f"  {r['scenario']:<52} {r['detected']:>5} {fmt(r['median']):>6} {fmt(r['max']):>4}  "
              f"{checks}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "training_rows": TRAINING_ROWS, "window": WINDOW, "profile_build_seconds": round(build_s, 1),
        "profile_id": profile.profile_id, "no_drift": nd, "detection": rows,
        "reps": REPS, "max_delay": MAX_DELAY,
        "ramp": {"windows": RAMP_WINDOWS, "top_std": RAMP_TOP, "plateau_windows": RAMP_EXTRA},
    }, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
