"""Checkpoints of several partitions loaded at once (a rebalance assigns them together): each
partition gets its own checkpoint, a zombie's late write stays fenced off, and the loads share
a bounded pool of readers, on the real broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from support.kafka import BOOTSTRAP, Setup

from monitor.ingest.records import ModelKey
from monitor.service.outlet import Outlet
from monitor.service.state_store import LOAD_READERS, Binding, Loaded, StateStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PARTITIONS = 4
GENERATION = 3


def no_refresh(key: ModelKey) -> dict[str, Any] | None:
    raise AssertionError(f"no unchanged model to rewrite here ({key})")


async def new_reader() -> AIOKafkaConsumer:
    reader = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None,
                              enable_auto_commit=False, fetch_max_wait_ms=10)
    await reader.start()
    return reader


async def write_and_load(topic: str) -> tuple[list[Loaded | None], int, Loaded | None, int]:
    outlet = Outlet(lambda: AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all"))
    await outlet.start()
    binding = Binding("predictions", "topic-id", "group", PARTITIONS)
    stores: list[StateStore] = []
    try:
        owner = StateStore(outlet, new_reader, topic, binding)
        zombie = StateStore(outlet, new_reader, topic, binding)
        fresh = StateStore(outlet, new_reader, topic, binding)
        stores += [owner, zombie, fresh]
        for p in range(PARTITIONS):  # two checkpoints each: the newer one counts
            for step in (1, 2):
                await owner.save(p, 100 * p + step, {"partition": p, "step": step},
                                 {(f"m{p}", "1"): {"partition": p, "step": step}},
                                 GENERATION, no_refresh)
        # The previous owner of partition 2, not yet aware it lost it, writes after the new
        # owner's last checkpoint: older generation, so ignored.
        await zombie.save(2, 999, {"partition": 2, "zombie": True},
                          {("m2", "1"): {"partition": 2, "zombie": True}}, GENERATION - 1,
                          no_refresh)
        loaded = await asyncio.gather(*(fresh.load(p) for p in range(PARTITIONS)))
        readers_at_once = len(fresh.readers)
        again = await fresh.load(1)  # an idle reader of the pool serves a later load
        return loaded, readers_at_once, again, len(fresh.readers)
    finally:
        for store in stores:
            for reader in store.readers:
                await reader.stop()
        await outlet.stop()


def test_partitions_loaded_at_once_each_get_their_own_checkpoint_and_zombies_stay_fenced(
        setup: Setup) -> None:
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.create_topics([NewTopic(setup.state, PARTITIONS, 1)])
    finally:
        admin.close()
    loaded, readers_at_once, again, readers_after = asyncio.run(write_and_load(setup.state))
    for p, checkpoint in enumerate(loaded):
        assert checkpoint is not None, p
        assert (checkpoint.offset, checkpoint.generation, checkpoint.header) == (
            100 * p + 2, GENERATION, {"partition": p, "step": 2}), p
        assert checkpoint.models == {(f"m{p}", "1"): {"partition": p, "step": 2,
                                                      "offset": 100 * p + 2}}, p
    # The loads ran side by side, each with a reader of its own (a bounded number of them)...
    assert 1 < readers_at_once <= LOAD_READERS
    # ... and a later load takes an idle one rather than making another.
    assert again is not None and again.offset == 102
    assert readers_after == readers_at_once
