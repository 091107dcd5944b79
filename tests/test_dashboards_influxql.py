"""Every dashboard query, rendered as Grafana would, runs on a real InfluxQL server (1.x).

The server is the one `scripts/services.sh up` starts on 127.0.0.1:8086. The points come
from the `influx_points` fixture: for now a synthetic but complete set (every measurement
and field of METRIC_CONTRACT over 30 windows); a fixture of the same name in conftest.py
that replays the real engine takes over once this local one is removed.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.dashboards import (
    FEATURE_FIELDS_BY_KIND,
    METRIC_CONTRACT,
    STRING_FIELDS,
    annotation_queries,
    iter_panels,
    load_dashboards,
    panel_queries,
    render_query,
)

pytestmark = pytest.mark.integration

INFLUXQL_URL = "http://127.0.0.1:8086"
DASHBOARDS = load_dashboards(Path(__file__).resolve().parent.parent / "dashboards")
WINDOWS = 30
WINDOW_SECONDS = 60
FEATURES = {  # (model, version) -> feature -> kind
    ("churn", "3"): {"age": "numeric", "state": "categorical", "comment": "text"},
    ("fraud", "7"): {"amount": "numeric"},
}
LANGUAGES = ("en", "es", "de")


def _line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any], ts: int) -> str:
    tag_text = "".join(f",{key}={value}" for key, value in sorted(tags.items()))
    field_text = ",".join(
        f'{key}="{value}"' if isinstance(value, str) else f"{key}={float(value)!r}"
        for key, value in sorted(fields.items())
    )
    return f"{measurement}{tag_text} {field_text} {ts}"


def _value(measurement: str, field: str, window: int, rng: random.Random) -> str | float:
    if (measurement, field) in STRING_FIELDS:
        return {
            "worst_check": "psi" if window % 3 else "",
            "new_values": "Canada:12,Mexico:3" if window % 4 == 0 else "",
        }.get(field, f"{field}-{window}")
    if field == "severity":
        return window % 4
    if field.startswith("threshold_"):
        return 0.05 if field == "threshold_chi2_p" else 0.2
    return round(rng.uniform(0.01, 1.0), 4)


def synthetic_points(end: int) -> list[str]:
    """Line protocol (precision s) for every measurement and field of the contract."""
    rng = random.Random(7)
    lines = []
    for window in range(WINDOWS):
        ts = end - (WINDOWS - 1 - window) * WINDOW_SECONDS
        for (model, version), features in FEATURES.items():
            mv = {"model": model, "version": version}
            fields: dict[str, Any] = {
                f: _value("drift_window", f, window, rng) for f in METRIC_CONTRACT["drift_window"]
            }
            fields |= {"window_seconds": WINDOW_SECONDS, "records": 600 + window}
            lines.append(_line("drift_window", mv, fields, ts))
            for feature, kind in features.items():
                tags = mv | {"feature": feature, "kind": kind, "profile": f"{model}-{version}"}
                fields = {
                    f: _value("drift_feature", f, window, rng) for f in FEATURE_FIELDS_BY_KIND[kind]
                }
                lines.append(_line("drift_feature", tags, fields, ts))
                if kind == "text":
                    for language in LANGUAGES:
                        share = {"share": rng.random(), "training_share": 1 / len(LANGUAGES)}
                        tags = mv | {"feature": feature, "language": language}
                        lines.append(_line("drift_language", tags, share, ts))
                if window % 10 == 2:
                    for status, offset in (("firing", 0), ("resolved", 2 * WINDOW_SECONDS)):
                        tags = mv | {
                            "feature": feature,
                            "check": "psi",
                            "severity": "critical" if window == 12 else "warning",
                            "status": status,
                        }
                        alert = {
                            "value": 0.4,
                            "threshold": 0.2,
                            "message": f"{feature} psi 0.4 > 0.2 vs profile {model}-{version}",
                            "alert_id": f"{model}-{version}-{feature}-psi-{window}",
                        }
                        lines.append(_line("drift_alert", tags, alert, ts + offset))
    for worker in ("worker-1", "worker-2"):
        for step in range(WINDOWS * WINDOW_SECONDS // 10):
            ts = end - WINDOWS * WINDOW_SECONDS + step * 10
            fields = {f: step * 10 for f in METRIC_CONTRACT["drift_service"]}  # counters grow
            fields |= {"records_per_second": 95 + step % 10, "consumer_lag": step % 50}
            fields["metric_points_buffered"] = step % 7
            lines.append(_line("drift_service", {"worker": worker}, fields, ts))
    return lines


@pytest.fixture(scope="module")
def influx_points() -> list[str]:
    return synthetic_points(int(time.time()) - 5)


def _request(path: str, params: Mapping[str, str], body: bytes | None = None) -> bytes:
    url = f"{INFLUXQL_URL}{path}?{urllib.parse.urlencode(params)}"
    data = body if body is not None else b""
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as response:
        return bytes(response.read())


def influxql(database: str, query: str) -> dict[str, Any]:
    """The single statement result of `query`; HTTP errors are returned as {"error": ...}."""
    try:
        raw = _request("/query", {"db": database, "q": query, "epoch": "s"})
    except urllib.error.HTTPError as error:
        return {"error": f"HTTP {error.code}: {error.read().decode(errors='replace')}"}
    result: dict[str, Any] = json.loads(raw)["results"][0]
    return result


@pytest.fixture(scope="module")
def database(influx_points: list[str]) -> Iterator[str]:
    """A fresh database holding `influx_points`, dropped afterwards."""
    try:
        urllib.request.urlopen(f"{INFLUXQL_URL}/ping", timeout=2).close()
    except OSError as error:
        pytest.skip(f"no InfluxQL server at {INFLUXQL_URL} ({error}); run scripts/services.sh up")
    name = f"dashboards_{uuid.uuid4().hex[:12]}"
    _request("/query", {"q": f'CREATE DATABASE "{name}"'})
    try:
        _request("/write", {"db": name, "precision": "s"}, "\n".join(influx_points).encode())
        yield name
    finally:
        _request("/query", {"q": f'DROP DATABASE "{name}"'})


def _options(database: str, query: str) -> list[str]:
    result = influxql(database, query)
    assert "error" not in result, f"{query}\n{result['error']}"
    return sorted({row[1] for series in result.get("series", []) for row in series["values"]})


def resolve_variables(
    database: str, dashboard: Mapping[str, Any], *, repeated: bool
) -> dict[str, str | Sequence[str]]:
    """Variable values as Grafana picks them on load: All where allowed, else the first option.

    With `repeated`, a variable that repeats a row takes one value, as each repeated row does.
    """
    repeat_variables = {p["repeat"] for p in iter_panels(dashboard) if p.get("repeat")}
    values: dict[str, str | Sequence[str]] = {}
    for variable in dashboard["templating"]["list"]:
        name = variable["name"]
        query = render_query(variable["query"], values, "now-3h", "now", "1m")
        options = _options(database, query)
        assert options, f"variable {name} has no options: {query}"
        one = not variable["includeAll"] or (repeated and name in repeat_variables)
        values[name] = options[0] if one else options
    return values


def _cases() -> list[Any]:
    cases = []
    for dashboard in DASHBOARDS:
        queries = [(f"panel {t!r}", q) for t, q in panel_queries(dashboard)]
        queries += [(f"annotation {n!r}", q) for n, q in annotation_queries(dashboard)]
        for index, (where, query) in enumerate(queries):
            case_id = f"{dashboard['uid']}:{index}:{where}"
            cases.append(pytest.param(dashboard, where, query, id=case_id))
    return cases


def _utc(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("dashboard", "where", "query"), _cases())
@pytest.mark.parametrize("repeated", [False, True], ids=["all-selected", "repeated-row"])
def test_dashboard_query_returns_series_from_influxql(
    database: str, dashboard: dict[str, Any], where: str, query: str, repeated: bool
) -> None:
    variables = resolve_variables(database, dashboard, repeated=repeated)
    now = time.time()
    ranges = [("now-3h", "now"), (_utc(now - 3 * 3600), _utc(now + 60))]
    for time_from, time_to in ranges:
        rendered = render_query(query, variables, time_from, time_to, "1m")
        result = influxql(database, rendered)
        assert "error" not in result, f"{where}: {rendered}\n{result['error']}"
        assert result.get("series"), f"{where} returned no series: {rendered}"
