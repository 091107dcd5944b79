"""The predictions topic changing under a running worker: partitions added while it runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewPartitions
from kafka.errors import TopicAlreadyExistsError
from support.kafka import (
    Setup,
    history,
    produce,
    produce_spread,
    replayed,
    wait_for_reports,
    wait_until,
)

from monitor.stream.event_time import SUPPORT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ENV = {"DRIFT_MONITOR_WINDOW_SECONDS": "10", "DRIFT_MONITOR_IDLE_SECONDS": "2"}


def test_partitions_added_while_running_are_loaded_read_and_checkpointed(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    """Two partitions become four under a running worker: once its consumer has noticed them
    (metadata_max_age_ms, 30 s), their records are folded in (stage one's state topic grows to
    match, as at a restart) and every window equals `replay`. Before, loading partition 2 timed
    out again and again on the missing state partition: its records were never read, the lag
    stayed, and kafka_connected said the broker was down."""
    setup = make_setup(2)
    make_profile(setup.model, setup.profiles)
    messages = history(setup.model, windows=4, per_window=200, seed=11)
    # Windows close on the records' times alone here: records of window 6 on every partition at
    # the end (as many as the event-time clock needs to trust: one record alone does not move it). (A quiet partition caught up follows the wall clock after the idle time: the
    # records of these hours-old windows reaching it afterwards would be late, so whether they
    # counted would depend on which partition's records were folded first.)
    closers = history(setup.model, windows=1, per_window=4 * SUPPORT, seed=12, first=6)
    env = {**ENV, "DRIFT_MONITOR_IDLE_SECONDS": "3600"}
    expected = replayed(setup.profiles, messages + closers, setup.env(**env))[:4]
    produce_spread(setup.predictions, messages[:400], 2, seed=1)
    worker = setup.worker("growing", **env)
    wait_until(lambda: worker.metrics()["records_processed"] == 400, 60, "400 records folded")
    admin = KafkaAdminClient(bootstrap_servers=setup.bootstrap)
    try:
        admin.create_partitions({setup.predictions: NewPartitions(4)})
    finally:
        admin.close()
    # 4 predictions + 2 partials partitions, each loaded (partitions not loaded are not ready)
    wait_until(lambda: worker.metrics()["partitions_assigned"] == 6
               and worker.http("/ready")[0] == 200, 60, "the new partitions assigned, loaded")
    produce_spread(setup.predictions, messages[400:], 4, seed=2)
    for p in range(4):
        produce(setup.predictions, closers[p::4], key=None, partition=p)
    got = wait_for_reports(setup, 4, timeout=60)
    assert got[:4] == expected
    m = wait_until(lambda: (m := worker.metrics())["consumer_lag"] == 0 and m, 30, "no lag")
    assert m["records_processed"] == 800 + len(closers)
    assert m["kafka_failures"] == 0 and m["kafka_connected"] == 1
    assert "state topic" in worker.log() and "grown to match" in worker.log()


def test_a_predictions_topic_deleted_and_created_again_stops_the_worker_and_loses_nothing(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    """The topic deleted under a running worker comes back (the local broker creates topics a
    client asks for; or an operator recreates it): before, the stages kept the old topic's
    offsets, skipped the new topic's first records as already read, and said lag 0 and ready.
    Now the worker stops with one line; the next reads the new topic from its beginning."""
    setup = make_setup(2)
    make_profile(setup.model, setup.profiles)
    produce_spread(setup.predictions, history(setup.model, windows=2, per_window=200, seed=1),
                   2, seed=1)
    worker = setup.worker("deleted-under", **ENV)
    wait_for_reports(setup, 2, timeout=60)
    admin = KafkaAdminClient(bootstrap_servers=setup.bootstrap)
    try:
        admin.delete_topics([setup.predictions])
        wait_until(lambda: setup.predictions not in admin.list_topics()
                   or worker.proc.poll() is not None, 30, "the topic deleted")  # type: ignore[union-attr]
    finally:
        admin.close()
    try:
        setup.create_predictions()
    except TopicAlreadyExistsError:  # created again by the consumers' metadata requests
        pass
    messages = history(setup.model, windows=2, per_window=200, seed=2, first=4)
    produce_spread(setup.predictions, messages, 2, seed=2)
    assert wait_until(lambda: worker.proc.poll() is not None, 60,  # type: ignore[union-attr]
                      "the worker to stop") == 1
    assert "was deleted and created again while the worker ran" in worker.log()
    after = setup.worker("after-recreate", **ENV)
    got = wait_for_reports(setup, 4, timeout=60)
    assert [r["records"] for r in got[2:]] == [200, 200]
    m = wait_until(lambda: (m := after.metrics())["consumer_lag"] == 0 and m, 30, "no lag")
    assert m["records_processed"] == 400
