"""No record can bloat the engine's state or its alerts: huge values are clipped and bounded."""

from __future__ import annotations

import json

import numpy as np
import orjson

from monitor.demo.synthetic import generate_columns, records
from monitor.ingest.records import parse_messages
from monitor.outputs.render import jsonable
from monitor.profile.model import Profile
from monitor.stream.alerts import Alert
from monitor.stream.engine import Engine, EngineConfig, Evaluated

T0 = 1_764_158_400.0


def _engine(profile: Profile) -> Engine:
    return Engine(lambda m, v: profile if (m, v) == ("churn", "3") else None,
                  EngineConfig(window_seconds=60, grace_seconds=0, min_records=200, trend=False))


def _huge_values(rng: np.random.Generator, n: int, start: float) -> list[bytes]:
    cols = generate_columns(n, rng)
    cols["state"] = [f"{i}-{start}" + "S" * 32_768 for i in range(n)]  # all new, all 32 kB
    ts = start + np.sort(rng.uniform(0, 60, n))
    return [orjson.dumps(r) for r in records(cols, model="churn", version="3", ts=ts)]


def test_1000_records_of_32kb_values_make_a_small_checkpoint(profile: Profile) -> None:
    """Was 18.7 MB (over the 16 MB checkpoint limit) for the same records."""
    engine = _engine(profile)
    engine.ingest(parse_messages(_huge_values(np.random.default_rng(1), 1000, T0)))
    size = len(json.dumps(engine.to_state()))
    assert size < 300_000, size
    window = next(iter(engine.folder.models.values())).windows[T0]
    assert window.features["state"].unseen_total == 1000  # every value still counted


def test_alerts_on_huge_values_stay_far_below_the_topic_limit(profile: Profile) -> None:
    engine = _engine(profile)
    rng = np.random.default_rng(2)
    out = engine.ingest(parse_messages(_huge_values(rng, 400, T0)))
    out += engine.ingest(parse_messages(_huge_values(rng, 400, T0 + 60)))
    out += engine.flush()
    alerts = [a for e in out if isinstance(e, Evaluated) for a in e.alerts] + \
        [a for a in out if isinstance(a, Alert)]
    novelty = [a for a in alerts if a.feature == "state" and a.check == "novelty_rate"]
    assert novelty, [a.check for a in alerts]
    sizes = [len(json.dumps(jsonable(a.to_dict()))) for a in alerts]
    assert max(sizes) < 20_000, max(sizes)  # Kafka's default message limit is 1 MB
    assert "chars)" in json.dumps(novelty[0].to_dict())  # the clipped value says its length


def test_what_a_window_dropped_is_a_metric_of_the_window(profile: Profile) -> None:
    from monitor.outputs.line_protocol import report_points

    engine = _engine(profile)
    out = engine.ingest(parse_messages(_huge_values(np.random.default_rng(3), 400, T0)))
    out += engine.flush()
    report = next(e.report for e in out if isinstance(e, Evaluated))
    assert report.dropped_values >= 400  # every value clipped, most not tracked by value
    window_line = next(p for p in report_points(report) if p.startswith("drift_window,"))
    assert f"dropped_values={float(report.dropped_values)!r}" in window_line
