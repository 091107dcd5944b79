"""Every dashboard query, rendered as Grafana would, runs on a real InfluxQL server (1.x).

The server is the one `scripts/services.sh up` starts on 127.0.0.1:8086 (`make test` starts
it). The points are what the worker writes for a replay of a drifting stream by the real
engine, so a panel that queries a name the worker does not write returns no series and fails.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.dashboards.files import (
    annotation_queries,
    iter_panels,
    load_dashboards,
    panel_queries,
)
from monitor.dashboards.influxql import render_query
from monitor.demo.synthetic import Scenario, generate_columns, records
from monitor.ingest.records import parse_messages
from monitor.outputs.line_protocol import METRICS, alert_points, report_points, service_point
from monitor.profile.model import Profile
from monitor.stream.engine import Engine, EngineConfig, Evaluated

pytestmark = pytest.mark.integration

INFLUXQL_URL = "http://127.0.0.1:8086"
DASHBOARDS = load_dashboards()
WINDOWS = 30
WINDOW_SECONDS = 60


@pytest.fixture(scope="module")
def influx_points(profile: Profile) -> list[str]:
    """What the worker writes for a drifting stream: the real engine replays 30 one-minute
    windows ending now (drift in `age`, `state` and `comment` in windows 10-19), and its window
    reports and alerts become line protocol through the worker's own `metric_points`."""
    rng = np.random.default_rng(11)
    engine = Engine(lambda m, v: profile if (m, v) == ("churn", "3") else None,
                    EngineConfig(window_seconds=WINDOW_SECONDS, grace_seconds=0, min_records=100))
    first = (int(time.time()) // WINDOW_SECONDS - WINDOWS) * WINDOW_SECONDS
    items = []
    for w in range(WINDOWS):
        drift = Scenario(mean_shift=1.0, new_category_rate=0.1, language_switch_rate=0.5,
                         null_burst_rate=0.05) if 10 <= w < 20 else None
        ts = first + w * WINDOW_SECONDS + np.sort(rng.uniform(0, WINDOW_SECONDS, 400))
        messages = [orjson.dumps(r) for r in records(generate_columns(400, rng, drift),
                                                      model="churn", version="3", ts=ts)]
        items += engine.ingest(parse_messages(messages + [b"not json"]))
    items += engine.flush()
    lines: list[str] = []
    alerts = []
    for item in items:
        if isinstance(item, Evaluated):
            firing = sum(a.status == "firing" for a in item.alerts)
            lines += report_points(item.report, profile, alerts_firing=firing)
            alerts += item.alerts
    assert {a.status for a in alerts} == {"firing", "resolved"}
    lines += alert_points(alerts)
    for worker in ("worker-1", "worker-2"):
        for step in range(WINDOWS * WINDOW_SECONDS // 10):
            counters = {name: step * 10.0 for name in METRICS["drift_service"]}
            lines.append(service_point(worker, counters, first + step * 10))
    return lines


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
def database(services: None, influx_points: list[str]) -> Iterator[str]:
    """A fresh database holding `influx_points`, dropped afterwards."""
    name = f"dashboards_{uuid.uuid4().hex[:12]}"
    _request("/query", {"q": f'CREATE DATABASE "{name}"'})
    try:
        _request("/write", {"db": name, "precision": "ns"}, "\n".join(influx_points).encode())
        yield name
    finally:
        _request("/query", {"q": f'DROP DATABASE "{name}"'})


def _options(database: str, query: str) -> list[str]:
    result = influxql(database, query)
    assert "error" not in result, f"{query}\n{result['error']}"
    return sorted({row[1] for series in result.get("series", []) for row in series["values"]})


def resolve_variables(
    database: str, dashboard: Mapping[str, Any], *, repeated: bool
) -> list[dict[str, str | Sequence[str]]]:
    """Variable values as Grafana picks them on load: All where allowed, else the first option.

    With `repeated`, a variable that repeats a row takes one value per row, as each repeated row
    does: one assignment per option of each repeat variable.
    """
    repeat_variables = {p["repeat"] for p in iter_panels(dashboard) if p.get("repeat")}
    assignments: list[dict[str, str | Sequence[str]]] = [{}]
    for variable in dashboard["templating"]["list"]:
        name = variable["name"]
        expanded = []
        for values in assignments:
            query = render_query(variable["query"], values, "now-3h", "now", "1m")
            options = _options(database, query)
            assert options, f"variable {name} has no options: {query}"
            if repeated and name in repeat_variables:
                expanded += [values | {name: option} for option in options]
            elif not variable["includeAll"]:
                expanded.append(values | {name: options[0]})
            else:
                expanded.append(values | {name: options})
        assignments = expanded
    return assignments


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
    now = time.time()
    ranges = [("now-3h", "now"), (_utc(now - 3 * 3600), _utc(now + 60))]
    with_data = []
    for variables in resolve_variables(database, dashboard, repeated=repeated):
        for time_from, time_to in ranges:
            rendered = render_query(query, variables, time_from, time_to, "1m")
            result = influxql(database, rendered)
            assert "error" not in result, f"{where}: {rendered}\n{result['error']}"
            with_data.append(bool(result.get("series")))
    # Every query parses; with all values selected it has data, and in repeated rows at least
    # one row (a feature without unseen values rightly shows none in its "new values" panel).
    assert any(with_data) if repeated else all(with_data), f"{where} returned no series"
