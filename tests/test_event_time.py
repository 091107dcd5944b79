"""Event time that odd records cannot break, and figures that do not depend on batching."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from monitor.demo.synthetic import generate_columns, records
from monitor.ingest.records import parse_messages
from monitor.profile.model import Profile
from monitor.stream.config import EngineConfig
from monitor.stream.engine import Engine, Evaluated
from monitor.stream.folder import PartitionFolder

T0 = 1_764_158_400.0
CONFIG = dict(window_seconds=60, grace_seconds=2, min_records=50)


def _messages(rng: np.random.Generator, ts: np.ndarray) -> list[bytes]:
    return [orjson.dumps(r) for r in records(generate_columns(len(ts), rng), model="churn",
                                             version="3", ts=ts)]


def _run(profile: Profile, messages: list[bytes], batch: int) -> tuple[list[dict], int]:
    engine = Engine(lambda m, v: profile if m == "churn" else None, EngineConfig(**CONFIG))
    out = []
    for i in range(0, len(messages), batch):
        out += engine.ingest(parse_messages(messages[i:i + batch]))
    out += engine.flush()
    reports = [json.loads(json.dumps(e.report.to_dict())) for e in out
               if isinstance(e, Evaluated)]
    for r in reports:  # which window a late record is tallied on depends on timing
        r.pop("late_records")
        r.pop("invalid_records")
    return reports, engine.stats.late


def test_late_records_do_not_depend_on_how_the_stream_is_batched(profile: Profile) -> None:
    """Records arriving out of order: a record is late when its window closed before it came,
    whether the stream is read one record at a time or 5,000 at a time."""
    rng = np.random.default_rng(1)
    ts = T0 + np.sort(rng.uniform(0, 600, 3000))
    jitter = rng.random(3000) < 0.05  # 5% arrive up to 90 s late
    ts[jitter] -= rng.uniform(0, 90, jitter.sum())
    messages = _messages(rng, ts)
    one_by_one = _run(profile, messages, 1)
    assert one_by_one[1] > 0  # some are late, by construction
    for batch in (97, 1000, 5000):
        assert _run(profile, messages, batch) == one_by_one, batch


def test_records_ahead_of_their_models_traffic_are_refused(profile: Profile) -> None:
    """Three records stamped four minutes ahead, then the real-time traffic goes on: the three
    are dead letters, the rest is not late."""
    rng = np.random.default_rng(2)
    folder = PartitionFolder(0, lambda m, v: profile, EngineConfig(**CONFIG))
    now = T0
    folder.fold(parse_messages(_messages(rng, now - 30 + np.sort(rng.uniform(0, 30, 200)))),
                wall=now)
    refused = folder.fold(parse_messages(_messages(rng, np.full(3, now + 250.0))), wall=now + 1)
    assert [r.reason.split(" (")[0] for r in refused] == ["ts too far in the future"] * 3
    assert "np." not in refused[0].reason
    for second in range(2, 120, 2):
        folder.fold(parse_messages(_messages(rng, now + second - 2 + rng.uniform(0, 2, 20))),
                    wall=now + second)
    assert folder.counts.late == {}


def test_a_model_whose_clock_runs_ahead_stays_accepted(profile: Profile) -> None:
    rng = np.random.default_rng(3)
    folder = PartitionFolder(0, lambda m, v: profile, EngineConfig(**CONFIG))
    refused = []
    for second in range(0, 300, 5):  # stamped 100 s ahead of the wall clock, steadily
        refused += folder.fold(parse_messages(_messages(rng, T0 + 100 + second + np.sort(
            rng.uniform(0, 5, 10)))), wall=T0 + second)
    assert len(refused) <= 10  # only the very first records, before its pace is known
    assert folder.records >= 590


def test_a_stray_old_record_is_not_stretched_into_a_days_long_window(profile: Profile) -> None:
    rng = np.random.default_rng(4)
    stray = _messages(rng, np.array([T0 - 6 * 86_400.0]))
    normal = _messages(rng, T0 + np.sort(rng.uniform(0, 120, 400)))
    reports, _ = _run(profile, stray + normal, 5000)
    starts = sorted(r["window_start"] for r in reports)
    assert starts == [T0 - 6 * 86_400.0, T0, T0 + 60]
    stray_report = next(r for r in reports if r["window_start"] < T0)
    assert stray_report["records"] == 1 and not stray_report["distribution_checks"]


@pytest.mark.parametrize("ts", [-1e13, 1e15, -62135596800.0, 253402300799.0])
def test_far_timestamps_are_counted_and_never_raise(profile: Profile, ts: float) -> None:
    rng = np.random.default_rng(5)
    engine = Engine(lambda m, v: profile, EngineConfig(**CONFIG))
    messages = _messages(rng, T0 + np.sort(rng.uniform(0, 60, 100)))
    odd = json.loads(messages[50])
    odd["ts"] = ts
    out = engine.ingest(parse_messages([*messages, orjson.dumps(odd)])) + engine.flush()
    stats = engine.stats
    assert stats.records + stats.late + stats.invalid == 101
    assert sum(e.report.records for e in out if isinstance(e, Evaluated)) == stats.records
