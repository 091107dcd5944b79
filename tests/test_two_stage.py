"""The two stages without Kafka: any split of the records over input partitions gives the same
window reports as one partition (and as `replay`), and the merger's bookkeeping is idempotent."""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pytest

from monitor.demo.synthetic import Scenario, generate_columns, records
from monitor.ingest.records import parse_messages
from monitor.profile.model import Profile
from monitor.stream.config import EngineConfig
from monitor.stream.engine import Engine, Evaluated
from monitor.stream.folder import PartitionFolder
from monitor.stream.merger import WindowMerger
from monitor.stream.messages import decode, encode

T0 = 1_764_158_400.0
CONFIG = dict(window_seconds=60, grace_seconds=2, min_records=100)


def _stream(seed: int, windows: int = 6, per_window: int = 400) -> list[bytes]:
    """Two models, in time order, drift in `age` from window 3 on."""
    rng = np.random.default_rng(seed)
    out = []
    for w in range(windows):
        for model in ("churn", "other"):
            n = per_window if model == "churn" else per_window // 4
            ts = T0 + 60 * w + np.sort(rng.uniform(0, 60, n))
            scenario = Scenario(mean_shift=1.0) if w >= 3 and model == "churn" else None
            out += [(t, orjson.dumps(r)) for t, r in zip(
                ts, records(generate_columns(n, rng, scenario), model=model, version="3", ts=ts),
                strict=True)]
    return [m for _, m in sorted(out, key=lambda x: x[0])]


def _lookup(profile: Profile):
    other = Profile.from_json(profile.to_json())
    other.model = "other"
    other.profile_id = other.compute_id()
    return lambda m, v: {("churn", "3"): profile, ("other", "3"): other}.get((m, v))


def _reports(items) -> list[dict]:
    """Window reports as JSON, per model in window order (models close in any order)."""
    reports = [json.loads(json.dumps(e.report.to_dict())) for e in items
               if isinstance(e, Evaluated)]
    return sorted(reports, key=lambda r: (r["model"], r["version"], r["window_start"]))


def _replay(profile: Profile, messages: list[bytes], batch: int = 500) -> list[dict]:
    engine = Engine(_lookup(profile), EngineConfig(**CONFIG))
    out = []
    for i in range(0, len(messages), batch):
        out += engine.ingest(parse_messages(messages[i:i + batch]))
    return _reports(out + engine.flush())


def _partitioned(profile: Profile, messages: list[bytes], partitions: int, seed: int,
                 batch: int = 97) -> list[dict]:
    """Each message to a random partition; partitions take turns folding small batches; every
    message between the stages goes through the wire codec, some of them twice."""
    config = EngineConfig(**CONFIG)
    lookup = _lookup(profile)
    rng = np.random.default_rng(seed)
    assignment = rng.integers(0, partitions, len(messages))
    queues = [[m for m, p in zip(messages, assignment, strict=True) if p == q]
              for q in range(partitions)]
    folders = [PartitionFolder(q, lookup, config, sources=partitions) for q in range(partitions)]
    merger = WindowMerger(lookup, config)
    out = []

    def exchange(folder: PartitionFolder) -> None:
        sent = [*folder.take_partials(), *folder.progress().values()]
        folder.sent()
        wire = [decode(encode(m)) for m in sent]
        merger.receive(wire)
        if rng.random() < 0.3:  # a resend after a restart: must change nothing
            merger.receive([decode(encode(m)) for m in sent])
        out.extend(merger.evaluate_due())

    cursors = [0] * partitions
    while any(c < len(q) for c, q in zip(cursors, queues, strict=True)):
        for q, folder in enumerate(folders):
            chunk = queues[q][cursors[q]:cursors[q] + batch]
            cursors[q] += len(chunk)
            if chunk:
                folder.fold(parse_messages(chunk))
            exchange(folder)
    for folder in folders:
        folder.flush()
        exchange(folder)
    return _reports(out + merger.finish())


@pytest.mark.parametrize("partitions,seed", [(1, 1), (4, 2), (3, 3)])
def test_any_partitioning_gives_the_replay_reports(profile: Profile, partitions: int,
                                                   seed: int) -> None:
    messages = _stream(seed)
    replayed = _replay(profile, messages)
    assert [(r["model"], r["records"]) for r in replayed] == [("churn", 400)] * 6 + [
        ("other", 100)] * 6
    assert _partitioned(profile, messages, partitions, seed) == replayed


def test_a_window_waits_for_every_partition(profile: Profile) -> None:
    config = EngineConfig(**CONFIG)
    lookup = _lookup(profile)
    messages = _stream(5, windows=2)
    early, late = PartitionFolder(0, lookup, config, sources=2), \
        PartitionFolder(1, lookup, config, sources=2)
    merger = WindowMerger(lookup, config)
    early.fold(parse_messages(messages))  # partition 0 is done with both windows
    merger.receive([*early.take_partials(), *early.progress().values()])
    assert merger.evaluate_due() == []  # partition 1 has not said anything yet
    late.fold(parse_messages(messages[:10]))
    merger.receive(late.progress().values())
    assert merger.watermark(("churn", "3")) < T0 + 60
    assert merger.evaluate_due() == []


def test_the_watermark_of_a_partition_without_the_model_is_its_default(profile: Profile) -> None:
    config = EngineConfig(**CONFIG)
    lookup = _lookup(profile)
    busy, other = (PartitionFolder(q, lookup, config, sources=2) for q in (0, 1))
    churn_only = [m for m in _stream(6, windows=3) if b'"churn"' in m]
    busy.fold(parse_messages(churn_only))
    other.fold(parse_messages([m for m in _stream(7, windows=3) if b'"other"' in m]))
    merger = WindowMerger(lookup, config)
    merger.receive([*busy.take_partials(), *busy.progress().values(), *other.progress().values()])
    assert ("churn", "3") not in other.progress()[0].models
    assert merger.watermark(("churn", "3")) == min(busy.progress()[0].models[("churn", "3")],
                                                   other.progress()[0].default)
    reports = _reports(merger.evaluate_due())
    assert [r["records"] for r in reports if r["model"] == "churn"] == [400, 400]


def test_late_model_in_a_partition_keeps_its_own_watermark(profile: Profile) -> None:
    """A model whose logs arrive two minutes late, next to a real-time one in the same
    partition: none of its records is late."""
    config = EngineConfig(**CONFIG)
    lookup = _lookup(profile)
    rng = np.random.default_rng(8)
    folder = PartitionFolder(0, lookup, config)
    merger = WindowMerger(lookup, config)
    out = []
    for second in range(0, 600, 10):  # a batch every 10 s, late model 120 s behind
        now = T0 + second
        realtime = records(generate_columns(50, rng), model="churn", version="3",
                           ts=now - 10 + np.sort(rng.uniform(0, 10, 50)))
        delayed = records(generate_columns(50, rng), model="other", version="3",
                          ts=now - 130 + np.sort(rng.uniform(0, 10, 50)))
        folder.fold(parse_messages([orjson.dumps(r) for r in [*realtime, *delayed]]),
                    wall=now)
        folder.advance(now + 5, caught_up=True)
        merger.receive([*folder.take_partials(), *folder.progress(now + 5,
                                                                  caught_up=True).values()])
        folder.sent()
        out += merger.evaluate_due()
    assert folder.counts.late == {}
    other = [(r["records"], r["late_records"]) for r in _reports(out) if r["model"] == "other"]
    # Whole minutes of its traffic (5 records/s), the first one partly before the stream began.
    assert len(other) >= 6 and other[1:] == [(300, 0)] * (len(other) - 1), other


def test_a_record_from_tomorrow_does_not_close_windows(profile: Profile) -> None:
    config = EngineConfig(**CONFIG)
    folder = PartitionFolder(0, _lookup(profile), config)
    messages = [m for m in _stream(9, windows=1) if b'"churn"' in m]
    tomorrow = json.loads(messages[10])
    tomorrow["ts"] = T0 + 86_400
    folder.fold(parse_messages(messages[:50] + [orjson.dumps(tomorrow)]))
    assert folder.take_partials() == []  # nothing closed: one record cannot move event time
    refused = folder.fold(parse_messages([orjson.dumps(tomorrow)]), wall=T0 + 60)
    assert [r.reason.split(" (")[0] for r in refused] == ["ts too far in the future"]


def test_ancient_and_huge_timestamps_never_raise(profile: Profile) -> None:
    engine = Engine(_lookup(profile), EngineConfig(**CONFIG))
    base = json.loads([m for m in _stream(10, windows=1) if b'"churn"' in m][0])
    odd = [dict(base, ts=ts) for ts in (-1e13, 1e15, 0.0, -62135596800.0, 253402300799.0)]
    out = engine.ingest(parse_messages([orjson.dumps(r) for r in odd]))
    out += engine.flush()
    assert engine.stats.records + engine.stats.late + engine.stats.invalid == len(odd)
    assert all(math.isfinite(e.report.start) for e in out if isinstance(e, Evaluated))


def _rebuilt(profile: Profile) -> Profile:
    """The same model and version with a different profile (as after `profile build` again)."""
    other = Profile.from_json(profile.to_json())
    other.false_alarm_rate /= 2
    other.profile_id = other.compute_id()
    return other


def test_a_profile_replaced_mid_window_loses_no_record(profile: Profile) -> None:
    """The open window keeps the profile it began with; later windows use the new one."""
    current = {"p": profile}
    by_id = {profile.profile_id: profile}
    lookup = lambda m, v: current["p"] if (m, v) == ("churn", "3") else None  # noqa: E731
    config = EngineConfig(**CONFIG)
    folder = PartitionFolder(0, lookup, config)
    merger = WindowMerger(lookup, config, profile_by_id=by_id.get)
    messages = [m for m in _stream(12, windows=3) if b'"churn"' in m]
    folder.fold(parse_messages(messages[:200]))  # half of window 0
    replacement = _rebuilt(profile)
    current["p"] = by_id[replacement.profile_id] = replacement
    folder.fold(parse_messages(messages[200:]))
    folder.flush()
    merger.receive([*folder.take_partials(), *folder.progress().values()])
    reports = _reports(merger.finish())
    assert [r["records"] for r in reports] == [400, 400, 400]
    assert [r["profile_id"] for r in reports] == [profile.profile_id] + [
        replacement.profile_id] * 2


def test_a_removed_profile_ends_its_open_alerts(profile: Profile) -> None:
    current: dict[str, Profile | None] = {"p": profile}
    lookup = lambda m, v: current["p"] if (m, v) == ("churn", "3") else None  # noqa: E731
    config = EngineConfig(**CONFIG, trend=False)
    folder = PartitionFolder(0, lookup, config)
    merger = WindowMerger(lookup, config, profile_by_id={profile.profile_id: profile}.get)
    rng = np.random.default_rng(13)
    drifted = records(generate_columns(400, rng, Scenario(mean_shift=2.0)), model="churn",
                      version="3", ts=T0 + np.sort(rng.uniform(0, 60, 400)))
    after = records(generate_columns(400, rng), model="churn", version="3",
                    ts=T0 + 60 + np.sort(rng.uniform(0, 60, 400)))
    folder.fold(parse_messages([orjson.dumps(r) for r in drifted + after]))
    merger.receive([*folder.take_partials(), *folder.progress().values()])
    firing = [a for e in merger.evaluate_due() if isinstance(e, Evaluated) for a in e.alerts]
    assert firing and all(a.status == "firing" for a in firing)
    current["p"] = None  # the profile file is removed
    folder.flush()
    merger.receive([*folder.take_partials(), *folder.progress().values()])
    out = merger.finish()
    resolved = [a for a in out if not isinstance(a, Evaluated) and a.status == "resolved"]
    assert {a.alert_id for a in resolved} == {a.alert_id for a in firing}
    assert "profile was removed" in resolved[0].message
    assert ("churn", "3") not in merger.models


def _exchange(folders: list[PartitionFolder], merger: WindowMerger) -> list:
    for folder in folders:
        merger.receive([decode(encode(m)) for m in
                        [*folder.take_partials(), *folder.progress().values()]])
        folder.sent()
    return merger.evaluate_due()


def test_a_recreated_topic_with_fewer_partitions_is_a_new_stream(profile: Profile) -> None:
    """The same windows produced again into a topic created again with 2 partitions (was 4):
    they are evaluated (not taken for repeats), and nobody waits for partitions 2 and 3."""
    config = EngineConfig(**CONFIG)
    lookup = _lookup(profile)
    messages = [m for m in _stream(14, windows=3) if b'"churn"' in m]
    merger = WindowMerger(lookup, config)
    old = [PartitionFolder(q, lookup, config, sources=4, stream="id-1") for q in range(4)]
    for q, folder in enumerate(old):
        folder.fold(parse_messages(messages[q::4]))
        folder.flush()
    first = _reports(_exchange(old, merger))
    assert [r["records"] for r in first] == [400, 400, 400]
    new = [PartitionFolder(q, lookup, config, sources=2, stream="id-2") for q in range(2)]
    for q, folder in enumerate(new):
        folder.fold(parse_messages(messages[q::2]))
    out = _exchange(new, merger)
    for folder in new:
        folder.flush()
    out += _exchange(new, merger)
    assert _reports(out) == first  # the same records give the same windows again
    # A straggler of the old stream changes nothing.
    merger.receive([decode(encode(old[3].progress()[0]))])
    assert merger.n_sources == 2 and merger.foreign == 1


def test_partitions_added_to_the_input_are_waited_for(profile: Profile) -> None:
    config = EngineConfig(**CONFIG)
    lookup = _lookup(profile)
    messages = [m for m in _stream(15, windows=2) if b'"churn"' in m]
    share = [messages[q::3] for q in range(3)]
    merger = WindowMerger(lookup, config)
    two = [PartitionFolder(q, lookup, config, sources=2) for q in range(2)]
    for q, folder in enumerate(two):
        folder.fold(parse_messages(share[q][:50]))
    _exchange(two, merger)
    two[0].sources = two[1].sources = 3  # a partition was added while running
    added = PartitionFolder(2, lookup, config, sources=3)
    for q, folder in enumerate(two):
        folder.fold(parse_messages(share[q][50:]))
    assert _reports(_exchange(two, merger)) == []  # partition 2 has not reported yet
    added.fold(parse_messages(share[2]))
    assert [r["records"] for r in _reports(_exchange([added], merger))] == [400]
