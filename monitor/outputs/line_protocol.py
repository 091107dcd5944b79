r"""Window reports, alerts and worker counters as InfluxDB line protocol (pure).

The measurement, field and tag names here (`METRICS`, `TAGS`) are the one metric contract: the
Grafana dashboards may query only these (`monitor.dashboards.influxql.contract_violations`, run
on every generated query by the tests) and README's Metrics section names each of them (a test
too). Every numeric
field is written as a float (never an `i` integer), so one field never changes type between
points, which InfluxDB would reject. Timestamps are nanoseconds; a window's points carry the
window's end.

>>> escape_tag("a b,c=d")
'a\\ b\\,c\\=d'
>>> line("drift_window", {"model": "churn", "version": "3", "empty": ""},
...      {"records": 250, "late": None, "note": 'say "hi"'}, 2.0)
'drift_window,model=churn,version=3 note="say \\"hi\\"",records=250.0 2000000000'
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from monitor.drift.checks import Severity
from monitor.drift.evaluate import WindowReport
from monitor.drift.metrics import DESCRIPTIVE
from monitor.drift.registry import checks_for, threshold_fields
from monitor.ingest.schema import Kind
from monitor.profile.model import Profile
from monitor.stream.alerts import Alert

# Every check of the registry is a field, with its threshold as `threshold_<check>`.
_FEATURE_FIELDS = frozenset().union(
    *(DESCRIPTIVE[kind] | set(checks_for(kind)) for kind in Kind)) | threshold_fields()

# Measurement -> every field name the worker writes. Dashboards may query only these.
METRICS: dict[str, frozenset[str]] = {
    "drift_feature": frozenset(
        _FEATURE_FIELDS | {"severity", "worst_check"}),
    "drift_language": frozenset({"share", "training_share"}),
    "drift_window": frozenset({
        "records", "invalid_records", "late_records", "edge_record_rate", "alerts_firing",
        "features_warning", "features_critical", "missing_features", "unexpected_features",
        "window_seconds", "dropped_values"}),
    "drift_alert": frozenset({"value", "threshold", "message", "alert_id"}),
    "drift_episode": frozenset({"alert_id", "status", "severity", "message", "end_ms"}),
    "drift_service": frozenset({
        "records_processed", "records_per_second", "invalid_records", "dlq_messages",
        "late_records", "consumer_lag", "metric_write_failures", "metric_points_buffered",
        "metric_points_dropped", "windows_evaluated", "checkpoint_bytes", "open_windows",
        "models_held", "alerts_sent", "records_too_large", "kafka_failures", "partials_lag",
        "alerts_firing", "partitions_assigned", "kafka_connected", "metrics_store_up",
        "ready"}),
}
# Measurement -> tag keys (an empty tag value is left out of the line, as line protocol wants).
TAGS: dict[str, tuple[str, ...]] = {
    "drift_feature": ("model", "version", "feature", "kind", "profile"),
    "drift_language": ("model", "version", "feature", "language"),
    "drift_window": ("model", "version"),
    "drift_alert": ("model", "version", "feature", "check", "severity", "status"),
    "drift_episode": ("model", "version", "feature", "episode"),
    "drift_service": ("worker",),
}


def escape_tag(value: str) -> str:
    """A tag key, tag value or field key: commas, equals signs and spaces escaped."""
    return (value.replace("\\", "\\\\").replace("\n", " ").replace(",", "\\,")
            .replace("=", "\\=").replace(" ", "\\ "))


def escape_string(value: str) -> str:
    """A string field value, without its surrounding quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def number(value: Any) -> float | None:
    """A finite float from an int, float or numpy number (never a bool), else None."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def ns(ts: float) -> int:
    return int(round(ts * 1e9))


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any],
         ts: float) -> str | None:
    """One point; None when no field has a value (line protocol needs at least one)."""
    tag_text = "".join(f",{escape_tag(k)}={escape_tag(str(v))}"
                       for k, v in sorted(tags.items()) if v not in (None, ""))
    parts = []
    for key, value in sorted(fields.items()):
        if isinstance(value, str):
            parts.append(f'{escape_tag(key)}="{escape_string(value)}"')
        else:
            x = number(value)
            if x is not None:
                parts.append(f"{escape_tag(key)}={x!r}")
    if not parts:
        return None
    name = measurement.replace(",", "\\,").replace(" ", "\\ ")
    return f"{name}{tag_text} {','.join(parts)} {ns(ts)}"


def _new_values(pairs: Any) -> str:
    return ",".join(f"{v}:{n}" for v, n in pairs or [])


def report_points(report: WindowReport, profile: Profile | None = None, *,
                  alerts_firing: int | None = None) -> list[str]:
    """drift_feature, drift_language (text features) and drift_window points of one window.

    `profile` gives the training language shares; `alerts_firing` the number of this model's
    alerts open after the window (defaults to the features at warning or worse)."""
    out: list[str | None] = []
    ts = report.end
    base = {"model": report.model, "version": report.version}
    warning = critical = 0
    for name, feature in report.features.items():
        severity = feature.severity
        warning += severity == Severity.WARNING
        critical += severity == Severity.CRITICAL
        fields: dict[str, Any] = {k: v for k, v in feature.metrics.items()
                                  if number(v) is not None}
        fields["severity"] = int(severity)
        fields["worst_check"] = feature.worst_check
        for check, threshold in feature.thresholds.items():
            fields[f"threshold_{check}"] = threshold
        if feature.kind is Kind.CATEGORICAL:
            fields["new_values"] = _new_values(feature.metrics.get("new_values"))
        out.append(line("drift_feature", {**base, "feature": name, "kind": str(feature.kind),
                                          "profile": report.profile_id}, fields, ts))
        if feature.kind is Kind.TEXT:
            counts = feature.metrics.get("languages") or {}
            sampled = feature.metrics.get("sampled") or sum(counts.values())
            training = (profile.features[name].languages
                        if profile is not None and name in profile.features else {})
            for language in sorted(set(counts) | set(training)):
                share = counts.get(language, 0) / sampled if sampled else 0.0
                out.append(line("drift_language", {**base, "feature": name,
                                                   "language": language},
                                {"share": share,
                                 "training_share": training.get(language, 0.0)}, ts))
    out.append(line("drift_window", base, {
        "records": report.records,
        "invalid_records": report.invalid,
        "late_records": report.late,
        "edge_record_rate": report.edge_record_rate,
        "alerts_firing": alerts_firing if alerts_firing is not None else warning + critical,
        "features_warning": warning,
        "features_critical": critical,
        "missing_features": len(report.missing_features),
        "unexpected_features": len(report.unexpected_features),
        "window_seconds": report.end - report.start,
        "dropped_values": report.dropped_values,
    }, ts))
    return [p for p in out if p is not None]


def _time(text: str, now: float) -> float:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return now
    return ts if ts > 0 else now  # a no_profile alert restored from an old checkpoint


def alert_points(alerts: Iterable[Alert], now: float | None = None) -> list[str]:
    """One drift_alert point per alert event (fired, escalated, persistent, resolved), at its
    window's end; `check`, `value` and `threshold` are those of the check the alert leads with
    (every failing check's own value is in drift_feature). Then each event's drift_episode
    point (`episode_point`).
    """
    now = time.time() if now is None else now
    alerts = list(alerts)
    out = []
    for a in alerts:
        point = line("drift_alert", {
            "model": a.model, "version": a.version, "feature": a.feature, "check": a.check,
            "severity": a.severity, "status": a.status,
        }, {"value": a.value, "threshold": a.threshold, "message": a.message,
            "alert_id": a.alert_id}, _time(a.window_end, now))
        if point is not None:
            out.append(point)
    return out + [episode_point(a, now) for a in alerts]


def episode_point(alert: Alert, now: float | None = None) -> str:
    """The drift_episode point of the alert's episode: one series and time (the episode's start)
    per episode, so every event of the episode rewrites the same point with its status, severity
    and message, and the resolution adds `end_ms` (epoch milliseconds of the first clean window's
    start). A dashboard draws a resolved episode as a region from its time to `end_ms`.

    >>> from monitor.stream.alerts import Alert
    >>> a = Alert("id1", "resolved", "critical", None, "churn", "3", "age", "drift", "psi", 0.4,
    ...           0.1, [], "2026-01-01T00:02:00Z", "2026-01-01T00:03:00Z",
    ...           "2026-01-01T00:00:00Z", 3, "sha256:p", "age: back to normal")
    >>> episode_point(a)  # doctest: +NORMALIZE_WHITESPACE
    'drift_episode,episode=drift,feature=age,model=churn,version=3 alert_id="id1",end_ms=1767225720000.0,message="age: back to normal",severity="critical",status="resolved" 1767225600000000000'
    """
    now = time.time() if now is None else now
    fields: dict[str, Any] = {"alert_id": alert.alert_id, "status": alert.status,
                              "severity": alert.severity, "message": alert.message}
    if alert.status == "resolved":
        fields["end_ms"] = _time(alert.window_start, now) * 1000
    point = line("drift_episode", {"model": alert.model, "version": alert.version,
                                   "feature": alert.feature, "episode": alert.episode},
                 fields, _time(alert.since, now))
    assert point is not None
    return point


def service_point(worker: str, stats: Mapping[str, Any], ts: float | None = None) -> str:
    """The drift_service point: the worker's counters (names in METRICS['drift_service']).

    >>> service_point("w1", {"records_processed": 10, "bogus": 1}, 1.0)
    'drift_service,worker=w1 records_processed=10.0 1000000000'
    """
    fields = {k: v for k, v in stats.items() if k in METRICS["drift_service"]}
    point = line("drift_service", {"worker": worker}, fields or {"records_processed": 0},
                 time.time() if ts is None else ts)
    assert point is not None
    return point
