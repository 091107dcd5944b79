"""The Grafana dashboards and provisioning files, checked without a Grafana server."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.dashboards.drilldown import checks_by_kind
from monitor.dashboards.files import (
    DASHBOARD_DIR,
    DATASOURCE,
    annotation_queries,
    iter_panels,
    load_dashboards,
    panel_queries,
    template_variables,
)
from monitor.dashboards.generate import rendered
from monitor.dashboards.influxql import (
    GRAFANA_MACROS,
    contract_violations,
    parse_influxql,
    render_query,
    variables_used,
)
from monitor.dashboards.push import datasource_definition, push_dashboards
from monitor.errors import ServiceError, UsageError
from monitor.outputs.line_protocol import METRICS

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = {d["uid"]: d for d in load_dashboards(DASHBOARD_DIR)}


def every_query() -> list[tuple[str, str, str]]:
    """(dashboard uid, where, query) for panel targets, annotations and variable queries."""
    found = []
    for uid, dashboard in DASHBOARDS.items():
        found += [(uid, f"panel {title!r}", query) for title, query in panel_queries(dashboard)]
        found += [(uid, f"annotation {n!r}", q) for n, q in annotation_queries(dashboard)]
        found += [(uid, f"variable {n!r}", q) for n, q in template_variables(dashboard).items()]
    return found


QUERIES = every_query()
QUERY_IDS = [f"{uid}:{where}:{i}" for i, (uid, where, _) in enumerate(QUERIES)]


# --- structure ---


def test_dashboards_are_the_three_with_fixed_uids() -> None:
    assert set(DASHBOARDS) == {"drift-overview", "drift-model", "drift-service"}


def test_committed_dashboards_are_exactly_what_the_generator_writes() -> None:
    """Edit monitor/dashboards/generate.py, then `python -m monitor.dashboards.generate`."""
    files = rendered()
    assert sorted(files) == sorted(p.name for p in DASHBOARD_DIR.glob("*.json"))
    for name, text in files.items():
        assert (DASHBOARD_DIR / name).read_text(encoding="utf-8") == text, name


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_panels_stay_inside_the_grid_and_never_overlap(uid: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in DASHBOARDS[uid]["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(grid["x"] + dx, grid["y"] + dy)
                 for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells


def test_dashboard_files_have_unique_uids_and_null_ids() -> None:
    dashboards = load_dashboards(DASHBOARD_DIR)
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    assert all(d["id"] is None for d in dashboards)


@pytest.mark.parametrize(
    ("uid", "time_from"),
    [("drift-overview", "now-6h"), ("drift-model", "now-3h"), ("drift-service", "now-3h")],
)
def test_dashboard_has_default_time_range_and_refresh(uid: str, time_from: str) -> None:
    dashboard = DASHBOARDS[uid]
    assert dashboard["time"] == {"from": time_from, "to": "now"}
    assert dashboard["refresh"] == "30s"
    assert dashboard["schemaVersion"] >= 39


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_panel_pins_the_drift_datasource_and_has_a_raw_influxql_query(uid: str) -> None:
    panels = [p for p in iter_panels(DASHBOARDS[uid]) if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no target"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["rawQuery"] is True, panel["title"]
            assert target["query"].strip(), panel["title"]
            assert target["resultFormat"] in {"time_series", "table"}, panel["title"]


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_panel_ids_are_unique_within_a_dashboard(uid: str) -> None:
    ids = [panel["id"] for panel in iter_panels(DASHBOARDS[uid])]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_variables_pin_the_datasource_and_only_use_earlier_variables(uid: str) -> None:
    defined: set[str] = set()
    for variable in DASHBOARDS[uid]["templating"]["list"]:
        assert variable["datasource"] == DATASOURCE
        assert variables_used(variable["query"]) <= defined | GRAFANA_MACROS, variable["name"]
        defined.add(variable["name"])


@pytest.mark.parametrize(("uid", "where", "query"), QUERIES, ids=QUERY_IDS)
def test_query_uses_only_defined_variables_and_grafana_macros(
    uid: str, where: str, query: str
) -> None:
    defined = set(template_variables(DASHBOARDS[uid]))
    assert variables_used(query) <= defined | GRAFANA_MACROS, where


@pytest.mark.parametrize(("uid", "where", "query"), QUERIES, ids=QUERY_IDS)
def test_query_reads_only_measurements_fields_and_tags_of_the_contract(
    uid: str, where: str, query: str
) -> None:
    assert contract_violations(query) == [], where


@pytest.mark.parametrize(("uid", "where", "query"), QUERIES, ids=QUERY_IDS)
def test_grouped_time_queries_aggregate_and_fill_none(uid: str, where: str, query: str) -> None:
    """InfluxQL rejects GROUP BY time() without an aggregate; fill(none) avoids null buckets."""
    if "GROUP BY time(" in query:
        assert "$__interval" in query or "$interval" in query, where
        assert query.rstrip().endswith("fill(none)"), where


def test_dashboards_cover_every_measurement_of_the_contract() -> None:
    measurements = {parse_influxql(query).measurement for _, _, query in QUERIES}
    assert measurements == set(METRICS)


@pytest.mark.parametrize("kind", sorted(checks_by_kind(), key=str))
def test_drilldown_plots_every_check_of_a_kind_with_its_threshold_in_that_kinds_row(
    kind: Any,
) -> None:
    """A check added to the registry shows up in its kind's repeated row without an edit."""
    variable = f"{kind}_feature"
    queries = " ".join(q for title, q in panel_queries(DASHBOARDS["drift-model"])
                       if title.startswith(f"${variable}:"))
    for check in checks_by_kind()[kind]:
        assert f'("{check}")' in queries, check
        assert f'last("threshold_{check}")' in queries, check


def test_overview_status_table_colours_features_by_severity() -> None:
    table = next(
        p
        for p in iter_panels(DASHBOARDS["drift-overview"])
        if p["title"].startswith("Feature status")
    )
    query = table["targets"][0]["query"]
    assert 'last("severity")' in query and 'last("worst_check")' in query
    assert parse_influxql(query).group_keys == {"model", "version", "feature"}
    override = next(
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "severity"
    )
    mappings = next(p["value"] for p in override["properties"] if p["id"] == "mappings")
    colours = {k: (v["text"], v["color"]) for k, v in mappings[0]["options"].items()}
    assert colours == {
        "0": ("ok", "green"),
        "1": ("info", "blue"),
        "2": ("warning", "orange"),
        "3": ("critical", "red"),
    }


def test_drilldown_version_and_feature_variables_follow_the_model() -> None:
    variables = template_variables(DASHBOARDS["drift-model"])
    assert list(variables)[:3] == ["model", "version", "feature"]
    for name in ("version", "feature"):
        assert '"model" =~ /^$model$/' in variables[name]
        assert parse_influxql(variables[name]).tag_key == name


def test_drilldown_repeats_one_row_per_feature_of_each_kind() -> None:
    rows = [p for p in iter_panels(DASHBOARDS["drift-model"]) if p["type"] == "row"]
    repeats = {row.get("repeat") for row in rows} - {None}
    assert repeats == {"numeric_feature", "categorical_feature", "text_feature"}
    variables = template_variables(DASHBOARDS["drift-model"])
    for kind in ("numeric", "categorical", "text"):
        assert f"\"kind\" = '{kind}'" in variables[f"{kind}_feature"]


def test_drilldown_draws_resolved_alert_episodes_as_regions_and_open_ones_from_their_start() -> None:
    annotations = DASHBOARDS["drift-model"]["annotations"]["list"]
    by_name = {a["name"]: a["target"] for a in annotations}
    regions = by_name["Alert episodes (resolved)"]
    refs = parse_influxql(regions["query"])
    assert refs.measurement == "drift_episode"
    assert regions["timeEndColumn"] == "end_ms" and "end_ms" in refs.fields
    assert "\"status\" = 'resolved'" in regions["query"]
    assert "\"status\" <> 'resolved'" in by_name["Alert episodes still open (start)"]["query"]
    for target in by_name.values():  # tags and text come from selected columns
        columns = parse_influxql(target["query"]).fields
        assert set(target["tagsColumn"].split(",")) | {target["textColumn"]} <= columns


# --- the query reader and the contract check ---


def test_contract_check_rejects_a_field_the_worker_does_not_write() -> None:
    query = 'SELECT max("psi_v2") FROM "drift_feature" WHERE $timeFilter GROUP BY time($__interval)'
    assert contract_violations(query) == ["unknown field 'psi_v2' in drift_feature"]


def test_contract_check_rejects_unknown_measurements_and_group_by_fields() -> None:
    assert contract_violations('SELECT "x" FROM "drift_features"') == [
        "unknown measurement 'drift_features'"
    ]
    assert contract_violations('SELECT last("psi") FROM "drift_feature" GROUP BY "psi"') == [
        "GROUP BY 'psi' is not a tag of drift_feature"
    ]


def test_query_reader_ignores_aliases_functions_literals_and_macros() -> None:
    refs = parse_influxql(
        'SELECT non_negative_derivative(max("dlq_messages"), 1s) AS "dead/s", min AS x '
        'FROM drift_service WHERE "worker" =~ /^$worker$/ AND "x" = \'a "b"\' AND '
        '$timeFilter GROUP BY time($__interval), "worker" fill(none) ORDER BY time DESC LIMIT 5'
    )
    assert refs.measurement == "drift_service"
    assert refs.fields == {"dlq_messages", "min"}
    assert refs.condition_keys == {"worker", "x"}
    assert refs.group_keys == {"worker"}


def test_panel_queries_recurse_into_collapsed_rows() -> None:
    dashboard: dict[str, Any] = {
        "panels": [
            {"type": "timeseries", "title": "top", "targets": [{"query": "q1"}]},
            {
                "type": "row",
                "title": "collapsed",
                "collapsed": True,
                "panels": [{"type": "table", "title": "inner", "targets": [{"query": "q2"}]}],
            },
        ]
    }
    assert panel_queries(dashboard) == [("top", "q1"), ("inner", "q2")]


# --- rendering queries the way Grafana does ---


def test_render_query_uses_a_relative_time_filter_for_ranges_ending_now() -> None:
    rendered = render_query(
        "SELECT x FROM m WHERE $timeFilter GROUP BY time($__interval)", {}, "now-6h", "now", "30s"
    )
    assert rendered == "SELECT x FROM m WHERE time > now() - 6h GROUP BY time(30s)"


def test_render_query_uses_absolute_bounds_for_fixed_ranges() -> None:
    rendered = render_query(
        "WHERE $timeFilter", {}, "2026-11-26T10:00:00Z", "2026-11-26T12:00:00Z", "1m"
    )
    assert rendered == "WHERE time >= '2026-11-26T10:00:00Z' AND time <= '2026-11-26T12:00:00Z'"
    assert render_query("WHERE $timeFilter", {}, "1000", "2000", "1m") == (
        "WHERE time >= 1000ms AND time <= 2000ms"
    )


def test_render_query_expands_interval_macros() -> None:
    assert render_query("$__interval $interval $__interval_ms", {}, "now-1h", "now", "1m30s") == (
        "1m30s 1m30s 90000"
    )


def test_render_query_escapes_variables_inside_regexes_and_joins_multi_values() -> None:
    query = 'WHERE "model" =~ /^$model$/ AND "feature" =~ /^${feature}$/ AND "v" = \'$version\''
    rendered = render_query(
        query,
        {"model": "churn.v2", "feature": ["age", "a/b"], "version": "3"},
        "now-1h",
        "now",
        "1m",
    )
    assert rendered == (
        'WHERE "model" =~ /^churn\\.v2$/ AND "feature" =~ /^(age|a\\/b)$/ AND "v" = \'3\''
    )


def test_render_query_refuses_an_undefined_variable() -> None:
    with pytest.raises(UsageError, match=r"undefined variable \(\$model\)"):
        render_query("WHERE \"model\" = '$model'", {}, "now-1h", "now", "1m")


# --- provisioning ---


def test_datasource_provisioning_pins_the_uid_and_queries_influxql_through_dbrp() -> None:
    provisioning = yaml.safe_load(
        (DASHBOARD_DIR / "provisioning" / "datasources" / "drift.yaml").read_text()
    )
    (source,) = provisioning["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE["uid"], DATASOURCE["type"])
    assert source["url"] == "${INFLUX_URL}"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["jsonData"]["dbName"] == "drift"
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUX_TOKEN}"


def test_dashboard_provisioning_reads_the_mounted_directory_read_only() -> None:
    provisioning = yaml.safe_load(
        (DASHBOARD_DIR / "provisioning" / "dashboards" / "drift.yaml").read_text()
    )
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_datasource_definition_expands_the_environment_with_a_default_url() -> None:
    payload = datasource_definition(DASHBOARD_DIR, environ={"INFLUX_TOKEN": "s3cret"})
    assert payload["url"] == "http://influxdb:8086"
    assert payload["secureJsonData"] == {"httpHeaderValue1": "Token s3cret"}
    with pytest.raises(UsageError, match="INFLUX_TOKEN"):
        datasource_definition(DASHBOARD_DIR, environ={})


# --- pushing: the error paths, against real sockets ---


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    def _refuse(self) -> None:
        body = b'{"message": "invalid API key"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _refuse

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that answers 401 to every request."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_push_to_a_closed_port_says_grafana_cannot_be_reached_in_one_line() -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    with pytest.raises(ServiceError) as caught:
        push_dashboards(url, "token", directory=DASHBOARD_DIR, timeout_seconds=2)
    message = str(caught.value)
    assert message == f"cannot reach Grafana at {url}: [Errno 111] Connection refused"


def test_push_refuses_a_url_without_scheme_before_connecting() -> None:
    with pytest.raises(UsageError, match="needs http"):
        push_dashboards("127.0.0.1:3000", directory=DASHBOARD_DIR)


@pytest.mark.parametrize("include_datasource", [False, True])
def test_push_to_a_server_answering_401_says_the_token_was_rejected(
    refusing_server: str, include_datasource: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "influx-token")
    with pytest.raises(ServiceError) as caught:
        push_dashboards(
            refusing_server,
            "wrong-token",
            include_datasource=include_datasource,
            directory=DASHBOARD_DIR,
            timeout_seconds=5,
        )
    assert str(caught.value) == f"Grafana rejected the token (401) at {refusing_server}"
