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
from kafka import KafkaProducer
from support.kafka import Setup, history, produce, read_topic, wait_for_reports, wait_until

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
    [report] = wait_for_reports(setup, 1, timeout=90)
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


@pytest.mark.parametrize("size, topic_limit, worker_limit", [
    (1_048_450, None, None),  # every setting at its default: the headers tip it over
    (3_000_000, "5000000", "4000000"),  # the predictions topic's and the worker's limits raised
])
def test_an_invalid_message_the_dead_letter_topic_cannot_take_does_not_wedge_the_partition(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path],
        size: int, topic_limit: str | None, worker_limit: str | None) -> None:
    """Invalid JSON below DRIFT_MONITOR_MAX_MESSAGE_BYTES, but with the dead-letter headers
    more than the dead-letter topic takes: before, the delivery failed (MessageSizeTooLarge)
    and was retried for ever: no window of the partition closed again, kafka_connected 0. Now
    the dead letter carries the message's first 64 kB, as for a message too large."""
    setup = make_setup(1, create=False)
    setup.create_predictions(**({"max.message.bytes": topic_limit} if topic_limit else {}))
    make_profile(setup.model, setup.profiles)
    messages = history(setup.model, windows=2, per_window=200, seed=8)
    garbage = b"{" + b"x" * (size - 1)
    producer = KafkaProducer(bootstrap_servers=setup.bootstrap, max_request_size=6_000_000)
    try:
        for value in messages[:100] + [garbage] + messages[100:]:
            producer.send(setup.predictions, value, partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close()
    extra = {"DRIFT_MONITOR_MAX_MESSAGE_BYTES": worker_limit} if worker_limit else {}
    worker = setup.worker("poisoned", DRIFT_MONITOR_WINDOW_SECONDS="10",
                          DRIFT_MONITOR_IDLE_SECONDS="2", **extra)
    got = wait_for_reports(setup, 2, timeout=60)
    assert [r["records"] for r in got] == [200, 200]
    [letter] = wait_until(lambda: read_topic(setup.dlq), 30, "the dead letter")
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["source_offset"] == "100" and headers["reason"].startswith("not valid JSON")
    assert letter.value == garbage[:len(letter.value)]
    m = worker.metrics()
    assert m["dlq_messages"] == 1 and m["kafka_failures"] == 0 and m["kafka_connected"] == 1
