"""One metric contract: `monitor.outputs.line_protocol` names what the worker writes, the
dashboards query only that (tests/test_dashboards.py) and README's Metrics section names all of
it; alert episodes are one drift_episode point each."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.outputs.line_protocol import METRICS, TAGS, alert_points
from monitor.stream.alerts import Alert

README = Path(__file__).resolve().parent.parent / "README.md"


def _metrics_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]


def test_readme_metrics_section_names_every_measurement_field_and_tag() -> None:
    named = set(re.findall(r"`([a-z0-9_<>]+)`", _metrics_section()))
    named |= {f"threshold_{c}" for c in named}  # "`threshold_<check>` for each check"
    missing = {(m, f) for m, fields in METRICS.items() for f in fields if f not in named}
    missing |= {(m, None) for m in METRICS if m not in named}
    missing |= {(m, t) for m, tags in TAGS.items() for t in tags
                if t not in " ".join(re.findall(r"tags?\s+`([^`]+)`", _metrics_section()))}
    assert not missing, sorted(missing, key=str)


def _alert(status: str, severity: str, window_start: str, window_end: str) -> Alert:
    return Alert("ep1", status, severity, None, "churn", "3", "age", "drift", "psi", 0.4, 0.1, [],
                 window_start, window_end, "2026-01-01T00:00:00Z", 3, "sha256:p", f"age {status}")


def test_every_event_of_an_episode_rewrites_one_drift_episode_point_at_its_start() -> None:
    events = [_alert("firing", "warning", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
              _alert("firing", "critical", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"),
              _alert("resolved", "critical", "2026-01-01T00:04:00Z", "2026-01-01T00:05:00Z")]
    episode = [p for p in alert_points(events) if p.startswith("drift_episode,")]
    assert len(episode) == 3
    series_and_time = {(p.split(" ")[0], p.split(" ")[-1]) for p in episode}
    assert series_and_time == {("drift_episode,episode=drift,feature=age,model=churn,version=3",
                                "1767225600000000000")}  # the episode's start, 00:00:00
    assert "end_ms" not in episode[0] and "end_ms" not in episode[1]
    assert 'severity="critical",status="resolved"' in episode[2]
    assert "end_ms=1767225840000.0" in episode[2]  # the first clean window's start, 00:04:00
