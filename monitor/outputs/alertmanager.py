"""drift-monitor alert events as Prometheus Alertmanager alerts (API v2 `postableAlerts`; pure).

Alertmanager identifies an alert by its labels: `alertname` (from the episode kind), `model`,
`version`, `feature` (left out for model-level episodes), `severity` and `source`
(`drift-monitor`, which the forwarder uses to find its own alerts again). So:

* `firing` and `persistent` events post the alert active until `expire_after` seconds from now
  (the forwarder refreshes its active alerts well before that, see
  `monitor.service.alertmanager`);
* an escalation (`firing` with a `previous_severity`) ends the alert of the previous severity
  and starts the one of the new severity: severity is a label, so they are two alerts;
* `resolved` ends the alert (`endsAt` = the end of the window that resolved it).

>>> event = {"status": "firing", "severity": "critical", "previous_severity": None,
...          "model": "churn", "version": "3", "feature": "age", "episode": "drift",
...          "alert_id": "9f1c", "since": "2026-11-26T12:00:00.000Z",
...          "window_end": "2026-11-26T12:01:00.000Z", "profile_id": "sha256:ab",
...          "message": "[churn v3] age: mean up 1.0 std vs training, critical",
...          "checks": [{"check": "mean_shift", "value": 1.0, "threshold": 0.3,
...                      "severity": "critical"}]}
>>> (posted,) = postable(event, now=parse_time("2026-11-26T12:01:02Z"), expire_after=3600)
>>> posted["labels"]
{'alertname': 'DriftDetected', 'source': 'drift-monitor', 'model': 'churn', 'version': '3', 'severity': 'critical', 'feature': 'age'}
>>> posted["startsAt"], posted["endsAt"]
('2026-11-26T12:00:00.000Z', '2026-11-26T13:01:02.000Z')
>>> posted["annotations"]["checks"]
'mean_shift 1 > 0.3 (critical)'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

SOURCE = "drift-monitor"
ALERTNAMES = {
    "drift": "DriftDetected",
    "trend": "DriftTrend",
    "edge_record_rate": "EdgeRecords",
    "missing_feature": "FeatureMissing",
    "unexpected_features": "UnexpectedFeatures",
    "no_profile": "NoProfile",
}
REQUIRED = ("status", "severity", "model", "version", "alert_id", "since", "window_end")


class NotAnAlert(ValueError):
    """A message on the alert topic that is not a drift-monitor alert event."""


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as aware UTC ('Z' allowed)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def labels(alert: dict[str, Any], severity: str | None = None) -> dict[str, str]:
    """The labels that identify the episode's alert in Alertmanager (at `severity`)."""
    out = {"alertname": ALERTNAMES.get(alert.get("episode") or "drift", "DriftDetected"),
           "source": SOURCE, "model": str(alert["model"]), "version": str(alert["version"]),
           "severity": str(severity or alert["severity"])}
    if alert.get("feature"):
        out["feature"] = str(alert["feature"])
    return out


def _number(x: Any) -> str:
    return "-" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def annotations(alert: dict[str, Any]) -> dict[str, str]:
    checks = "; ".join(f"{c.get('check')} {_number(c.get('value'))} > "
                       f"{_number(c.get('threshold'))} ({c.get('severity')})"
                       for c in alert.get("checks") or [])
    out = {"message": str(alert.get("message", "")), "profile_id": str(alert.get("profile_id", "")),
           "alert_id": str(alert["alert_id"]), "since": str(alert["since"]),
           "checks": checks}
    if alert.get("status") == "persistent":
        out["persistent"] = "the inputs have moved for good: retrain or build a new profile"
    return {k: v for k, v in out.items() if v}


def postable(alert: dict[str, Any], *, now: datetime, expire_after: float) -> list[dict[str, Any]]:
    """The Alertmanager alerts one alert event posts, in order."""
    missing = [k for k in REQUIRED if alert.get(k) in (None, "")]
    if missing:
        raise NotAnAlert(f"missing {', '.join(missing)}")
    status = alert["status"]
    if status not in ("firing", "persistent", "resolved"):
        raise NotAnAlert(f"unknown status {status!r}")
    try:
        since, window_end = parse_time(alert["since"]), parse_time(alert["window_end"])
    except (TypeError, ValueError) as exc:
        raise NotAnAlert(f"bad time: {exc}") from None
    starts = min(since, now)
    ended = max(starts, min(window_end, now))  # never before it started, never in the future
    notes = annotations(alert)

    def one(severity: str | None, ends: datetime) -> dict[str, Any]:
        return {"labels": labels(alert, severity), "annotations": notes,
                "startsAt": format_time(starts), "endsAt": format_time(ends)}

    if status == "resolved":
        return [one(None, ended)]
    out = []
    if status == "firing" and alert.get("previous_severity"):
        out.append(one(alert["previous_severity"], ended))
    out.append(one(None, now + timedelta(seconds=expire_after)))
    return out


def refreshed(active: dict[str, Any], *, now: datetime, expire_after: float) -> dict[str, Any]:
    """An active alert as Alertmanager lists it (GET /api/v2/alerts), posted again to stay
    active for `expire_after` more seconds.

    >>> refreshed({"labels": {"alertname": "DriftDetected"}, "annotations": {"message": "m"},
    ...            "startsAt": "2026-11-26T12:00:00.000Z", "endsAt": "2026-11-26T13:00:00.000Z",
    ...            "status": {"state": "active"}, "fingerprint": "ab"},
    ...           now=parse_time("2026-11-26T12:30:00Z"), expire_after=3600)["endsAt"]
    '2026-11-26T13:30:00.000Z'
    """
    return {"labels": active["labels"], "annotations": active.get("annotations", {}),
            "startsAt": active["startsAt"],
            "endsAt": format_time(now + timedelta(seconds=expire_after))}
