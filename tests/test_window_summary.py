"""WindowSummary: any split of a window's records (partitions, batches), merged in any order, gives
the summary of the whole bit for bit; its state stays small whatever the records hold."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.demo.synthetic import generate_columns, records
from monitor.ingest.records import RecordGroup, parse_messages
from monitor.profile.model import Profile
from monitor.summaries.window import MAX_UNEXPECTED_FEATURES, WindowSummary

NUMERIC_VALUES = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                           st.floats(-100, 100), st.integers(-10**6, 10**6), st.just("x"))
LABEL_VALUES = st.one_of(st.none(), st.sampled_from(["CA", "NY", "basic", "web", "ios"]),
                         st.text(max_size=4), st.integers(0, 5), st.just("Q" * 500))
TEXT_VALUES = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(["ok", "great product"]))


@st.composite
def record(draw: Any) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for name in ("age", "income_z", "tenure", "balance"):
        if draw(st.booleans()):
            features[name] = draw(NUMERIC_VALUES)
    for name in ("state", "plan", "channel"):
        if draw(st.booleans()):
            features[name] = draw(LABEL_VALUES)
    if draw(st.booleans()):
        features["comment"] = draw(TEXT_VALUES)
    for extra in draw(st.lists(st.sampled_from(["extra1", "extra2", "E" * 400]), max_size=2)):
        features[extra] = 1
    ts = draw(st.sampled_from([1.7e9, 1.7e9 + 0.25, 1.7e9 + 7.0]))
    prediction = draw(st.one_of(st.none(), st.floats(0, 1), st.just({"p": 0.5})))
    return {"ts": ts, "features": features, "prediction": prediction}


def _group(recs: list[dict[str, Any]]) -> RecordGroup:
    g = RecordGroup("churn", "3")
    for r in recs:
        g.append(r["ts"], r["features"], r["prediction"])
    return g


def _window(profile: Profile, recs: list[dict[str, Any]], batch: int) -> WindowSummary:
    w = WindowSummary(profile, 1.7e9, 1.7e9 + 60)
    for i in range(0, len(recs), batch):
        w.update(_group(recs[i:i + batch]))
    return w


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record(), max_size=40), st.data())
def test_any_split_of_a_window_merges_to_the_whole(profile: Profile, recs: list, data: Any) -> None:
    parts = data.draw(st.integers(2, 5))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(recs)), min_size=parts - 1,
                                     max_size=parts - 1)))
    pieces = [recs[a:b] for a, b in zip([0, *cuts], [*cuts, len(recs)], strict=True)]
    pieces = data.draw(st.permutations(pieces))
    whole = _window(profile, recs, batch=len(recs) or 1)
    windows = [_window(profile, p, batch=data.draw(st.integers(1, 7))) for p in pieces]
    merged = windows[0]
    for w in windows[1:]:
        merged.merge(w)
    assert _bytes(merged) == _bytes(whole)  # bit for bit, -0.0 and all
    again = WindowSummary.from_dict(json.loads(json.dumps(merged.to_dict())), profile)
    assert _bytes(again) == _bytes(whole)


def _bytes(window: WindowSummary) -> bytes:
    return json.dumps(window.to_dict(), sort_keys=True).encode()


def test_one_window_through_4_partitions_equals_1_partition(profile: Profile) -> None:
    """Realistic traffic: records dealt round-robin to 4 partitions, each summarised in batches
    of 100, merged: the same dict as one partition in batches of 1,000, numbers included."""
    rng = np.random.default_rng(3)
    cols = generate_columns(4000, rng)
    recs = [orjson.loads(orjson.dumps(r)) for r in
            records(cols, model="churn", version="3", ts=1.7e9 + np.sort(rng.uniform(0, 60, 4000)))]
    whole = _window(profile, recs, batch=1000)
    parts = [_window(profile, recs[p::4], batch=100) for p in range(4)]
    merged = parts[3]
    for w in parts[2::-1]:
        merged.merge(w)
    assert _bytes(merged) == _bytes(whole)
    assert merged.features["age"].mean == whole.features["age"].mean


def test_huge_category_values_keep_the_window_small(profile: Profile, caplog) -> None:
    """1,000 records with 32 kB category values (18.7 MB of checkpoint before)."""
    rng = np.random.default_rng(4)
    cols = generate_columns(1000, rng)
    cols["state"] = [f"{i}" + "S" * 32_768 for i in range(1000)]
    cols["plan"] = ["P" * 32_768] * 1000
    msgs = [orjson.dumps(r) for r in records(cols, model="churn", version="3",
                                             ts=1.7e9 + np.arange(1000.0))]
    w = WindowSummary(profile, 1.7e9, 1.7e9 + 60)
    with caplog.at_level(logging.WARNING, logger="monitor.summaries.window"):
        for group in parse_messages(msgs).groups.values():
            w.update(group)
    size = len(json.dumps(w.to_dict()))
    assert size < 200_000, size
    assert w.features["state"].unseen_total == 1000  # every record still counted
    assert w.dropped["clipped_values"] == 2000 and w.dropped["unseen_values"] > 0
    warnings = [r for r in caplog.records if "not kept" in r.getMessage()]
    assert len(warnings) == 1 and "churn" in warnings[0].getMessage()
    assert size <= w.max_state_chars() * 6  # the budget (JSON escapes at most 6 bytes a char)


def test_a_record_with_10000_unknown_features_is_bounded(profile: Profile) -> None:
    """Such a record's unprofiled names are counted, not tracked one by one; a record with a
    few of them still has them named."""
    features = {f"unknown_{i}_" + "k" * 300: i for i in range(10_000)}
    wide = orjson.dumps({"model": "churn", "version": "3", "ts": 1.7e9, "features": features})
    few = orjson.dumps({"model": "churn", "version": "3", "ts": 1.7e9,
                        "features": {"age": 30, **dict(list(features.items())[:150])}})
    w = WindowSummary(profile, 1.7e9, 1.7e9 + 60)
    for group in parse_messages([wide, wide, few]).groups.values():
        w.update(group)
    assert len(w.unexpected_features) == MAX_UNEXPECTED_FEATURES
    assert w.unexpected.total == 2 * 10_000 + 150  # every occurrence counted
    assert all(len(n) < 240 for n in w.unexpected_features)
    assert len(json.dumps(w.to_dict())) < 60_000
    assert "age" not in w.missing_features and "tenure" in w.missing_features


@pytest.mark.parametrize("n", [0, 1])
def test_window_dict_leaves_out_what_the_profile_fixes(profile: Profile, n: int) -> None:
    w = WindowSummary(profile)
    w.update_columns({"state": ["CA"] * n}, n)
    text = json.dumps(w.to_dict())
    assert '"edges"' not in text and '"vocabulary"' not in text
