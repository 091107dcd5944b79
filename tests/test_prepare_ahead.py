"""Stage one parses a fetch's batches ahead (`FoldProcessor.prepare`, in the runner's parse
thread) while the previous fetch is folded: whatever happened between the preparation and the
fold (a redelivered overlap folded meanwhile, profiles reloaded, the partition given to another
processor), folding what was prepared gives what folding the records themselves gives."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.profile.model import Profile
from monitor.profile.store import ProfileStore
from monitor.service.stage_one import FoldProcessor
from monitor.stream.folder import PartitionFolder
from tests.test_processors import CONFIG, T0, kafka_records, minute
from tests.test_raw_fetch import fetched_of


def store_processor(directory: Path) -> FoldProcessor:
    folder = PartitionFolder(0, ProfileStore(directory), CONFIG)
    return FoldProcessor(0, folder, partials_partitions=2, route=lambda model: 1,
                         max_message_bytes=1000)


def outcome(p: FoldProcessor, steps: list[Any]) -> tuple[Any, ...]:
    p.header_state()
    letters = [(d.record.offset, d.reason, d.raw[:20]) for s in steps for d in s.dead_letters]
    return p.offset, p.stats(), letters, [m.value for m in p.outbox()]


@pytest.mark.parametrize("batch_of", [kafka_records, fetched_of], ids=["records", "fetched"])
@pytest.mark.parametrize("cut", [300, 250], ids=["next records", "50 redelivered"])
def test_a_batch_prepared_before_the_previous_one_folded_folds_as_its_records(
        profile: Profile, tmp_path: Path, batch_of: Any, cut: int) -> None:
    profile.save(tmp_path / "churn-3.json")
    rng = np.random.default_rng(3)
    good = minute(rng, 0, 400) + minute(rng, 1, 400)
    tomorrow = orjson.dumps(dict(json.loads(good[0]), ts=T0 + 86_400))
    records = batch_of([*good[:100], b"{oops", tomorrow, b"x" * 2000, *good[100:]], 10)
    first, second = records[:300], records[cut:]

    plain = store_processor(tmp_path)
    expected = outcome(plain, [plain.process(first, T0 + 61), plain.process(second, T0 + 121)])

    ahead = store_processor(tmp_path)
    prepared = ahead.prepare(second)  # while `first` is still to be folded
    got = outcome(ahead, [ahead.process(first, T0 + 61), ahead.process(prepared, T0 + 121)])
    assert got == expected
    counted = got[1]["records_processed"] + got[1]["invalid_records"]
    assert counted == len(records)  # each message once, the 50 redelivered included


def test_a_batch_prepared_before_profiles_reloaded_is_read_with_the_new_ones(
        profile: Profile, tmp_path: Path) -> None:
    """A profile that gains a feature between the preparation and the fold: the records'
    values of that feature are summarised (the preparation's decoder did not read them)."""
    narrow = dataclasses.replace(profile, features={
        name: f for name, f in profile.features.items() if name != "age"}, profile_id="")
    narrow.save(tmp_path / "churn-3.json")
    p = store_processor(tmp_path)
    batch = kafka_records(minute(np.random.default_rng(4), 0, 200))
    prepared = p.prepare(batch)
    profile.save(tmp_path / "churn-3.json")
    assert p.folder.profiles.refresh()
    p.process(prepared, T0 + 61)
    (state,) = (p.model_state(key) for key in p.take_dirty())
    (window,) = state["windows"]
    assert window["features"]["age"]["count"] == 200


def test_a_batch_prepared_by_a_processor_let_go_is_prepared_again_by_its_successor(
        profile: Profile, tmp_path: Path) -> None:
    """A partition revoked and assigned again between the fetch and the fold gets a new
    processor (restored from the checkpoint), whose offset the old one's preparation ignored."""
    profile.save(tmp_path / "churn-3.json")
    batch = kafka_records(minute(np.random.default_rng(5), 0, 200))
    old = store_processor(tmp_path)
    prepared = old.prepare(batch)
    new = store_processor(tmp_path)
    new.folder.offset = 149  # its checkpoint covers the first 150
    new.process(prepared, T0 + 61)
    assert new.stats()["records_processed"] == 50
    assert old.stats()["records_processed"] == 0
