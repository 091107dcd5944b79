"""Outages, for real: a broker stopped and started again mid-stream, a metrics store down while
windows close. Each test stops servers of its own (`tests/support/servers.py`), never the shared
ones. The same worker process lives through the outage; its window reports (published on
DRIFT_MONITOR_REPORTS_TOPIC) are compared with `replay` of the same records: nothing lost,
nothing counted twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.kafka import (
    Setup,
    Worker,
    history,
    produce,
    produce_spread,
    replayed,
    vm_export,
    wait_for_reports,
    wait_until,
)
from support.servers import OwnServers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WINDOW = 10.0


def settings() -> dict[str, str]:
    return {"DRIFT_MONITOR_WINDOW_SECONDS": str(WINDOW), "DRIFT_MONITOR_IDLE_SECONDS": "5",
            "DRIFT_MONITOR_CHECKPOINT_INTERVAL_SECONDS": "1"}


def metric(worker: Worker, name: str) -> float | None:
    return worker.metrics().get(name)


def test_a_broker_stopped_and_started_mid_stream_loses_and_doubles_nothing(
        own_kafka: OwnServers, make_setup: Callable[..., Setup],
        make_profile: Callable[[str, Path], Path]) -> None:
    """Records stream in while the broker goes down and comes back: the same worker process
    reconnects (backoff), and every window equals `replay` of the records produced. A second
    worker of the group, stopped while the broker is down, exits promptly; its partitions
    move to the survivor from their last checkpoints."""
    setup = make_setup(4, bootstrap=own_kafka.bootstrap)
    make_profile(setup.model, setup.profiles)
    env = settings()
    messages = history(setup.model, windows=8, per_window=300, seed=61, drift_from=6)
    expected = replayed(setup.profiles, messages, setup.env(**env))
    # The first windows are there before the worker starts (every partition holds the model);
    # the rest streams in, through the outage: the producer keeps its records and resends.
    produce_spread(setup.predictions, messages[:900], 4, seed=62, bootstrap=own_kafka.bootstrap)
    worker = setup.worker("survivor", **env)
    doomed = setup.worker("doomed", **env)
    pid = worker.proc.pid  # type: ignore[union-attr]
    midway = threading.Event()
    rest = messages[900:]
    started = time.monotonic()

    def pace(i: int) -> None:  # 300 records/s; the outage begins after 600 of them
        wait = started + i / 300 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if i == 600:
            midway.set()

    producer = threading.Thread(target=produce_spread, args=(setup.predictions, rest, 4), kwargs={
        "seed": 63, "pace": pace, "bootstrap": own_kafka.bootstrap,
        "reconnect_backoff_max_ms": 500, "delivery_timeout_ms": 180_000})
    producer.start()
    assert midway.wait(60)
    wait_until(lambda: (metric(worker, "records_processed") or 0) > 0, 30, "records folded in")
    own_kafka.down("kafka")
    worker.wait_for("Kafka broker not reachable", 30)
    status, body = worker.http("/ready")
    assert status == 503 and "Kafka" in body, body
    assert worker.http("/healthz")[0] == 200  # alive: nothing to restart
    assert metric(worker, "kafka_connected") == 0
    doomed.wait_for("Kafka broker not reachable", 30)
    assert doomed.stop(timeout=25) == 0  # SIGTERM with the broker down: a prompt, clean exit
    # Down until a checkpoint or a delivery has failed (and is owed, to be tried again).
    wait_until(lambda: (metric(worker, "kafka_failures") or 0) >= 1, 60,
               "a failed Kafka write")
    worker.wait_for("Kafka failed", 10)
    own_kafka.up("kafka")
    producer.join(120)
    assert not producer.is_alive()
    assert wait_for_reports(setup, len(expected), timeout=120) == expected
    assert worker.proc is not None and worker.proc.poll() is None and worker.proc.pid == pid
    worker.wait_for("Kafka broker reachable again", 30)
    wait_until(lambda: worker.http("/ready")[0] == 200, 30, "/ready after the outage")
    assert metric(worker, "kafka_connected") == 1


def test_a_metrics_store_down_while_windows_close_gets_every_point_afterwards(
        own_vm: OwnServers, make_setup: Callable[..., Setup],
        make_profile: Callable[[str, Path], Path]) -> None:
    """Windows close while the store is down: the outbox holds their points (metrics say how
    many, the log and /ready say why); once the store is back every point is written."""
    setup = make_setup(4, vm=own_vm.vm)
    make_profile(setup.model, setup.profiles)
    env = settings()
    worker = setup.worker("store", **env)
    first = history(setup.model, windows=2, per_window=200, seed=71)
    produce(setup.predictions, first, key=None)
    wait_for_reports(setup, 2, timeout=60)
    wait_until(lambda: len(vm_export("drift_window_records", setup.vm, model=setup.model)) > 0,
               30, "the first windows' points in the store")
    own_vm.down("vm")
    second = history(setup.model, windows=3, per_window=250, seed=72, first=2)
    produce(setup.predictions, second, key=None)
    wait_for_reports(setup, 5, timeout=60)  # windows close and are reported while the store is down
    worker.wait_for("points wait in the outbox", 30)
    held = wait_until(lambda: (m := worker.metrics()).get("metrics_store_up") == 0
                      and m.get("metric_points_buffered", 0) > 0 and m, 30,
                      "the outbox holding points")
    assert held["metric_write_failures"] >= 1
    status, body = worker.http("/ready")
    assert status == 503 and "metrics store not reachable" in body, body
    own_vm.up("vm")
    worker.wait_for("metrics store reachable again", 30)
    samples = wait_until(
        lambda: (s := vm_export("drift_window_records", setup.vm, model=setup.model))
        and sum(len(x["values"]) for x in s) >= 5 and s, 30, "all five windows' points")
    assert sorted(v for x in samples for v in x["values"]) == [200, 200, 250, 250, 250]
    after = wait_until(lambda: (m := worker.metrics()).get("metric_points_buffered") == 0
                       and m, 30, "an empty outbox")
    assert after["metrics_store_up"] == 1 and after["metric_points_dropped"] == 0
    assert worker.proc is not None and worker.proc.poll() is None
