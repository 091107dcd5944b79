"""The worker as operations see it, on the shared broker and store: started before its topic,
its probes and /metrics over HTTP, its lag after a restart, its input limits.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as SyncPartition
from kafka.admin import KafkaAdminClient, NewTopic
from support.kafka import (
    BOOTSTRAP,
    Setup,
    history,
    produce,
    read_topic,
    wait_for_reports,
    wait_until,
)

from monitor.service.lag import stage_lag
from monitor.service.runner import StageRunner

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WINDOW = 10.0
SETTINGS = {"DRIFT_MONITOR_WINDOW_SECONDS": str(WINDOW), "DRIFT_MONITOR_IDLE_SECONDS": "2"}


def test_a_worker_started_before_its_topic_waits_for_it_not_ready_and_stoppable(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    setup = make_setup(2, create=False)
    make_profile(setup.model, setup.profiles)
    waiting = "waiting for it"
    worker = setup.worker("early", ready=waiting, **SETTINGS)
    other = setup.worker("stopped-while-waiting", ready=waiting, **SETTINGS)
    assert worker.http("/healthz") == (200, "ok\n")
    status, body = worker.http("/ready")
    assert status == 503 and f"predictions topic not found ({setup.predictions})" in body
    assert worker.metrics()["ready"] == 0
    assert other.stop(timeout=20) == 0  # SIGTERM ends the wait: a clean stop, no traceback
    assert "Traceback" not in other.log()
    setup.create_predictions()
    produce(setup.predictions, history(setup.model, windows=2, per_window=120, seed=81),
            key=None)
    assert [r["records"] for r in wait_for_reports(setup, 2, timeout=60)] == [120, 120]
    worker.wait_for(f"predictions topic {setup.predictions} found after", 10)
    assert len(re.findall(waiting, worker.log())) == 1  # said once a minute, not per look
    wait_until(lambda: worker.http("/ready")[0] == 200, 30, "/ready once the topic exists")


def test_probes_and_metrics_over_http(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """/ready, /healthz and /metrics of a real worker; the counters are the records, windows,
    dead letters and alerts it handled, the lags the records it has not folded in."""
    make_profile(setup.model, setup.profiles)
    messages = history(setup.model, windows=3, per_window=200, seed=91, drift_from=2)
    produce(setup.predictions, messages + [b"{not json", b'{"model": "x"}'], key=None)
    worker = setup.worker("probed", **SETTINGS)
    assert [r["records"] for r in wait_for_reports(setup, 3, timeout=60)] == [200, 200, 200]
    wait_until(lambda: worker.http("/ready")[0] == 200, 30, "/ready")
    assert worker.http("/ready")[1] == "ready\n"
    assert worker.http("/healthz") == (200, "ok\n")
    status, body = worker.http("/metrics")
    assert status == 200
    samples = [line for line in body.splitlines() if not line.startswith("#")]
    for sample in samples:  # every sample is announced by its TYPE line
        assert f"# TYPE {sample.split('{')[0]} " in body, sample
    m = wait_until(lambda: (m := worker.metrics()).get("metric_points_buffered") == 0 and m, 30,
                   "the outbox delivered")
    assert m["records_processed"] == 600 and m["invalid_records"] == 2
    assert m["dlq_messages"] == 2 and m["windows_evaluated"] == 3
    assert m["consumer_lag"] == 0 and m["partials_lag"] == 0
    assert m["alerts_firing"] >= 1 and m["alerts_sent"] >= 1  # window 3 drifted
    assert m["partitions_assigned"] == 8  # 4 predictions + 4 partials partitions
    assert (m["kafka_connected"], m["metrics_store_up"], m["ready"]) == (1, 1, 1)
    assert m["checkpoint_bytes"] > 0


def test_lag_of_a_partition_not_loaded_yet_counts_from_its_checkpoint(services: None) -> None:
    """A partition assigned but not loaded yet reports the records after its checkpoint (the
    committed offset), not the whole log; a loaded one those after what it folded in."""
    topic, group = f"it-lag-{uuid.uuid4().hex[:8]}", f"it-lag-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, 1, 1)])
    try:
        produce(topic, [b"{}"] * 100, key=None)
        committer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group,
                                  enable_auto_commit=False)
        committer.commit({SyncPartition(topic, 0): _offset_and_metadata(90)})
        committer.close()
        assert asyncio.run(_lags(topic, group)) == (10, 5, 100)
    finally:
        admin.delete_topics([topic])
        admin.close()


def _offset_and_metadata(offset: int) -> Any:
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset, "", -1)


async def _lags(topic: str, group: str) -> tuple[int | None, int | None, int | None]:
    class Folded:  # a processor that has folded in everything up to offset 94
        offset = 94

    async def lag_of(group_id: str, slots: dict[int, Any]) -> int | None:
        runner = StageRunner("stage one", topic, {"group_id": group_id}, None,  # type: ignore[arg-type]
                             None, None)  # type: ignore[arg-type]
        consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group_id,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            runner.consumer = consumer
            runner.slots = slots
            return await stage_lag(runner)
        finally:
            await consumer.stop()

    from monitor.service.runner import Slot

    loaded = {0: Slot(Folded(), 0)}  # type: ignore[arg-type]
    return (await lag_of(group, {}), await lag_of(group, loaded),
            await lag_of(group + "-new", {}))


def test_a_message_above_the_size_limit_is_a_dead_letter_never_parsed(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """An array of 1,500 valid records in one 300 kB message, above a 100 kB limit: it goes to
    the dead-letter topic (its first 64 kB, with its size), none of its records is counted."""
    make_profile(setup.model, setup.profiles)
    normal = history(setup.model, windows=1, per_window=150, seed=95)
    big = orjson.dumps([json.loads(raw) for raw in history(setup.model, windows=1,
                                                             per_window=1500, seed=96)])
    assert len(big) > 200_000
    produce(setup.predictions, normal[:75] + [big] + normal[75:], key=None)
    worker = setup.worker("limited", DRIFT_MONITOR_MAX_MESSAGE_BYTES="100000", **SETTINGS)
    assert [r["records"] for r in wait_for_reports(setup, 1, timeout=60)] == [150]
    letters = wait_until(lambda: read_topic(setup.dlq), 30, "the dead letter")
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["reason"].startswith(f"message too large: {len(big)} bytes")
    assert headers["original_bytes"] == str(len(big))
    assert letters[0].value == big[:65536]
    m = worker.metrics()
    assert m["records_too_large"] == 1 and m["records_processed"] == 150


def test_records_with_ten_thousand_unknown_feature_keys_keep_the_state_bounded(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """200 records, each with 10,000 feature names of its own (2 million in all): the window
    counts them without keeping them (dropped_values), the checkpoint stays small, the worker's
    memory too."""
    make_profile(setup.model, setup.profiles)
    messages = []
    for i, raw in enumerate(history(setup.model, windows=1, per_window=200, seed=97)):
        record = json.loads(raw)
        record["features"].update({f"u{i}_{k}": k * 0.5 for k in range(10_000)})
        messages.append(orjson.dumps(record))
    produce(setup.predictions, messages, key=None)
    worker = setup.worker("wide", **SETTINGS)
    [report] = wait_for_reports(setup, 1, timeout=120)
    assert report["records"] == 200
    assert len(report["unexpected_features"]) <= 100
    assert report["dropped_values"] == 200 * 10_000
    m = worker.metrics()
    assert m["checkpoint_bytes"] < 200_000
    assert worker.proc is not None
    peak_kb = int(re.search(r"VmHWM:\s+(\d+) kB",
                            Path(f"/proc/{worker.proc.pid}/status").read_text())[1])
    assert peak_kb < 600_000, f"peak RSS {peak_kb} kB"
