"""Production topology on the real broker and store: one model's records spread over partitions
and workers, checkpoints bound to their stream, metrics that survive a crash, a live rebalance.

The window reports the workers publish (DRIFT_MONITOR_REPORTS_TOPIC) are compared with `replay`
of the same records: identical numbers, not close ones.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from support.kafka import (
    BOOTSTRAP,
    Setup,
    alerts_in,
    history,
    last_checkpoint,
    produce,
    produce_spread,
    record_messages,
    replayed,
    reports_in,
    vm_export,
    wait_for_reports,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WINDOW = 10.0


def overrides() -> dict[str, str]:
    return {"DRIFT_MONITOR_WINDOW_SECONDS": str(WINDOW), "DRIFT_MONITOR_IDLE_SECONDS": "3"}


def test_one_model_spread_over_partitions_and_workers_gives_the_replay_windows(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    """The same records through 1 partition (1 worker) and through 4 partitions (2 workers):
    identical window reports, both equal to `replay`; one set of metric points per window."""
    one, four = make_setup(1), make_setup(4)
    model = one.model
    for s in (one, four):
        make_profile(model, s.profiles)
    messages = history(model, windows=6, per_window=350, seed=11, drift_from=3)
    expected = replayed(one.profiles, messages, one.env(**overrides()))
    assert [r["records"] for r in expected] == [350] * 6
    produce(one.predictions, messages, key=None)
    produce_spread(four.predictions, messages, 4, seed=12)
    one.worker("single", **overrides(), DRIFT_MONITOR_INFLUX_URL="")  # points: `four` only
    four.worker("a", **overrides())
    four.worker("b", **overrides())
    through_one = wait_for_reports(one, len(expected))
    through_four = wait_for_reports(four, len(expected))
    assert through_one == expected
    assert through_four == expected
    # One point per window in the store, with the window's whole count (not a partition's).
    samples = wait_until(lambda: (s := vm_export("drift_window_records", model=model))
                         and sum(len(x["values"]) for x in s) >= 6 and s, 30,
                         "six drift_window_records points")
    assert sorted(v for x in samples for v in x["values"]) == [350] * 6
    # Each alert fired once: the same events as replay's, not once per partition.
    fired = [a for a in alerts_in(four.alerts) if a["status"] == "firing"]
    assert fired and len({a["alert_id"] for a in fired}) == len(fired)


def test_batches_smaller_than_a_fetch_while_partitions_load_count_every_record_once(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """A fetch brings more records than one batch, and partitions are loaded while batches are
    taken and folded: a batch fetched before its partition's load is dropped and read again,
    and no batch taken after it is folded first (which would skip the dropped records)."""
    make_profile(setup.model, setup.profiles)
    messages = history(setup.model, windows=4, per_window=400, seed=13)
    expected = replayed(setup.profiles, messages, setup.env(**overrides()))
    produce_spread(setup.predictions, messages, 4, seed=14)
    setup.worker("small-batches", **overrides(), DRIFT_MONITOR_BATCH_SIZE="40")
    assert wait_for_reports(setup, len(expected)) == expected


def test_a_checkpoint_of_a_deleted_and_recreated_topic_is_ignored(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    make_profile(setup.model, setup.profiles)
    first = history(setup.model, windows=3, per_window=200, seed=21)
    produce(setup.predictions, first, key=None)
    worker = setup.worker("before", **overrides())
    wait_for_reports(setup, 3)
    assert worker.stop() == 0
    old_id = topic_id(setup.predictions)
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.delete_topics([setup.predictions])
        wait_until(lambda: setup.predictions not in admin.list_topics(), 30, "topic deleted")

        def recreated() -> bool:
            try:
                admin.create_topics([NewTopic(setup.predictions, 4, 1)])
            except Exception:  # still being deleted
                return False
            return True

        wait_until(recreated, 30, "topic created again")
    finally:
        admin.close()
    assert topic_id(setup.predictions) != old_id
    # Fewer records than before, in later windows: offsets restart at 0.
    second = history(setup.model, windows=2, per_window=150, seed=22, first=3)
    produce(setup.predictions, second, key=None)
    after = setup.worker("after", **overrides())
    after.wait_for(re.compile(r"ignoring a checkpoint of another stream: topic id \S+ \(saved\) "
                              r"is not \S+ \(now\)"), 30)
    reports = wait_for_reports(setup, 5)
    assert [r["records"] for r in reports] == [200, 200, 200, 150, 150]


def test_a_checkpoint_of_another_topic_is_ignored(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    """Two deployments told to share one state topic: the second ignores the first's
    checkpoints (with a warning naming both topics) and counts every record of its own."""
    a, b = make_setup(1), make_setup(1)
    for s in (a, b):
        make_profile(a.model, s.profiles)
    produce(a.predictions, history(a.model, windows=2, per_window=200, seed=31), key=None)
    worker = a.worker("a", **overrides())
    wait_for_reports(a, 2)
    assert worker.stop() == 0
    produce(b.predictions, history(a.model, windows=2, per_window=120, seed=32), key=None)
    shared = {**overrides(), "DRIFT_MONITOR_STATE_TOPIC": a.state,
              "DRIFT_MONITOR_GROUP": f"it-{a.tag}"}
    other = b.worker("b", **shared)
    other.wait_for(f"topic '{a.predictions}' (saved) is not '{b.predictions}' (now)", 30)
    assert [r["records"] for r in wait_for_reports(b, 2)] == [120, 120]


def topic_id(topic: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        return str(admin.describe_topics([topic])[0]["topic_id"])
    finally:
        admin.close()


def test_metrics_of_a_closed_window_survive_a_kill_while_the_store_is_down(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """The window closes and is checkpointed while its points cannot be written; SIGKILL; the
    restarted worker writes them from the checkpointed outbox."""
    make_profile(setup.model, setup.profiles)
    produce(setup.predictions, history(setup.model, windows=2, per_window=180, seed=41),
            key=None)
    down = {**overrides(), "DRIFT_MONITOR_INFLUX_URL": "http://127.0.0.1:9"}  # nothing listens
    worker = setup.worker("store-down", **down)
    wait_for_reports(setup, 2)
    worker.wait_for("points wait in the outbox", 20)
    worker.kill()
    assert not vm_export("drift_window_records", model=setup.model)
    setup.worker("store-up", **overrides())
    samples = wait_until(lambda: (s := vm_export("drift_window_records", model=setup.model))
                         and sum(len(x["values"]) for x in s) >= 2 and s, 30,
                         "the two windows' points")
    assert sorted(v for x in samples for v in x["values"]) == [180, 180]


def test_live_rebalance_workers_killed_added_and_restarted_mid_stream(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    """Three workers on six partitions while records stream in; one is SIGKILLed, one added,
    one stopped and started again; every window equals `replay` of the same records."""
    setup = make_setup(6)
    make_profile(setup.model, setup.profiles)
    env = {**overrides(), "DRIFT_MONITOR_CHECKPOINT_INTERVAL_SECONDS": "1"}
    messages = history(setup.model, windows=8, per_window=300, seed=51, drift_from=5)
    expected = replayed(setup.profiles, messages, setup.env(**env))
    workers = [setup.worker(f"w{i}", **env) for i in range(3)]
    started = time.monotonic()
    done: list[str] = []
    stopped: list[int] = []

    def restart() -> None:
        stopped.append(workers[0].stop())
        setup.worker("w0-again", **env)

    # The restart runs beside the stream: a clean stop takes seconds, and a stream paused for
    # longer than the idle time would let the partitions' event time run on with the wall clock
    # (by design), making later records late where `replay` has them on time.
    restarting = threading.Thread(target=restart)

    def pace(i: int) -> None:  # about 120 records/s: the whole stream takes 20 s
        wait = started + i / 120 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if i == 600 and "kill" not in done:
            workers[1].kill()
            done.append("kill")
        if i == 1100 and "add" not in done:
            setup.worker("w3", **env)
            done.append("add")
        if i == 1700 and "restart" not in done:
            restarting.start()
            done.append("restart")

    produce_spread(setup.predictions, messages, 6, seed=52, pace=pace)
    restarting.join(timeout=60)
    assert done == ["kill", "add", "restart"]
    assert stopped == [0]
    assert wait_for_reports(setup, len(expected), timeout=120) == expected


def test_a_quiet_partitions_restored_window_closes_after_a_restart(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """Checkpoints are loaded when partitions are assigned, not when a record arrives: a window
    restored on a partition that gets no new record still closes."""
    make_profile(setup.model, setup.profiles)
    worker = setup.worker("before", **{**overrides(), "DRIFT_MONITOR_IDLE_SECONDS": "600"})
    produce(setup.predictions, record_messages(setup.model, 150, time.time(), seed=61),
            key=None, partition=2)
    wait_until(lambda: (cp := last_checkpoint(setup.state, 2)) and cp["offset"] == 149, 30,
               "the checkpoint of partition 2")
    worker.kill()
    assert reports_in(setup.reports) == []
    restarted = setup.worker("after", **overrides())
    restarted.wait_for("partition 2: restored checkpoint at offset 149", 30)
    assert [r["records"] for r in wait_for_reports(setup, 1, timeout=60)] == [150]
