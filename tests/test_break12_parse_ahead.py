"""Adversarial checks of stage one's parse-ahead (`FoldProcessor.prepare` in the runner's
`drift-parse` thread) on the real broker: a backlog read in batches of 7 (every fetch has many
batches prepared ahead while the previous fetch folds), with bad and too-large messages mixed
in, while one worker is SIGKILLed, one added, one stopped with SIGTERM and started again. Every
window report must equal `replay` of the good records, every bad message must reach the
dead-letter topic with its source coordinates, and the clean stop must be prompt and clean.
"""

from __future__ import annotations

import json
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
    assert_dead_lettered,
    history,
    replayed,
    stress_env,
    wait_for_reports,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MAX_BYTES = 1500
PARTITIONS = 4


def env() -> dict[str, str]:
    return stress_env(7, MAX_BYTES)


def produce_with_bad(topic: str, messages: list[bytes], seed: int,
                     events: dict[int, Callable[[], object]]) -> tuple[
        list[bytes], set[tuple[int, int]]]:
    """Every message to a random partition, in bursts of about 150 (each fetch brings many
    batches of 7), with bad JSON, arrays of three good records and messages too large mixed
    in; `events[k]` runs before burst k. Returns (what replay reads, (partition, offset) of
    each bad message)."""
    rng = np.random.default_rng(seed)
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    good: list[bytes] = []
    bad_futures = []
    try:
        i = burst = 0
        while i < len(messages):
            if burst in events:
                events.pop(burst)()
            end = min(len(messages), i + 150)
            while i < end:
                p = int(rng.integers(0, PARTITIONS))
                roll = rng.random()
                if roll < 0.03:
                    bad_futures.append(producer.send(topic, b"{oops %d" % i, partition=p))
                elif roll < 0.05:
                    record = json.loads(messages[i])
                    record["pad"] = "p" * (MAX_BYTES + 10)
                    bad_futures.append(producer.send(topic, json.dumps(record).encode(),
                                                     partition=p))
                elif roll < 0.10 and i + 3 <= end:  # an array of three good records
                    producer.send(topic, b"[" + b",".join(messages[i:i + 3]) + b"]",
                                  partition=p)
                    good += messages[i:i + 3]
                    i += 3
                    continue
                producer.send(topic, messages[i], partition=p)
                good.append(messages[i])
                i += 1
            producer.flush(timeout=30)
            burst += 1
            time.sleep(0.4)  # the pace of the stream, not a wait for a condition
        bad = {(f.get().partition, f.get().offset) for f in bad_futures}
    finally:
        producer.close()
    return good, bad


def test_a_backlog_in_batches_of_7_through_kills_adds_and_a_clean_stop(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    setup = make_setup(PARTITIONS)
    make_profile(setup.model, setup.profiles)
    messages = history(setup.model, windows=6, per_window=400, seed=1201, drift_from=4)
    workers = [setup.worker(f"w{i}", **env()) for i in range(2)]
    stops: list[tuple[int, float]] = []

    def restart() -> None:
        began = time.monotonic()
        stops.append((workers[0].stop(), time.monotonic() - began))
        workers.append(setup.worker("w0-again", **env()))

    # The restart runs beside the stream (a stream paused longer than the idle time would make
    # later records late, where replay has them on time).
    restarting = threading.Thread(target=restart)
    events: dict[int, Callable[[], object]] = {
        3: workers[1].kill,
        6: lambda: workers.append(setup.worker("w2", **env())),
        10: restarting.start}
    good, bad = produce_with_bad(setup.predictions, messages, seed=1202, events=events)
    restarting.join(timeout=60)
    assert not events and bad
    (code, took), = stops
    assert code == 0 and took < 15, f"SIGTERM: exit {code} after {took:.1f} s"
    assert "stopping the worker" not in workers[0].log()
    expected = replayed(setup.profiles, good, setup.env(**env()))
    assert wait_for_reports(setup, len(expected)) == expected
    assert_dead_lettered(setup, bad)
