"""Adversarial checks of stage one's in-place fetch reading (`raw_fetch`): one predictions
topic written by plain, gzip and transactional producers (committed and aborted transactions,
so control batches and aborted records, which read-uncommitted counts), with keys, headers,
tombstones, bad JSON and messages too large mixed in, read by workers fetching one batch at a
time (DRIFT_MONITOR_BATCH_SIZE 1). Every window report must equal `replay` of the records in
the order they were written, and every bad message must reach the dead-letter topic with its
source partition, offset and key.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
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

MAX_BYTES = 2000
PARTITIONS = 4


def env() -> dict[str, str]:
    return stress_env(1, MAX_BYTES)


Sent = tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int]  # key, value, headers, p


def mixed(messages: list[bytes], seed: int) -> tuple[list[Sent], list[bytes], set[int]]:
    """(what is produced, what replay reads, indexes of dead letters)."""
    rng = np.random.default_rng(seed)
    sent: list[Sent] = []
    replay: list[bytes] = []
    bad: set[int] = set()
    for i, message in enumerate(messages):
        p = int(rng.integers(0, PARTITIONS))
        roll = rng.random()
        headers = [("h", b"v%d" % i)] if rng.random() < 0.3 else []
        key = b"k%d" % i if rng.random() < 0.5 else None
        if roll < 0.03:
            bad.add(len(sent))
            sent.append((b"tomb%d" % i, None, headers, p))
        elif roll < 0.06:
            bad.add(len(sent))
            sent.append((key, b"{not json %d" % i, headers, p))
        elif roll < 0.08:
            record = json.loads(message)
            record["pad"] = "p" * (MAX_BYTES + 100)
            bad.add(len(sent))
            sent.append((key, json.dumps(record).encode(), headers, p))
        sent.append((key, message, headers, p))
        replay.append(message)
    return sent, replay, bad


async def produce_mixed(topic: str, sent: list[Sent], seed: int,
                        events: dict[int, Callable[[], Any]] | None = None,
                        pace: float = 0.0) -> tuple[
        list[tuple[int, int]], set[int]]:
    """Each chunk of `sent` by a plain, a gzip or a transactional producer (a transaction
    committed or aborted), in order: the (partition, offset) of each, and the indexes of
    those aborted."""
    rng = np.random.default_rng(seed)
    coords: list[tuple[int, int]] = []
    aborted: set[int] = set()
    plain = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    gzip = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5,
                         compression_type="gzip")
    txn = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP,
                           transactional_id=f"break11-{uuid.uuid4().hex[:8]}")
    await txn.start()
    try:
        i = 0
        while i < len(sent):
            for at in sorted(events or {}):
                if at <= i:
                    events.pop(at)()  # type: ignore[union-attr]
            if pace:
                await asyncio.sleep(pace)
            chunk = sent[i:i + int(rng.integers(5, 60))]
            kind = rng.choice(["plain", "gzip", "commit", "abort"])
            if kind in ("plain", "gzip"):
                producer = plain if kind == "plain" else gzip
                futures = [producer.send(topic, v, key=k, headers=h, partition=p)
                           for k, v, h, p in chunk]
                producer.flush(timeout=30)
                coords += [(f.get().partition, f.get().offset) for f in futures]
            else:
                await txn.begin_transaction()
                futures = [await txn.send(topic, v, key=k, headers=h, partition=p)
                           for k, v, h, p in chunk]
                if kind == "commit":
                    await txn.commit_transaction()
                else:
                    await txn.abort_transaction()
                    aborted.update(range(i, i + len(chunk)))
                for f in futures:
                    meta = await f
                    coords.append((meta.partition, meta.offset))
            i += len(chunk)
    finally:
        await txn.stop()
        plain.close()
        gzip.close()
    return coords, aborted


def test_mixed_producers_and_transactions_read_in_place_as_replay_reads_them(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    setup = make_setup(PARTITIONS)
    make_profile(setup.model, setup.profiles)
    sent, replay_input, bad = mixed(history(setup.model, windows=6, per_window=150, seed=111,
                                            drift_from=4), seed=112)
    expected = replayed(setup.profiles, replay_input, setup.env(**env()))
    worker = setup.worker("w0", **env())
    coords, aborted = asyncio.run(produce_mixed(setup.predictions, sent, seed=113))
    assert len(set(coords)) == len(sent)
    assert aborted and aborted != set(range(len(sent)))
    assert wait_for_reports(setup, len(expected)) == expected

    assert_dead_lettered(setup, {(*coords[i], sent[i][0]) for i in bad}, keys=True)
    assert "reads its fetches in place" in worker.log()


def test_mixed_producers_with_workers_killed_added_and_stopped_mid_stream(
        make_setup: Callable[..., Setup], make_profile: Callable[[str, Path], Path]) -> None:
    """The same mix, streamed while one worker is killed (its partitions restart from their
    checkpoints, in the middle of record batches and transactions), one added and one stopped."""
    setup = make_setup(PARTITIONS)
    make_profile(setup.model, setup.profiles)
    sent, replay_input, bad = mixed(history(setup.model, windows=8, per_window=150, seed=121,
                                            drift_from=5), seed=122)
    expected = replayed(setup.profiles, replay_input, setup.env(**env()))
    workers = [setup.worker(f"w{i}", **env()) for i in range(2)]
    n = len(sent)
    events = {n * 2 // 10: lambda: workers[1].kill(),
              n * 4 // 10: lambda: workers.append(setup.worker("w2", **env())),
              n * 6 // 10: lambda: workers[0].kill(),
              n * 7 // 10: lambda: workers.append(setup.worker("w3", **env())),
              n * 8 // 10: lambda: workers[2].stop()}
    coords, aborted = asyncio.run(produce_mixed(setup.predictions, sent, seed=123,
                                                events=events, pace=0.05))
    assert not events
    assert len(set(coords)) == len(sent)
    assert wait_for_reports(setup, len(expected)) == expected
    assert_dead_lettered(setup, {(*coords[i], sent[i][0]) for i in bad}, keys=True)
