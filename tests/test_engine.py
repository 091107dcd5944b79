"""The streaming engine: windows, carry-over, late records, alert lifecycle, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import orjson

from monitor.demo.synthetic import Scenario, generate_columns, records
from monitor.ingest.records import parse_messages
from monitor.profile.model import Profile
from monitor.stream.alerts import Alert
from monitor.stream.engine import Engine, EngineConfig, Evaluated

T0 = 1_764_158_400.0


def _messages(rng: np.random.Generator, n: int, start: float, span: float = 60.0,
              scenario: Scenario | None = None, model: str = "churn") -> list[bytes]:
    ts = start + np.sort(rng.uniform(0, span, n))
    return [orjson.dumps(r) for r in records(generate_columns(n, rng, scenario), model=model,
                                             version="3", ts=ts)]


def _run(engine: Engine, batches: list[list[bytes]]) -> list[Evaluated | Alert]:
    out: list[Evaluated | Alert] = []
    for b in batches:
        out.extend(engine.ingest(parse_messages(b)))
    return out + engine.flush()


def _engine(profile: Profile, **kw) -> Engine:
    return Engine(lambda m, v: profile if (m, v) == ("churn", "3") else None,
                  EngineConfig(window_seconds=60, grace_seconds=0, min_records=200, **kw))


def test_drift_in_one_feature_fires_once_and_resolves(profile: Profile) -> None:
    # Statistical: with ~1e-3 false alarms per feature and window, 150 feature-windows of
    # no drift almost always stay quiet; the seed is fixed so the run is repeatable.
    rng = np.random.default_rng(7)
    batches = [_messages(rng, 500, T0 + 60 * w,
                         scenario=Scenario(new_category_rate=0.1) if 3 <= w < 6 else None)
               for w in range(9)]
    out = _run(_engine(profile, trend=False), batches)
    alerts = [a for a in out if isinstance(a, Alert)] + [
        a for e in out if isinstance(e, Evaluated) for a in e.alerts]
    novelty = [a for a in alerts if a.feature == "state" and a.check == "novelty_rate"]
    assert [a.status for a in novelty] == ["firing", "resolved"]
    assert novelty[0].window_start.startswith("2025-11-26T12:03")
    assert novelty[0].alert_id == novelty[1].alert_id and "Canada" in novelty[0].message
    assert novelty[0].profile_id == profile.profile_id
    undrifted = {a.feature for a in alerts if a.status == "firing"} - {"state"}
    assert undrifted <= set(), f"false alarms on {undrifted}"


def test_windows_count_every_record_once(profile: Profile, rng) -> None:
    batches = [_messages(rng, 300, T0 + 60 * w) for w in range(5)]
    out = _run(_engine(profile), batches)
    reports = [e.report for e in out if isinstance(e, Evaluated)]
    assert sum(r.records for r in reports) == 1500
    assert [r.start for r in reports] == [T0 + 60 * w for w in range(5)]


def test_small_window_is_carried_into_the_next(profile: Profile, rng) -> None:
    batches = [_messages(rng, 100, T0), _messages(rng, 150, T0 + 60), _messages(rng, 400, T0 + 120)]
    reports = [e.report for e in _run(_engine(profile), batches) if isinstance(e, Evaluated)]
    assert [r.records for r in reports] == [250, 400]
    assert (reports[0].start, reports[0].end) == (T0, T0 + 120)


def test_late_records_are_counted_not_folded(profile: Profile, rng) -> None:
    engine = _engine(profile)
    out = _run(engine, [_messages(rng, 300, T0), _messages(rng, 300, T0 + 60),
                        _messages(rng, 7, T0 + 1, span=5)])
    assert engine.stats.late == 7
    reports = [e.report for e in out if isinstance(e, Evaluated)]
    assert sum(r.records for r in reports) == 600 and sum(r.late for r in reports) == 7


def test_unknown_model_raises_one_no_profile_alert(profile: Profile, rng) -> None:
    engine = _engine(profile)
    out = _run(engine, [_messages(rng, 10, T0, model="other"), _messages(rng, 10, T0 + 1, model="other")])
    alerts = [a for a in out if isinstance(a, Alert)]
    assert [(a.model, a.check) for a in alerts] == [("other", "no_profile")]
    assert engine.stats.no_profile == 20


def test_invalid_records_are_counted_with_their_model(profile: Profile, rng) -> None:
    batch = _messages(rng, 300, T0) + [b"{bad", b'{"model": "churn", "version": "3"}']
    engine = _engine(profile)
    out = _run(engine, [batch])
    assert engine.stats.invalid == 2
    assert [e.report.invalid for e in out if isinstance(e, Evaluated)] == [1]


def test_checkpoint_restore_gives_the_same_windows(profile: Profile, rng) -> None:
    batches = [_messages(rng, 250, T0 + 30 * i,  span=30,
                         scenario=Scenario(mean_shift=1.0) if i > 5 else None) for i in range(12)]
    straight = [e.report.to_dict() for e in _run(_engine(profile), batches)
                if isinstance(e, Evaluated)]
    first = _engine(profile)
    out = [e for b in batches[:5] for e in first.ingest(parse_messages(b))]
    state = json.loads(json.dumps(first.to_state()))
    second = _engine(profile)
    second.restore(state)
    out += _run(second, batches[5:])
    resumed = [e.report.to_dict() for e in out if isinstance(e, Evaluated)]
    strip = [{k: v for k, v in r.items() if k != "features"} for r in resumed]
    assert strip == [{k: v for k, v in r.items() if k != "features"} for r in straight]
    assert [r["features"]["age"]["metrics"]["mean"] for r in resumed] == \
        [r["features"]["age"]["metrics"]["mean"] for r in straight]


def test_a_batch_of_only_late_records_does_not_stretch_the_next_window(profile: Profile, rng) -> None:
    engine = _engine(profile)
    out = _run(engine, [_messages(rng, 300, T0), _messages(rng, 300, T0 + 60),
                        _messages(rng, 5, T0 + 1, span=5), _messages(rng, 300, T0 + 120)])
    reports = [e.report for e in out if isinstance(e, Evaluated)]
    assert [(r.start, r.end) for r in reports] == [(T0 + 60 * w, T0 + 60 * w + 60) for w in range(3)]
    assert sum(r.late for r in reports) == 5


def test_one_odd_value_in_a_clean_feature_does_not_page(profile: Profile, rng) -> None:
    """Training had no nulls or strings in `tenure`; one of each in 1,000 records is noise."""
    msgs = [json.loads(m) for m in _messages(rng, 1000, T0)]
    msgs[0]["features"]["tenure"] = "n/a"
    msgs[1]["features"]["tenure"] = None
    out = _run(_engine(profile, trend=False), [[orjson.dumps(m) for m in msgs]])
    report = next(e.report for e in out if isinstance(e, Evaluated))
    assert report.features["tenure"].metrics["type_mismatch_rate"] == 0.001
    assert not [f for f in report.features["tenure"].findings if f.severity >= 2]


def test_no_profile_alert_resolves_when_the_profile_arrives(profile: Profile, rng) -> None:
    profiles: dict[tuple[str, str], Profile] = {}
    engine = Engine(lambda m, v: profiles.get((m, v)),
                    EngineConfig(window_seconds=60, grace_seconds=0, min_records=200))
    out = engine.ingest(parse_messages(_messages(rng, 10, T0)))
    profiles[("churn", "3")] = profile
    out += engine.ingest(parse_messages(_messages(rng, 10, T0 + 1)))
    events = [(a.check, a.status, a.alert_id) for a in out if isinstance(a, Alert)]
    assert [e[:2] for e in events] == [("no_profile", "firing"), ("no_profile", "resolved")]
    assert events[0][2] == events[1][2]
