"""Adversarial inputs against a real worker (issue 8's input limits): messages at and just
above DRIFT_MONITOR_MAX_MESSAGE_BYTES, huge strings in every kind of field, 20,000 unknown
keys. Every record is accounted for (counted, or a dead letter with a reason) and the state
stays small."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from support.kafka import Setup, history, produce, read_topic, reports_in, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LIMIT = 400_000


def padded(record: dict, size: int) -> bytes:
    """`record` as JSON of exactly `size` bytes (an extra top-level field pads it)."""
    record = dict(record, pad="")
    base = len(orjson.dumps(record))
    record["pad"] = "p" * (size - base)
    raw = orjson.dumps(record)
    assert len(raw) == size
    return raw


def test_messages_at_and_above_the_limit_and_huge_strings_are_all_accounted_for(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    make_profile(setup.model, setup.profiles)
    normal = [json.loads(m) for m in history(setup.model, windows=1, per_window=160, seed=5)]
    big = "s" * 300_000
    odd = [
        padded(normal[0], LIMIT),  # at the limit: parsed and counted
        padded(normal[1], LIMIT + 1),  # one byte above: a dead letter
        orjson.dumps({**normal[2], "features": {**normal[2]["features"], "color": big}}),
        orjson.dumps({**normal[3], "features": {**normal[3]["features"], "extra": big}}),
        orjson.dumps({**normal[4], "id": big}),
        orjson.dumps({**normal[5], "features": {**normal[5]["features"],
                                                 **{f"k{i}": i for i in range(20_000)}}}),
        orjson.dumps({**normal[6], "features": {**normal[6]["features"], "x": big}}),
    ]
    rest = [orjson.dumps(r) for r in normal[7:]]
    produce(setup.predictions, rest[:50] + odd + rest[50:], key=None)
    worker = setup.worker("odd", DRIFT_MONITOR_MAX_MESSAGE_BYTES=str(LIMIT),
                          DRIFT_MONITOR_WINDOW_SECONDS="10", DRIFT_MONITOR_IDLE_SECONDS="2")
    [report] = wait_until(lambda: reports_in(setup.reports), 90, "the window report")
    letters = wait_until(lambda: read_topic(setup.dlq), 30, "dead letters")
    reasons = {int(dict(m.headers)["source_offset"].decode()) if "source_offset" in dict(m.headers)
               else -1: dict(m.headers)["reason"].decode()[:200] for m in letters}
    m = wait_until(lambda: (m := worker.metrics()).get("metric_points_buffered") == 0 and m, 30,
                   "outbox delivered")
    accounted = report["records"] + report["invalid_records"] + m["records_too_large"]
    assert accounted == 160, (report, reasons)
    assert m["records_too_large"] == 1
    assert m["checkpoint_bytes"] < 100_000, m["checkpoint_bytes"]
    assert len(json.dumps(report)) < 100_000
