"""`drift-monitor report`: a self-contained HTML drift report (PNG plots inlined as base64) of
a replay. It opens with an overview (each model version's windows, records and alert episodes,
the drifting ones first; invalid lines and records of models without a profile), then per model
its episodes and, per feature (drifting features first), the drill-down panels' data: metrics
over time, thresholds as dashed lines, the training mean and range as a band, and alert episodes
shaded (an episode still open at the end is shaded to the end of the model's last window)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.drift.evaluate import WindowReport
from monitor.drift.registry import checks_for
from monitor.errors import InputError
from monitor.ingest.records import ModelKey
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
SEVERITY_ORDER = {"info": 1, "warning": 2, "critical": 3}


@dataclass
class ReadCounts:
    """What the replay read besides its windows: bad lines and records nobody could check."""

    records: int = 0
    invalid: int = 0
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    late: int = 0
    unprofiled: dict[ModelKey, int] = field(default_factory=dict)


def write_report(logs: str | Path, profiles: str | Path, output: str | Path, *,
                 window_seconds: float = 60.0) -> Path:
    path, engine = open_engine(logs, profiles, window_seconds=window_seconds)
    reports: list[WindowReport] = []
    alerts: list[Alert] = []
    reasons: dict[str, int] = {}
    for item in replay_events(path, engine, reasons):
        if isinstance(item, Evaluated):
            reports.append(item.report)
            alerts.extend(item.alerts)
        else:
            alerts.append(item)
    stats = engine.stats
    counts = ReadCounts(records=stats.records, invalid=stats.invalid, invalid_reasons=reasons,
                        late=stats.late, unprofiled=dict(engine.folder.counts.unprofiled))
    if not reports:
        raise InputError(f"no window could be evaluated from {path.name} (no record matched a "
                         f"profile{_unprofiled_note(counts)})")
    out = Path(output)
    out.write_text(render_html(reports, alerts, source=path.name, counts=counts), encoding="utf-8")
    return out


def _unprofiled_note(counts: ReadCounts) -> str:
    if not counts.unprofiled:
        return ""
    return "; records of models without a profile: " + ", ".join(
        f"{m} v{v} ({n:,})" for (m, v), n in sorted(counts.unprofiled.items()))


def _time(ts: float) -> datetime:
    return to_datetime(ts)  # clamped into datetime's years: a record of year -314918 cannot crash


def _parse(text: str) -> datetime:
    return to_datetime(parse_ts(text, latest=math.inf))


def episodes_of(alerts: list[Alert]) -> dict[str, list[Alert]]:
    """Alert events grouped by episode (`alert_id`), in order."""
    grouped: dict[str, list[Alert]] = defaultdict(list)
    for a in alerts:
        grouped[a.alert_id].append(a)
    return dict(grouped)


def _worst(events: list[Alert]) -> int:
    return max((SEVERITY_ORDER.get(a.severity, 0) for a in events), default=0)


def render_html(reports: list[WindowReport], alerts: list[Alert], *, source: str,
                counts: ReadCounts | None = None) -> str:
    by_model: dict[tuple[str, str], list[WindowReport]] = defaultdict(list)
    for r in reports:
        by_model[(r.model, r.version)].append(r)
    model_alerts = {key: [a for a in alerts if (a.model, a.version) == key] for key in by_model}

    def drift_first(key: tuple[str, str]) -> tuple[int, int, tuple[str, str]]:
        events = episodes_of(model_alerts[key])
        return (-max((_worst(e) for e in events.values()), default=0), -len(events), key)

    order = sorted(by_model, key=drift_first)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>drift report</title>",
        "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.critical{color:#c00}"
        ".warning{color:#d80}img{max-width:100%}</style></head><body>",
        f"<h1>Drift report: {html.escape(source)}</h1>",
        _overview(order, by_model, model_alerts, counts),
    ]
    for key in order:
        rows, events = by_model[key], model_alerts[key]
        model, version = key
        parts.append(f"<h2 id='{html.escape(model)}-{html.escape(version)}'>{html.escape(model)} "
                     f"v{html.escape(version)}</h2><p>profile <code>"
                     f"{html.escape(rows[-1].profile_id)}</code>, {len(rows)} windows, "
                     f"{sum(r.records for r in rows):,} records, "
                     f"{_time(rows[0].start):%Y-%m-%d %H:%M} to {_time(rows[-1].end):%H:%M} UTC</p>")
        parts.append(_episode_table(events))
        drifting = {a.feature for a in events}
        # Windows of records stamped centuries away (broken clocks) are listed, not plotted:
        # one of them would stretch the time axis beyond what dates can show.
        plotted = [r for r in rows if PLOT_FROM <= r.end < PLOT_UNTIL]
        if len(plotted) < len(rows):
            parts.append(f"<p>{len(rows) - len(plotted)} windows outside the years 1900-2200 are "
                         f"not plotted.</p>")
        for feature, report in sorted(rows[-1].features.items(),
                                      key=lambda item: (item[0] not in drifting, item[0])):
            if not plotted:
                break
            parts.append(f"<h3>{html.escape(feature)} <small>({report.kind})</small></h3>")
            parts.append(f"<img alt='{html.escape(feature)}' src='data:image/png;base64,"
                         f"{feature_png(plotted, feature, events)}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _overview(order: list[tuple[str, str]], by_model: dict[tuple[str, str], list[WindowReport]],
              model_alerts: dict[tuple[str, str], list[Alert]], counts: ReadCounts | None) -> str:
    names = {v: k for k, v in SEVERITY_ORDER.items()}
    rows = []
    for key in order:
        episodes = episodes_of(model_alerts[key])
        still = sum(1 for e in episodes.values() if e[-1].status != "resolved")
        worst = max((_worst(e) for e in episodes.values()), default=0)
        drifting = sorted({e[0].feature or "model" for e in episodes.values()})
        anchor = f"#{html.escape(key[0])}-{html.escape(key[1])}"
        rows.append(f"<tr class='{names.get(worst, '')}'><td><a href='{anchor}'>"
                    f"{html.escape(key[0])} v{html.escape(key[1])}</a></td>"
                    f"<td>{len(by_model[key])}</td><td>{sum(r.records for r in by_model[key]):,}</td>"
                    f"<td>{len(episodes)} ({still} open at the end)</td>"
                    f"<td>{names.get(worst, 'none')}</td>"
                    f"<td>{html.escape(', '.join(drifting)) or '-'}</td></tr>")
    parts = ["<h2>Overview</h2><table><tr><th>model</th><th>windows</th><th>records</th>"
             "<th>alert episodes</th><th>worst</th><th>drifting</th></tr>", *rows, "</table>"]
    if counts is not None:
        reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(counts.invalid_reasons.items()))
        unprofiled = sum(counts.unprofiled.values())
        models = ", ".join(f"{m} v{v}: {n:,}" for (m, v), n in sorted(counts.unprofiled.items()))
        parts.append(
            f"<p>{counts.records:,} records of models with a profile. <b>Invalid lines: "
            f"{counts.invalid:,}</b>{f' ({html.escape(reasons)})' if reasons else ''}; late "
            f"records: {counts.late:,}; <b>records of models without a profile: {unprofiled:,}</b>"
            f"{f' ({html.escape(models)})' if models else ''}.</p>")
    return "\n".join(parts)


def _episode_table(alerts: list[Alert]) -> str:
    episodes = episodes_of(alerts)
    if not episodes:
        return "<p>No alert fired.</p>"
    rows = []
    for events in episodes.values():
        first, last = events[0], events[-1]
        worst = max(events, key=lambda a: SEVERITY_ORDER.get(a.severity, 0))
        ended = last.window_start if last.status == "resolved" else "still firing"
        checks = sorted({c.get("check", "") for a in events for c in a.checks} | {first.check})
        rows.append(f"<tr class='{worst.severity}'><td>{html.escape(first.feature or 'model')}"
                    f"</td><td>{first.episode}</td><td>{html.escape(', '.join(checks))}</td>"
                    f"<td>{worst.severity}</td><td>{first.since}</td>"
                    f"<td>{ended}</td><td>{html.escape(worst.message)}</td></tr>")
    return ("<table><tr><th>feature</th><th>episode</th><th>checks</th><th>worst severity</th>"
            f"<th>since</th><th>resolved</th><th>message</th></tr>{''.join(rows)}</table>")


PLOT_FROM, PLOT_UNTIL = -2_208_988_800.0, 7_258_118_400.0  # 1900-01-01, 2200-01-01 (UTC)


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
    episodes = _episodes(alerts, feature, times[-1])
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


def _episodes(alerts: list[Alert], feature: str, end: datetime) -> list[tuple[datetime, datetime]]:
    """Time spans during which an episode about this feature was open; one still open at the
    end of the report runs to `end` (the model's last window), not only to its last event."""
    spans = []
    for events in episodes_of([a for a in alerts if a.feature == feature]).values():
        last = events[-1]
        stop = _parse(last.window_start) if last.status == "resolved" else end
        spans.append((_parse(events[0].since), stop))
    return spans
