"""Parsing prediction logs: every malformed message is kept with its reason; valid ones group."""

from __future__ import annotations

import json

import pytest

from monitor.ingest.records import parse_messages, parse_ts

GOOD = {"model": "churn", "version": "3", "ts": "2026-11-26T12:00:00.250Z", "id": "r1",
        "features": {"age": 41}, "prediction": 0.83}


@pytest.mark.parametrize("raw,reason", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe{}", "message is not valid UTF-8"),
    (b'"a string"', "record is not a JSON object but str"),
    (b"42", "record is not a JSON object but int"),
    (json.dumps({**GOOD, "model": None}).encode(), "missing or empty 'model'"),
    (json.dumps({**GOOD, "model": 7}).encode(), "'model' must be a string"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "version"}).encode(), "missing or empty 'version'"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "ts"}).encode(), "missing 'ts'"),
    (json.dumps({**GOOD, "ts": "yesterday"}).encode(), "ts is neither ISO 8601 nor epoch"),
    (json.dumps({**GOOD, "ts": True}).encode(), "ts must be a string or a number"),
    (json.dumps({**GOOD, "ts": 1764158400250}).encode(), "ts is more than a day in the future"),
    (json.dumps({**GOOD, "ts": 1764158400250.0}).encode(), "ts is more than a day in the future"),
    (json.dumps({**GOOD, "ts": "9999-01-01T00:00:00Z"}).encode(), "ts is more than a day in the future"),
    (json.dumps({**GOOD, "features": [1, 2]}).encode(), "'features' must be an object"),
    (json.dumps({**GOOD, "prediction": [0.1, 0.9]}).encode(), "'prediction' must be a number"),
    (json.dumps({**GOOD, "model": "m" * 32_768}).encode(),
     "'model' is longer than 200 characters (32,768)"),
    (json.dumps({**GOOD, "version": "v" * 201}).encode(), "'version' is longer than 200"),
])
def test_malformed_messages_come_back_with_reason_and_bytes(raw: bytes, reason: str) -> None:
    batch = parse_messages([raw, json.dumps(GOOD).encode()])
    assert batch.valid_count == 1
    assert len(batch.invalid) == 1
    assert batch.invalid[0].reason.startswith(reason), batch.invalid[0].reason
    assert batch.invalid[0].raw == raw
    assert batch.invalid[0].model is None or len(batch.invalid[0].model) <= 200


def test_array_message_keeps_good_elements_and_reports_the_bad_one() -> None:
    raw = json.dumps([GOOD, {"model": "x"}, GOOD]).encode()
    batch = parse_messages([raw])
    assert len(batch.groups[("churn", "3")]) == 2
    assert [b.reason for b in batch.invalid] == ["missing or empty 'version' (a string or number)"]
    assert json.loads(batch.invalid[0].raw) == {"model": "x"} and batch.invalid[0].model == "x"


def test_nan_and_infinity_from_python_json_dumps_are_accepted() -> None:
    raw = json.dumps({**GOOD, "features": {"age": float("nan"), "b": float("inf")}}).encode()
    batch = parse_messages([raw])
    group = batch.groups[("churn", "3")]
    assert group.features[0]["b"] == float("inf") and not batch.invalid


def test_huge_string_values_parse() -> None:
    raw = json.dumps({**GOOD, "features": {"note": "x" * 1_000_000}}).encode()
    assert parse_messages([raw]).valid_count == 1


def test_columns_flatten_prediction_objects() -> None:
    rec = {**GOOD, "prediction": {"score": 0.2, "label": "yes"}}
    group = parse_messages([json.dumps(rec).encode(), json.dumps(GOOD).encode()]).groups[("churn", "3")]
    assert group.column("prediction.score") == [0.2, None]
    assert group.column("prediction") == [{"score": 0.2, "label": "yes"}, 0.83]
    assert {"age", "prediction", "prediction.score", "prediction.label"} <= group.feature_names()


def test_numeric_version_becomes_a_string_and_ts_forms_agree() -> None:
    batch = parse_messages([json.dumps({**GOOD, "version": 3, "ts": 1764158400.25}).encode()])
    assert ("churn", "3") in batch.groups
    assert parse_ts("2025-11-26T12:00:00.250Z") == parse_ts(1764158400.25) == parse_ts("1764158400.25")
