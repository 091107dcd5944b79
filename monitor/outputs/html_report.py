"""`drift-monitor report`: a self-contained HTML drift report (PNG plots inlined as base64) of
a replay, with the drill-down panels' data: per feature its metrics over time, thresholds as
dashed lines, the training mean and range as a band, and alert episodes shaded."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.drift.evaluate import WindowReport
from monitor.drift.registry import checks_for
from monitor.errors import InputError
from monitor.ingest.schema import Kind
from monitor.ingest.timestamps import parse_ts, to_datetime
from monitor.stream.alerts import Alert
from monitor.stream.engine import Evaluated
from monitor.stream.replay import open_engine, replay_events


def _checks(kind: Kind, *names: str) -> list[tuple[str, str]]:
    return [(n, checks_for(kind)[n].label) for n in names]


# The drill-down dashboard's panels: metric and title (checks titled by the registry).
PANELS = {
    "numeric": [("mean", "mean vs training (band: training min..max)"),
                *_checks(Kind.NUMERIC, "psi", "ks", "wasserstein", "null_rate",
                         "out_of_range_rate")],
    "categorical": _checks(Kind.CATEGORICAL, "novelty_rate", "psi", "js", "null_rate"),
    "text": [("length_mean", "mean length vs training"),
             *_checks(Kind.TEXT, "language_tvd", "oov_rate", "vocab_js", "null_rate")],
}


def write_report(logs: str | Path, profiles: str | Path, output: str | Path, *,
                 window_seconds: float = 60.0) -> Path:
    path, engine = open_engine(logs, profiles, window_seconds=window_seconds)
    reports: list[WindowReport] = []
    alerts: list[Alert] = []
    for item in replay_events(path, engine):
        if isinstance(item, Evaluated):
            reports.append(item.report)
            alerts.extend(item.alerts)
        else:
            alerts.append(item)
    if not reports:
        raise InputError(f"no window could be evaluated from {path.name} (no record matched a profile)")
    out = Path(output)
    out.write_text(render_html(reports, alerts, source=path.name), encoding="utf-8")
    return out


def _time(ts: float) -> datetime:
    return to_datetime(ts)  # clamped into datetime's years: a record of year -314918 cannot crash


def render_html(reports: list[WindowReport], alerts: list[Alert], *, source: str) -> str:
    by_model: dict[tuple[str, str], list[WindowReport]] = defaultdict(list)
    for r in reports:
        by_model[(r.model, r.version)].append(r)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>drift report</title>",
        "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.critical{color:#c00}"
        ".warning{color:#d80}img{max-width:100%}</style></head><body>",
        f"<h1>Drift report: {html.escape(source)}</h1>",
    ]
    for (model, version), rows in sorted(by_model.items()):
        profile_id = rows[-1].profile_id
        parts.append(f"<h2>{html.escape(model)} v{html.escape(version)}</h2><p>profile "
                     f"<code>{html.escape(profile_id)}</code>, {len(rows)} windows, "
                     f"{sum(r.records for r in rows)} records, "
                     f"{_time(rows[0].start):%Y-%m-%d %H:%M} to {_time(rows[-1].end):%H:%M} UTC</p>")
        model_alerts = [a for a in alerts if (a.model, a.version) == (model, version)]
        parts.append(_alert_table(model_alerts))
        for feature, report in sorted(rows[-1].features.items()):
            parts.append(f"<h3>{html.escape(feature)} <small>({report.kind})</small></h3>")
            parts.append(f"<img alt='{html.escape(feature)}' src='data:image/png;base64,"
                         f"{feature_png(rows, feature, model_alerts)}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _alert_table(alerts: list[Alert]) -> str:
    firing = [a for a in alerts if a.status == "firing"]
    if not firing:
        return "<p>No alert fired.</p>"
    resolved = {a.alert_id: a.window_start for a in alerts if a.status == "resolved"}
    rows = "".join(
        f"<tr class='{a.severity}'><td>{html.escape(a.feature or 'model')}</td>"
        f"<td>{a.check}</td><td>{a.severity}</td><td>{a.since}</td>"
        f"<td>{resolved.get(a.alert_id, 'still firing')}</td><td>{html.escape(a.message)}</td></tr>"
        for a in firing)
    return ("<table><tr><th>feature</th><th>check</th><th>severity</th><th>since</th>"
            f"<th>resolved</th><th>message</th></tr>{rows}</table>")


def feature_png(rows: list[WindowReport], feature: str, alerts: list[Alert]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = str(rows[-1].features[feature].kind)
    panels = PANELS[kind]
    columns = 3
    nrows = -(-len(panels) // columns)
    fig, axes = plt.subplots(nrows, columns, figsize=(10, 2.6 * nrows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    times = [_time(r.end) for r in rows]
    episodes = _episodes(alerts, feature)
    for ax, (metric, title) in zip(axes.flat, panels, strict=False):
        values = [_num(r.features[feature].metrics.get(metric)) for r in rows]
        ax.plot(times, values, marker=".", lw=1.2, color="#1f77b4")
        thresholds = [_num(r.features[feature].thresholds.get(metric)) for r in rows]
        if any(t is not None for t in thresholds):
            ax.plot(times, thresholds, ls="--", lw=1, color="#d62728", label="threshold")
        if metric in ("mean", "length_mean"):
            m = rows[-1].features[feature].metrics
            ref = m.get("training_mean") if metric == "mean" else m.get("training_length_mean")
            if ref is not None:
                ax.axhline(ref, color="#2ca02c", lw=1, label="training")
            if metric == "mean" and m.get("training_min") is not None:
                ax.axhspan(m["training_min"], m["training_max"], color="#2ca02c", alpha=0.08)
        for start, end in episodes:
            ax.axvspan(start, end, color="#ff7f0e", alpha=0.15)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None


def _episodes(alerts: list[Alert], feature: str) -> list[tuple[datetime, datetime]]:
    """Time spans during which an alert on this feature was firing."""
    def parse(text: str) -> datetime:
        return to_datetime(parse_ts(text, latest=math.inf))

    opened: dict[str, datetime] = {}
    spans: list[tuple[datetime, datetime]] = []
    last = None
    for a in alerts:
        if a.feature != feature:
            continue
        last = parse(a.window_end)
        if a.status == "firing":
            opened.setdefault(a.alert_id, parse(a.window_start))
        elif a.alert_id in opened:
            spans.append((opened.pop(a.alert_id), parse(a.window_start)))
    for start in opened.values():
        spans.append((start, last or start))
    return spans
