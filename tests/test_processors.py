"""The worker's synchronous processors without Kafka: Kafka records in, decisions out."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import orjson

from monitor.demo.synthetic import Scenario, generate_columns, records
from monitor.ingest.records import parse_messages
from monitor.profile.model import Profile
from monitor.service.stage_one import FoldProcessor
from monitor.service.stage_two import MergeProcessor
from monitor.stream.config import EngineConfig
from monitor.stream.folder import PartitionFolder
from monitor.stream.merger import WindowMerger
from monitor.stream.messages import decode, encode

T0 = 1_764_158_400.0
CONFIG = EngineConfig(window_seconds=60, grace_seconds=1, min_records=100, trend=False)


@dataclass
class Record:  # the fields of aiokafka's ConsumerRecord the processors read
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def kafka_records(messages: list[bytes], first_offset: int = 0) -> list[Record]:
    return [Record("predictions", 0, first_offset + i, None, m) for i, m in enumerate(messages)]


def minute(rng: np.random.Generator, w: int, n: int = 300, shift: float = 0.0) -> list[bytes]:
    ts = T0 + 60 * w + np.sort(rng.uniform(0, 60, n))
    scenario = Scenario(mean_shift=shift) if shift else None
    return [orjson.dumps(r) for r in records(generate_columns(n, rng, scenario), model="churn",
                                             version="3", ts=ts)]


def fold_processor(profile: Profile) -> FoldProcessor:
    folder = PartitionFolder(0, lambda m, v: profile if m == "churn" else None, CONFIG)
    return FoldProcessor(0, folder, partials_partitions=2, route=lambda model: 1)


def test_records_a_checkpoint_covers_are_skipped(profile: Profile) -> None:
    rng = np.random.default_rng(1)
    processor = fold_processor(profile)
    batch = kafka_records(minute(rng, 0, 100))
    processor.process(batch, wall=T0 + 70)
    processor.process(batch[50:], wall=T0 + 71)  # redelivered after a restart
    assert processor.stats()["records_processed"] == 100
    assert processor.offset == 99


def test_bad_records_become_dead_letters_with_their_source(profile: Profile) -> None:
    rng = np.random.default_rng(2)
    good = minute(rng, 0, 20)
    tomorrow = dict(json.loads(good[0]), ts=T0 + 86_400)
    batch = kafka_records([*good[:10], b"{oops", orjson.dumps(tomorrow), *good[10:]])
    step = fold_processor(profile).process(batch, wall=T0 + 30)
    letters = sorted((d.record.offset, d.reason.split(" (")[0].split(":")[0])
                     for d in step.dead_letters)
    assert letters == [(10, "not valid JSON"), (11, "ts too far in the future")]


def test_a_closed_window_goes_out_once_after_its_checkpoint(profile: Profile) -> None:
    rng = np.random.default_rng(3)
    processor = fold_processor(profile)
    assert processor.process(kafka_records(minute(rng, 0)), wall=T0 + 61).urgent  # first marks
    processor.header_state()
    processor.delivered()
    assert not processor.process(kafka_records(minute(rng, 0, 10), 300), wall=T0 + 62).urgent
    step = processor.process(kafka_records(minute(rng, 1), 310), wall=T0 + 121)
    assert step.urgent  # window 0 closed here: checkpoint and send now
    processor.header_state()  # the runner's checkpoint
    outgoing = processor.outbox()
    kinds = [(m.partition, type(decode(m.value)).__name__) for m in outgoing]
    assert kinds == [(1, "Partial"), (0, "Progress"), (1, "Progress")]
    assert decode(outgoing[0].value).window["records"] == 310
    processor.delivered()
    assert not processor.has_outbox()
    assert processor.model_state(("churn", "3"))["outbox"] == []


def test_progress_sent_is_never_ahead_of_the_checkpoint(profile: Profile) -> None:
    rng = np.random.default_rng(4)
    processor = fold_processor(profile)
    processor.process(kafka_records(minute(rng, 0)), wall=T0 + 61)
    processor.header_state()  # checkpoint now: watermark in window 0
    processor.process(kafka_records(minute(rng, 1), 300), wall=T0 + 121)  # not checkpointed
    progress = [decode(m.value) for m in processor.outbox()]
    marks = [p.models[("churn", "3")] for p in progress if hasattr(p, "models") and p.models]
    assert marks and max(marks) < T0 + 60


def merge_processor(profile: Profile, max_points: int) -> MergeProcessor:
    lookup = lambda m, v: profile if m == "churn" else None  # noqa: E731
    return MergeProcessor(0, WindowMerger(lookup, CONFIG), max_points=max_points,
                          profiles=lookup, reports=True)


def partials_of(profile: Profile, windows: int, shift_from: int) -> list[Record]:
    """What stage one sends for `windows` minutes of one partition's traffic."""
    rng = np.random.default_rng(5)
    folder = PartitionFolder(0, lambda m, v: profile, CONFIG)
    for w in range(windows):
        folder.fold(parse_messages(minute(rng, w, shift=2.0 if w >= shift_from else 0.0)))
    folder.flush()
    out = [encode(m) for m in [*folder.take_partials(), *folder.progress().values()]]
    return [Record("partials", 0, i, None, v) for i, v in enumerate(out)]


def test_evaluated_windows_wait_in_the_outbox_until_delivered(profile: Profile) -> None:
    processor = merge_processor(profile, max_points=10_000)
    step = processor.process(partials_of(profile, 3, shift_from=1), wall=0.0)
    assert step.urgent
    assert [r["records"] for r in processor.reports()] == [300, 300, 300]
    firing = [a for a in processor.alerts() if a["status"] == "firing"]
    assert firing and {a["feature"] for a in firing} >= {"age"}
    points = processor.points()
    assert any(p.startswith("drift_window,") for p in points)
    restored_state = processor.model_state(("churn", "3"))
    assert restored_state["pending"]["points"]  # in the checkpoint until the store took them
    processor.alerts_delivered()
    processor.points_delivered()
    processor.reports_delivered()
    assert not processor.has_outbox()


def test_a_full_outbox_drops_the_oldest_windows_points_and_counts_them(profile: Profile) -> None:
    small = merge_processor(profile, max_points=10_000)
    small.process(partials_of(profile, 3, shift_from=9), wall=0.0)
    per_window = small.outbox_points() // 3
    bounded = merge_processor(profile, max_points=2 * per_window)
    bounded.process(partials_of(profile, 3, shift_from=9), wall=0.0)
    assert bounded.outbox_points() == 2 * per_window
    assert bounded.stats()["metric_points_dropped"] == per_window
    kept = {int(line.rsplit(" ", 1)[1]) for line in bounded.points()
            if line.startswith("drift_window,")}
    assert kept == {int((T0 + 120) * 1e9), int((T0 + 180) * 1e9)}  # the two newest windows


def test_a_retired_models_resolutions_go_after_its_last_windows_alerts(profile: Profile) -> None:
    """The profile is removed while the model drifts: the last window's `firing` comes before
    the `resolved` that ends it, so a consumer keeps the episode closed."""
    current: dict[str, Profile | None] = {"p": profile}
    lookup = lambda m, v: current["p"] if m == "churn" else None  # noqa: E731
    processor = MergeProcessor(0, WindowMerger(lookup, CONFIG, profile_by_id={
        profile.profile_id: profile}.get), max_points=10_000, profiles=lookup)
    partials = partials_of(profile, 2, shift_from=1)
    current["p"] = None  # removed before stage two evaluates the drifting window
    processor.process(partials, wall=0.0)
    events = [(a["status"], a["episode"]) for a in processor.alerts() if a["feature"] == "age"]
    assert events and events[-1][0] == "resolved"
    assert [s for s, _ in events].index("resolved") > [s for s, _ in events].index("firing")
