"""Adversarial checks of the pipelined fetch (fold one fetch while the next is read): small
batches, workers killed, added and stopped while records stream in, with messages too large,
tombstones and array messages mixed in. Every window report must equal `replay` of the same
records, and every bad message must reach the dead-letter topic (at least once).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MAX_BYTES = 2000


def env() -> dict[str, str]:
    return stress_env(7, MAX_BYTES)


def mixed(messages: list[bytes], seed: int) -> tuple[list[bytes | None], list[bytes], set[int]]:
    """(what is produced, what replay reads, indexes of produced messages that are dead
    letters): arrays of 2-4 records, tombstones and records padded over MAX_BYTES mixed in."""
    rng = np.random.default_rng(seed)
    sent: list[bytes | None] = []
    replay: list[bytes] = []
    bad: set[int] = set()
    i = 0
    while i < len(messages):
        roll = rng.random()
        if roll < 0.04:
            bad.add(len(sent))
            sent.append(None)
            replay.append(b"")
        elif roll < 0.08:
            record = json.loads(messages[i])
            record["id"] = f"big{i}"
            record["pad"] = "p" * (MAX_BYTES + 100)
            bad.add(len(sent))
            sent.append(json.dumps(record).encode())
        elif roll < 0.18:
            n = int(rng.integers(2, 5))
            array = b"[" + b",".join(messages[i:i + n]) + b"]"
            sent.append(array)
            replay.append(array)
            i += n
        else:
            sent.append(messages[i])
            replay.append(messages[i])
            i += 1
    return sent, replay, bad


def test_small_batches_rebalances_kills_and_stops_with_bad_messages_mixed_in(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    setup = make_setup(6)
    make_profile(setup.model, setup.profiles)
    sent, replay_input, bad = mixed(history(setup.model, windows=8, per_window=200, seed=71,
                                            drift_from=5), seed=72)
    expected = replayed(setup.profiles, replay_input, setup.env(**env()))
    workers = [setup.worker(f"w{i}", **env()) for i in range(3)]
    events = {len(sent) * 2 // 10: lambda: workers[1].kill(),
              len(sent) * 35 // 100: lambda: workers.append(setup.worker("w3", **env())),
              len(sent) * 5 // 10: lambda: (workers[0].stop(), workers.append(
                  setup.worker("w0-again", **env()))),
              len(sent) * 7 // 10: lambda: workers[2].kill(),
              len(sent) * 8 // 10: lambda: workers.append(setup.worker("w4", **env()))}
    rng = np.random.default_rng(73)
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5,
                             max_request_size=1 << 20)
    futures: list[Any] = []
    started = time.monotonic()
    try:
        for i, value in enumerate(sent):
            if i in events:
                events.pop(i)()
            wait = started + i / 200 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            futures.append(producer.send(setup.predictions, value, key=b"k" if value is None
                                         else None, partition=int(rng.integers(0, 6))))
        producer.flush(timeout=30)
    finally:
        producer.close()
    assert not events
    coords = {(f.get().partition, f.get().offset) for f in futures}
    bad_coords = {(futures[i].get().partition, futures[i].get().offset) for i in bad}
    assert len(coords) == len(sent)
    assert wait_for_reports(setup, len(expected)) == expected
    assert_dead_lettered(setup, bad_coords)
