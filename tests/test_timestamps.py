"""Timestamps: formatting never raises on a finite number; parsing raises only ValueError."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.records import parse_messages
from monitor.ingest.timestamps import iso, parse_ts
from monitor.profile.model import Profile
from monitor.stream.engine import Engine, EngineConfig, Evaluated


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_iso_never_raises_and_parses_back(ts: float) -> None:
    text = iso(ts)
    assert text.endswith("Z") and len(text) < 330
    back = parse_ts(text, latest=math.inf)
    if abs(ts) < 2 ** 52:  # datetime rounds to microseconds, isoformat truncates to millis
        slack = abs(ts) * 1e-15
        assert ts - 0.001 - slack <= back <= ts + 1e-6 + slack
    else:
        assert back == pytest.approx(ts, rel=1e-12)


def test_iso_agrees_with_numpy_beyond_datetime_years() -> None:
    for ts in (-1e13, 1e13, -62135596801.0, 253402300800.0, -1e15):
        assert iso(ts)[:-5].lstrip("+").lstrip("0") == str(np.datetime64(int(ts), "s")).lstrip("0")


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.booleans(), st.none(),
                 st.from_regex(r"[+-]?\d{4,7}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?")))
def test_parse_ts_raises_only_value_error_with_a_reason(value: object) -> None:
    try:
        ts = parse_ts(value)
    except ValueError as exc:
        assert str(exc).startswith("ts ")
    else:
        assert math.isfinite(ts)


def test_parse_ts_handles_huge_integers_and_numeric_strings() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_ts(10 ** 400)
    assert parse_ts("-1e13") == -1e13 and parse_ts(" 1764158400 ") == 1764158400.0
    assert parse_ts("11111111111111111111", latest=math.inf) == 11111111111111111111.0  # not a date


def test_an_ancient_ts_does_not_crash_the_engine(profile: Profile) -> None:
    """ts = -1e13 raised `year -314918 is out of range` inside Engine.ingest (crash loop)."""
    engine = Engine(lambda m, v: profile if (m, v) == ("churn", "3") else None,
                    EngineConfig(window_seconds=60, grace_seconds=0, min_records=1))
    ancient = orjson.dumps({"model": "churn", "version": "3", "ts": -1e13,
                            "features": {"age": 40}})
    unknown = orjson.dumps({"model": "other", "version": "1", "ts": -1e13, "features": {}})
    out = engine.ingest(parse_messages([ancient]))  # the watermark is now -1e13
    out += engine.ingest(parse_messages([unknown]))  # its no_profile alert is stamped with it
    out += engine.ingest(parse_messages([ancient.replace(b"-1e13", b"1764158400.0")]))
    out += engine.flush()
    reports = [e.report for e in out if isinstance(e, Evaluated)]
    assert sum(r.records for r in reports) == 2
    assert any(getattr(a, "window_start", "").startswith("-314918") for a in out)


def test_report_with_an_ancient_record_is_written(tmp_path) -> None:
    """`report` plotted window times with datetime and crashed on year -314918."""
    import json

    from monitor.cli.main import main
    from monitor.profile.build import BuildOptions, build_profile

    rng = np.random.default_rng(3)
    train = tmp_path / "train.csv"
    train.write_text("x\n" + "".join(f"{v:.4f}\n" for v in rng.normal(0, 1, 1000)))
    build_profile(train, BuildOptions(model="m", version="1", window_size=100,
                                      calibration_windows=20)).save(tmp_path / "p" / "m-1.json")
    logs = tmp_path / "logs.jsonl"
    lines = [{"model": "m", "version": "1", "ts": -1e13, "features": {"x": 9.0}}] + [
        {"model": "m", "version": "1", "ts": 1.7e9 + i / 10, "features": {"x": float(v)}}
        for i, v in enumerate(rng.normal(0, 1, 400))]
    logs.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["report", str(logs), "--profiles", str(tmp_path / "p"),
                 "-o", str(tmp_path / "r.html")]) == 0
