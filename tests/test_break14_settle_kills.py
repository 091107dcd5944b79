"""Adversarial checks of the settles run beside the fold (`StageRunner._settle_later`): twelve
partitions, batches of 3 (every fetch has dozens of batches, and a window closes on every
partition in the same fetch), bad messages in the same bursts as the window closes, workers
SIGKILLed while settles are in flight, one joining and one leaving with SIGTERM. Window reports
must equal `replay`, alerts (deduped on alert_id, status, severity, as the README says) must be
replay's, and every bad message must be dead-lettered with its source coordinates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer
from support.kafka import (
    BOOTSTRAP,
    Setup,
    alerts_in,
    assert_dead_lettered,
    history,
    replayed_with_alerts,
    stress_env,
    wait_for_reports,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PARTITIONS = 12
MAX_BYTES = 1500


def env() -> dict[str, str]:
    return stress_env(3, MAX_BYTES)


def produce(topic: str, messages: list[bytes], seed: int,
            events: dict[int, Callable[[], object]],
            soon: dict[int, tuple[float, Callable[[], object]]] | None = None,
            ) -> tuple[list[bytes], set[tuple[int, int]]]:
    """Bursts of 120 records, each spread round-robin over every partition (a window closes on
    all of them in one fetch); a bad message on half the partitions in each burst; `events[k]`
    runs before burst k; `soon[k] = (delay, f)`: f runs `delay` seconds after burst k is
    flushed (while the workers fold it and settle its partitions)."""
    soon = {} if soon is None else soon
    timers = []
    rng = np.random.default_rng(seed)
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=20)
    good: list[bytes] = []
    bad_futures = []
    try:
        burst = 0
        for start in range(0, len(messages), 120):
            if burst in events:
                events.pop(burst)()
            chunk = messages[start:start + 120]
            for j, message in enumerate(chunk):
                p = j % PARTITIONS
                producer.send(topic, message, partition=p)
                good.append(message)
                if j < PARTITIONS and rng.random() < 0.5:
                    bad_futures.append(producer.send(topic, b"{oops %d" % start, partition=p))
            producer.flush(timeout=30)
            if burst in soon:
                delay, action = soon.pop(burst)
                timers.append(threading.Timer(delay, action))
                timers[-1].start()
            burst += 1
            time.sleep(0.25)  # the pace of the stream, not a wait for a condition
        bad = {(f.get().partition, f.get().offset) for f in bad_futures}
        for timer in timers:
            timer.join()
    finally:
        producer.close()
    return good, bad


def test_kills_while_every_partition_settles_lose_and_double_nothing(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    setup = make_setup(PARTITIONS)
    make_profile(setup.model, setup.profiles)
    messages = history(setup.model, windows=8, per_window=360, seed=1401, drift_from=3)
    workers = [setup.worker(f"w{i}", **env()) for i in range(2)]
    stops: list[tuple[int, float]] = []

    def restart() -> None:
        began = time.monotonic()
        stops.append((workers[2].stop(), time.monotonic() - began))
        workers.append(setup.worker("w2-again", **env()))

    restarting = threading.Thread(target=restart)
    events: dict[int, Callable[[], object]] = {
        3: workers[0].kill,
        6: lambda: workers.append(setup.worker("w2", **env())),
        9: workers[1].kill,
        11: lambda: workers.append(setup.worker("w3", **env())),
        15: restarting.start,
        20: lambda: workers[3].kill()}
    good, bad = produce(setup.predictions, messages, seed=1402, events=events)
    restarting.join(timeout=60)
    assert not events and bad
    (code, took), = stops
    assert code == 0 and took < 15, f"SIGTERM: exit {code} after {took:.1f} s"
    expected, expected_alerts = replayed_with_alerts(setup.profiles, good, setup.env(**env()))
    assert wait_for_reports(setup, len(expected)) == expected
    assert_dead_lettered(setup, bad)
    assert expected_alerts
    wait_until(lambda: alerts_of(setup) >= expected_alerts, 30, "every alert of replay")
    assert alerts_of(setup) == expected_alerts


@pytest.mark.parametrize("seed", [1410])
def test_kills_landing_inside_a_bursts_settles(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path],
        seed: int) -> None:
    """SIGKILLs a few hundredths of a second after a burst that closes windows on every
    partition: the fold and its dozens of settle tasks are in flight."""
    setup = make_setup(PARTITIONS)
    make_profile(setup.model, setup.profiles)
    messages = history(setup.model, windows=8, per_window=360, seed=seed, drift_from=3)
    workers = [setup.worker(f"w{i}", **env()) for i in range(2)]
    rng = np.random.default_rng(seed)
    soon = {k: (float(rng.uniform(0.01, 0.12)), (lambda i=i: workers[i].kill()))
            for k, i in ((3, 0), (9, 1), (15, 2), (21, 3))}
    events: dict[int, Callable[[], object]] = {
        4: lambda: workers.append(setup.worker("w2", **env())),
        10: lambda: workers.append(setup.worker("w3", **env())),
        16: lambda: workers.append(setup.worker("w4", **env()))}
    good, bad = produce(setup.predictions, messages, seed + 1, events, soon)
    assert not events and not soon and bad
    expected, expected_alerts = replayed_with_alerts(setup.profiles, good, setup.env(**env()))
    assert wait_for_reports(setup, len(expected)) == expected
    assert_dead_lettered(setup, bad)
    assert expected_alerts
    wait_until(lambda: alerts_of(setup) >= expected_alerts, 30, "every alert of replay")
    assert alerts_of(setup) == expected_alerts


def alerts_of(setup: Setup) -> set[tuple[str, str, str]]:
    return {(a["alert_id"], a["status"], a["severity"]) for a in alerts_in(setup.alerts)
            if a["model"] == setup.model}
