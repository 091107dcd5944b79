"""Alert episodes: one alert per drifting feature, escalation, persistence, resolution, and the
tracker's saved state (plain JSON, never code)."""

from __future__ import annotations

import base64
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from monitor.drift.checks import Severity
from monitor.drift.evaluate import MODEL_LEVEL, FeatureReport, Finding, WindowReport
from monitor.errors import StateError
from monitor.ingest.schema import Kind
from monitor.stream.alerts import TREND_THRESHOLD, AlertTracker
from monitor.stream.unprofiled import Unprofiled

W, C = Severity.WARNING, Severity.CRITICAL
T0 = 1_764_158_400.0  # 2025-11-26T12:00:00Z
AGE = {"mean": 51.0, "training_mean": 41.0, "mean_z": 0.0}


def window(i: int, findings: dict[str, list[tuple[str, Severity, float]]] | None = None, *,
           model_findings: list[Finding] | None = None,
           metrics: dict[str, dict[str, float]] | None = None) -> WindowReport:
    """Window `i` (60 s each) with `feature -> [(check, severity, value)]` failing."""
    findings = findings or {}
    metrics = metrics or {}
    features = {}
    for name in {"age", "tenure", *findings, *metrics}:
        found = [Finding(name, check, sev, value, value / 2, f"{name}: {check}")
                 for check, sev, value in findings.get(name, [])]
        features[name] = FeatureReport(name, Kind.NUMERIC,
                                       dict(AGE if name == "age" else {}, **metrics.get(name, {})),
                                       {}, found)
    return WindowReport("churn", "3", "sha256:p1", T0 + 60 * i, T0 + 60 * (i + 1), 500, 0, 0,
                        0.0, [], [], features, model_findings or [])


FIVE_WARNING = [("psi", W, 0.3), ("js", W, 0.2), ("ks", W, 0.15), ("wasserstein", W, 0.2),
                ("mean_shift", W, 0.5)]
FIVE_CRITICAL = [(check, C, 3 * value) for check, _, value in FIVE_WARNING]


def run(tracker: AlertTracker, windows: list[WindowReport]) -> list:
    return [event for report in windows for event in tracker.observe(report)]


def test_a_feature_failing_five_checks_pages_once_with_every_check_listed() -> None:
    events = run(AlertTracker(trend=False), [window(0, {"age": FIVE_WARNING})] * 1
                 + [window(i, {"age": FIVE_WARNING}) for i in range(1, 4)])
    assert [(e.status, e.feature, e.episode) for e in events] == [("firing", "age", "drift")]
    alert = events[0]
    assert alert.severity == "warning" and alert.previous_severity is None
    assert sorted(c["check"] for c in alert.checks) == sorted(c for c, _, _ in FIVE_WARNING)
    assert all(c["value"] > c["threshold"] and c["severity"] == "warning" for c in alert.checks)
    # The message leads with the plainest evidence, then names the other checks.
    assert alert.check == "mean_shift" and alert.value == 0.5 and alert.threshold == 0.25
    assert alert.message.startswith("[churn v3] age: mean up 0.50 std vs training (psi 0.30,")
    assert alert.message.endswith(", warning")


def test_the_severity_of_an_alert_is_the_worst_of_its_checks() -> None:
    mixed = [("psi", W, 0.3), ("ks", C, 0.9)]
    (alert,) = AlertTracker(trend=False).observe(window(0, {"age": mixed}))
    assert alert.severity == "critical" and alert.check == "ks"
    assert alert.message.startswith("[churn v3] age: distribution changed (ks 0.90) (psi 0.30)")


def test_a_rise_in_severity_is_one_new_event_on_the_same_alert_id() -> None:
    tracker = AlertTracker(trend=False)
    reports = ([window(0, {"age": FIVE_WARNING})]
               + [window(i, {"age": FIVE_CRITICAL}) for i in (1, 2)]
               + [window(3, {"age": FIVE_WARNING})])  # falling back to warning is not news
    events = run(tracker, reports)
    assert [(e.status, e.severity, e.previous_severity) for e in events] == [
        ("firing", "warning", None), ("firing", "critical", "warning")]
    assert events[0].alert_id == events[1].alert_id
    assert events[1].message.startswith("[churn v3] age: now critical (was warning): mean up")


def test_an_episode_resolves_after_its_checks_are_clean_for_resolve_after_windows() -> None:
    tracker = AlertTracker(trend=False, resolve_after=2)
    events = run(tracker, [window(0, {"age": FIVE_WARNING}), window(1), window(2, {"age": [
        ("ks", W, 0.2)]}), window(3), window(4)])
    assert [e.status for e in events] == ["firing", "resolved"]
    resolved = events[1]
    assert resolved.alert_id == events[0].alert_id and resolved.window_start == "2025-11-26T12:04:00.000Z"
    assert resolved.since == "2025-11-26T12:00:00.000Z" and resolved.windows == 5
    assert tracker.open_count() == 0


def test_every_episode_gets_its_own_alert_id() -> None:
    tracker = AlertTracker(trend=False, resolve_after=1)
    events = run(tracker, [window(0, {"age": FIVE_WARNING}), window(1),
                           window(2, {"age": FIVE_WARNING})])
    assert [e.status for e in events] == ["firing", "resolved", "firing"]
    assert events[0].alert_id == events[1].alert_id != events[2].alert_id


def test_features_and_model_level_findings_are_episodes_of_their_own() -> None:
    edge = Finding(MODEL_LEVEL, "edge_record_rate", W, 0.05, 0.01, "edge", {"training_rate": 0.0})
    missing = Finding("tenure", "missing_feature", W, 1.0, 0.0, "tenure: absent")
    tracker = AlertTracker(trend=False)
    events = tracker.observe(window(0, {"age": FIVE_WARNING, "state": [("novelty_rate", C, 0.1)]},
                                    model_findings=[edge, missing]))
    assert sorted((e.feature, e.episode) for e in events) == [
        ("", "edge_record_rate"), ("age", "drift"), ("state", "drift"),
        ("tenure", "missing_feature")]
    assert len({e.alert_id for e in events}) == 4
    assert tracker.open_count("churn", "3") == 4 and tracker.open_count("churn", "4") == 0
    by_episode = {e.episode: e for e in events}
    assert by_episode["edge_record_rate"].message.startswith(
        "[churn v3] model: 5.0% edge records (training 0%)")


def test_an_episode_open_for_persistent_windows_publishes_one_persistent_event() -> None:
    tracker = AlertTracker(trend=False, persistent_windows=4)
    events = run(tracker, [window(i, {"age": FIVE_WARNING}) for i in range(8)])
    assert [(e.status, e.windows) for e in events] == [("firing", 1), ("persistent", 4)]
    assert events[1].alert_id == events[0].alert_id
    assert "moved for good" in events[1].message and "new profile" in events[1].message


def test_a_trend_alert_shows_the_page_hinkley_statistic_that_fired() -> None:
    tracker = AlertTracker()
    ramp = [window(i, metrics={"age": {"mean_z": 0.5 * i}}) for i in range(30)]
    events = [e for e in run(tracker, ramp) if e.episode == "trend"]
    assert events and events[0].status == "firing" and events[0].feature == "age"
    trend = events[0]
    assert trend.check == "trend" and trend.threshold == TREND_THRESHOLD
    assert trend.value > trend.threshold  # the value shown is the one that fired
    assert "gradual rise of the mean (Page-Hinkley" in trend.message


def test_state_round_trips_through_json_and_behaves_the_same() -> None:
    reports = ([window(i, {"age": FIVE_WARNING}, metrics={"age": {"mean_z": 0.4 * i}})
                for i in range(6)]
               + [window(i, metrics={"age": {"mean_z": 0.4 * i}}) for i in range(6, 20)])
    whole = AlertTracker(persistent_windows=5)
    expected = [e.to_dict() for e in run(whole, reports)]
    first = AlertTracker(persistent_windows=5)
    got = [e.to_dict() for e in run(first, reports[:4])]
    second = AlertTracker(persistent_windows=5)
    second.restore(json.loads(json.dumps(first.to_state(), allow_nan=False)))
    got += [e.to_dict() for e in run(second, reports[4:])]
    assert got == expected
    assert {e["episode"] for e in got} >= {"drift", "trend"}


def _pickle_bomb(marker: Path) -> str:
    """The detectors of a format-1 checkpoint, crafted to create `marker` when unpickled."""

    class Bomb:
        def __reduce__(self):  # noqa: ANN204 - pickle protocol
            return (os.system, (f"touch {marker}",))

    return base64.b64encode(pickle.dumps({"age/mean_z": Bomb()})).decode()


def test_a_crafted_pickle_in_saved_state_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    state = {"open": [], "detectors": _pickle_bomb(marker)}
    with pytest.raises(StateError, match="format 1.*expected 2"):
        AlertTracker().restore(state)
    with pytest.raises(StateError):
        AlertTracker().restore({**state, "format": 2, "episodes": []})
    assert not marker.exists()


def test_an_unknown_state_format_is_refused_with_a_clear_message() -> None:
    with pytest.raises(StateError, match="alert tracker state format 7, expected 2"):
        AlertTracker().restore({"format": 7, "episodes": [], "detectors": {}})
    with pytest.raises(StateError, match="trend detector state format"):
        AlertTracker().restore({"format": 2, "episodes": [], "detectors": {"age/mean_z": {}}})


def test_no_profile_episodes_carry_record_times_and_ids_of_their_own() -> None:
    unprofiled = Unprofiled(limit=10)
    key = ("churn", "4")
    no_profile, profile = (lambda m, v: None), (lambda m, v: type("P", (), {"profile_id": "sha256:p4"}))
    unprofiled.count(key, 10, now=T0 + 5)
    (first,) = unprofiled.events(no_profile, now=T0 + 9)
    unprofiled.count(key, 5, now=T0 + 11)
    assert list(unprofiled.events(no_profile, now=T0 + 12)) == []
    (resolved,) = unprofiled.events(profile, now=T0 + 70)
    unprofiled.count(key, 1, now=T0 + 600)
    (again,) = unprofiled.events(no_profile, now=T0 + 600)
    assert (first.status, resolved.status, again.status) == ("firing", "resolved", "firing")
    assert first.since == first.window_start == "2025-11-26T12:00:05.000Z"
    assert resolved.window_end == "2025-11-26T12:01:10.000Z" and "15 unmonitored" in resolved.message
    assert first.alert_id == resolved.alert_id != again.alert_id
    restored = Unprofiled(limit=10)
    restored.restore(json.loads(json.dumps(unprofiled.to_state())))
    (end,) = restored.events(profile, now=T0 + 700)
    assert end.alert_id == again.alert_id and end.status == "resolved"


def test_resolve_after_and_persistent_windows_must_be_positive() -> None:
    with pytest.raises(ValueError, match='"persistent_windows" must be >= 1: 0'):
        AlertTracker(persistent_windows=0)
    with pytest.raises(ValueError, match='"resolve_after" must be >= 1: 0'):
        AlertTracker(resolve_after=0)


def test_open_features_lists_open_episodes_of_a_kind() -> None:
    tracker = AlertTracker(trend=False)
    tracker.observe(window(0, {"age": FIVE_WARNING, "tenure": [("ks", W, 0.3)]}))
    assert tracker.open_features() == ["age", "tenure"] and tracker.open_features("trend") == []
    assert np.isfinite(tracker.open_count())


def test_an_engine_checkpoint_with_a_pickled_tracker_is_refused_and_never_runs(
        profile, tmp_path: Path) -> None:
    from monitor.service.state_store import FORMAT, decode, encode
    from monitor.stream.engine import Engine

    marker = tmp_path / "ran"
    state = Engine(lambda m, v: profile).to_state()
    state["merger"]["models"] = [[["churn", "3"], {
        "open": [], "closed_before": None, "recent": [], "carry": None, "late": 0,
        "tracker": {"open": [], "detectors": _pickle_bomb(marker)}}]]
    saved = decode(encode({"format": FORMAT, "state": state}))["state"]
    with pytest.raises(StateError, match="pickled detectors"):
        Engine(lambda m, v: profile).restore(saved)
    assert not marker.exists()


def test_no_profile_alerts_in_the_engine_carry_the_records_times() -> None:
    from monitor.ingest.records import parse_messages
    from monitor.stream.engine import Engine

    engine = Engine(lambda m, v: None)
    lines = [json.dumps({"model": "other", "version": "1", "ts": T0 + 5 + i,
                         "features": {"x": 1.0}}).encode() for i in range(3)]
    (alert,) = engine.ingest(parse_messages(lines))
    assert (alert.check, alert.status, alert.since) == ("no_profile", "firing",
                                                        "2025-11-26T12:00:05.000Z")
    assert "2025-11-26T12:00:05.000Z" <= alert.window_end <= "2025-11-26T12:00:07.000Z"
    restored = Engine(lambda m, v: None)
    restored.restore(json.loads(json.dumps(engine.to_state())))
    assert restored.merger.unprofiled.episodes[("other", "1")].records == 3


def test_alert_events_become_drift_alert_points_of_the_lead_check() -> None:
    from monitor.outputs.line_protocol import alert_points

    tracker = AlertTracker(trend=False)
    events = run(tracker, [window(0, {"age": FIVE_WARNING}), window(1, {"age": FIVE_CRITICAL})])
    points = [p for p in alert_points(events) if p.startswith("drift_alert,")]
    assert len(points) == 2
    assert points[0].startswith("drift_alert,check=mean_shift,feature=age,model=churn,"
                                "severity=warning,status=firing,version=3 ")
    assert ",severity=critical,status=firing," in points[1]
    assert f'alert_id="{events[0].alert_id}"' in points[1] and ",threshold=0.75,value=1.5 " in points[1]


def test_persistent_windows_comes_from_the_environment() -> None:
    from monitor.errors import UsageError
    from monitor.service.settings import Settings
    from monitor.stream.engine import EngineConfig

    assert Settings.from_env({"DRIFT_MONITOR_PERSISTENT_WINDOWS": "12"}).persistent_windows == 12
    assert Settings.from_env({}).persistent_windows == 30
    with pytest.raises(UsageError, match="DRIFT_MONITOR_PERSISTENT_WINDOWS must be a positive "
                                         "integer \\('0'\\)"):
        Settings.from_env({"DRIFT_MONITOR_PERSISTENT_WINDOWS": "0"})
    assert EngineConfig(persistent_windows=12).tracker().persistent_windows == 12
