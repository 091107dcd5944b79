"""Human-readable renderings of window reports and alerts (for `check`, `replay`, `alerts tail`)."""

from __future__ import annotations

import math
from typing import Any

from monitor.drift.evaluate import FeatureReport, WindowReport
from monitor.drift.registry import checks_for
from monitor.ingest.schema import Kind

# Per kind: a descriptive metric first, then every check of the registry but the rarely useful
# type-mismatch rate (it is a finding when it matters).
_LEAD = {Kind.NUMERIC: ("count", "mean"), Kind.CATEGORICAL: ("count",),
         Kind.TEXT: ("count", "length_mean")}
_COLUMNS = {kind: (*_LEAD[kind], *(c for c in checks_for(kind) if c != "type_mismatch_rate"))
            for kind in Kind}


def jsonable(value: Any) -> Any:
    """A copy safe for strict JSON: NaN and infinities become None, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(report: WindowReport) -> str:
    lines = [f"model {report.model} version {report.version}  profile {report.profile_id}  "
             f"records {report.records}  edge_record_rate {report.edge_record_rate:.2%}"]
    for kind, metrics in _COLUMNS.items():
        rows = [r for r in report.features.values() if r.kind is kind]
        if not rows:
            continue
        power = any(r.detectable for r in rows)
        header = ["feature", "severity", *metrics, *(["detects"] if power else [])]
        table = [header] + [[r.name, str(r.severity), *(_fmt(r.metrics.get(m)) for m in metrics),
                             *([_detects(r)] if power else [])]
                            for r in sorted(rows, key=lambda r: r.name)]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines.append("")
        lines.append(f"{kind} features")
        for row in table:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    if any(r.detectable for r in report.features.values()):
        lines.append("")
        lines.append("detects: the smallest mean shift (in training std) found with 80% power at "
                     "this window's size against this profile (mean_shift check)")
    findings = sorted(report.findings, key=lambda f: (-f.severity, f.feature, f.check))
    lines.append("")
    lines.append(f"findings: {len(findings)}" if findings else "findings: none")
    for f in findings:
        lines.append(f"  {str(f.severity).upper():8} {f.message}")
    return "\n".join(lines)


def _detects(report: FeatureReport) -> str:
    shift = report.detectable.get("mean_shift")
    return "-" if shift is None else f"{shift:.3g} std"


def format_alert(alert: dict[str, Any]) -> str:
    """Two lines for a terminal: time, event, severity, what (with the lead check's value vs
    threshold and how many checks fail), then the message.

    >>> print(format_alert({"status": "firing", "severity": "critical",
    ...     "previous_severity": "warning", "model": "churn", "version": "3", "feature": "age",
    ...     "check": "mean_shift", "value": 1.02, "threshold": 0.3, "checks": [{}, {}, {}],
    ...     "window_end": "2026-11-26T12:01:00.000Z", "message": "[churn v3] age: ..."}))
    2026-11-26T12:01:00.000Z  ESCALATED CRITICAL (was warning) churn v3  age/mean_shift value=1.02 threshold=0.3 +2 checks
        [churn v3] age: ...
    """
    status = alert.get("status", "?")
    event = "ESCALATED" if status == "firing" and alert.get("previous_severity") else status.upper()
    severity = str(alert.get("severity", "")).upper()
    if alert.get("previous_severity"):
        severity += f" (was {alert['previous_severity']})"
    where = f"{alert.get('model')} v{alert.get('version')}"
    what = alert.get("feature") or "model"
    value, threshold = alert.get("value"), alert.get("threshold")
    numbers = f" value={_fmt(value)} threshold={_fmt(threshold)}" if value is not None else ""
    more = len(alert.get("checks") or []) - 1
    numbers += f" +{more} checks" if more > 0 else ""
    return (f"{alert.get('window_end', '')}  {event:9} {severity:8} {where}  {what}/"
            f"{alert.get('check')}{numbers}\n    {alert.get('message', '')}")
