r"""Grafana dashboards: load them, list and render their InfluxQL, check them, push them.

The dashboards live as JSON under ``dashboards/`` (git is the source; Grafana provisions
them read-only). The helpers here are pure so that tests can check every panel query
against the metric contract and run it, rendered, against a real InfluxQL server.

>>> render_query('SELECT mean("psi") FROM "drift_feature" WHERE "model" =~ /^$model$/ '
...              'AND $timeFilter GROUP BY time($__interval)',
...              {"model": "churn.v2"}, "now-6h", "now", "1m")
'SELECT mean("psi") FROM "drift_feature" WHERE "model" =~ /^churn\\.v2$/ AND time > now() - 6h GROUP BY time(1m)'
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import niquests
import yaml
from grafana_client import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaUnauthorizedError,
)

from monitor.drift.registry import checks_for
from monitor.errors import InputError, ServiceError, UsageError
from monitor.ingest.schema import Kind

DATASOURCE_UID = "drift-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
DEFAULT_DIRECTORY = Path("dashboards")
DATASOURCE_PROVISIONING = Path("provisioning") / "datasources" / "drift.yaml"

_COMMON_FEATURE_FIELDS = frozenset({"records", "severity", "worst_check"})
# Per kind: descriptive fields the panels use, and every check of the registry with its
# threshold (a new check is queryable without touching this file).
_PANEL_FIELDS: dict[Kind, frozenset[str]] = {
    Kind.NUMERIC: frozenset({"min", "max", "mean", "training_mean", "training_min", "training_max"}),
    Kind.CATEGORICAL: frozenset({"new_values"}),
    Kind.TEXT: frozenset({"length_mean", "training_length_mean"}),
}
FEATURE_FIELDS_BY_KIND: dict[str, frozenset[str]] = {
    str(kind): _COMMON_FEATURE_FIELDS | _PANEL_FIELDS[kind]
    | {f for c in checks_for(kind) for f in (c, f"threshold_{c}")}
    for kind in Kind
}

# Measurement -> fields the worker writes. The one list dashboards may query.
METRIC_CONTRACT: dict[str, frozenset[str]] = {
    "drift_feature": frozenset().union(*FEATURE_FIELDS_BY_KIND.values()),
    "drift_language": frozenset({"share", "training_share"}),
    "drift_window": frozenset(
        {
            "records", "invalid_records", "late_records", "edge_record_rate", "alerts_firing",
            "features_warning", "features_critical", "missing_features",
            "unexpected_features", "window_seconds",
        }
    ),
    "drift_alert": frozenset({"value", "threshold", "message", "alert_id"}),
    "drift_service": frozenset(
        {
            "records_processed", "records_per_second", "invalid_records", "dlq_messages",
            "late_records", "consumer_lag", "metric_write_failures", "metric_points_buffered",
            "metric_points_dropped", "windows_evaluated",
        }
    ),
}  # fmt: skip

# Measurement -> tag keys; string fields are marked so test data can be generated.
METRIC_TAGS: dict[str, frozenset[str]] = {
    "drift_feature": frozenset({"model", "version", "feature", "kind", "profile"}),
    "drift_language": frozenset({"model", "version", "feature", "language"}),
    "drift_window": frozenset({"model", "version"}),
    "drift_alert": frozenset({"model", "version", "feature", "check", "severity", "status"}),
    "drift_service": frozenset({"worker"}),
}
STRING_FIELDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("drift_feature", "worst_check"),
        ("drift_feature", "new_values"),
        ("drift_alert", "message"),
        ("drift_alert", "alert_id"),
    }
)

# Variables Grafana itself defines for InfluxQL queries (not template variables).
GRAFANA_MACROS = frozenset(
    {
        "timeFilter", "__timeFilter", "interval", "__interval", "__interval_ms",
        "__from", "__to", "__range", "__range_s", "__range_ms", "__dashboard", "__org",
        "__user",
    }
)  # fmt: skip

_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::(\w+))?\}|(\w+))")
_REGEX_LITERAL = re.compile(r"(=~|!~)(\s*)/((?:\\.|[^/\\])*)/")
_STRING_LITERAL = re.compile(r"'(?:\\.|[^'\\])*'")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def load_dashboards(directory: Path | str = DEFAULT_DIRECTORY) -> list[dict[str, Any]]:
    """Every ``*.json`` dashboard in `directory`, sorted by file name."""
    paths = sorted(Path(directory).glob("*.json"))
    if not paths:
        raise InputError(f"no dashboard JSON files in directory ({directory})")
    dashboards = []
    for path in paths:
        try:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read dashboard ({path}): {error}") from None
        if not isinstance(dashboard, dict) or not dashboard.get("uid"):
            raise InputError(f"dashboard has no uid ({path})")
        dashboards.append(dashboard)
    return dashboards


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, depth first, including rows and the panels nested in collapsed rows."""
    stack = list(reversed(dashboard.get("panels", [])))
    while stack:
        panel = stack.pop()
        yield panel
        stack.extend(reversed(panel.get("panels", [])))


def panel_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(panel title, raw query)`` for every target of every panel, rows included."""
    return [
        (panel.get("title", ""), target.get("query", ""))
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def annotation_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(annotation name, query)`` for the dashboard's InfluxDB annotation queries."""
    found = []
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("datasource", {}).get("type") != "influxdb":
            continue
        target = annotation.get("target") or {}
        found.append(
            (annotation.get("name", ""), target.get("query") or annotation.get("query", ""))
        )
    return found


def template_variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Template variable name -> its query (``""`` for variables without one), in order."""
    variables = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query", "")
        if isinstance(query, Mapping):
            query = query.get("query", "")
        variables[variable["name"]] = str(query or "")
    return variables


def variables_used(query: str) -> set[str]:
    """Names of the ``$var`` / ``${var}`` references in `query`, Grafana macros included."""
    return {match[1] or match[3] for match in _VARIABLE.finditer(query)}


def render_query(
    query: str,
    variables: Mapping[str, str | Sequence[str]],
    time_from: str,
    time_to: str,
    interval: str,
) -> str:
    """`query` as Grafana sends it to InfluxDB for the given variables and time range.

    `time_from` and `time_to` are Grafana range ends: ``now``, ``now-6h``, epoch
    milliseconds, or RFC 3339 times. A variable inside a ``/regex/`` is regex-escaped and
    a multi-value becomes ``(a|b)``, as Grafana's InfluxDB datasource does.
    """
    interval_ms = _duration_ms(interval)
    from_ms, to_ms = _epoch_ms(time_from), _epoch_ms(time_to)
    macros = {
        "timeFilter": _time_filter(time_from, time_to),
        "__interval": interval,
        "interval": interval,
        "__interval_ms": str(interval_ms),
        "__from": str(from_ms),
        "__to": str(to_ms),
        "__range_ms": str(to_ms - from_ms),
        "__range_s": str((to_ms - from_ms) // 1000),
        "__range": f"{(to_ms - from_ms) // 1000}s",
    }
    macros["__timeFilter"] = macros["timeFilter"]

    def value(match: re.Match[str], in_regex: bool) -> str:
        name = match[1] or match[3]
        if name in macros:
            return macros[name]
        if name not in variables:
            raise UsageError(f"query uses an undefined variable (${name})")
        given = variables[name]
        values = [given] if isinstance(given, str) else list(given)
        if in_regex or match[2] == "regex":
            escaped = [re.escape(item).replace("/", r"\/") for item in values]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        return ",".join(values)

    def regex_literal(match: re.Match[str]) -> str:
        body = _VARIABLE.sub(lambda m: value(m, in_regex=True), match[3])
        return f"{match[1]}{match[2]}/{body}/"

    pieces = []
    position = 0
    for match in _REGEX_LITERAL.finditer(query):
        pieces.append(_VARIABLE.sub(lambda m: value(m, False), query[position : match.start()]))
        pieces.append(regex_literal(match))
        position = match.end()
    pieces.append(_VARIABLE.sub(lambda m: value(m, False), query[position:]))
    return "".join(pieces)


def _time_bound(value: str) -> str:
    if value == "now":
        return "now()"
    relative = re.fullmatch(r"now-(\d+(?:ms|s|m|h|d|w))", value)
    if relative:
        return f"now() - {relative[1]}"
    if value.isdigit():
        return f"{value}ms"
    return f"'{value}'"


def _time_filter(time_from: str, time_to: str) -> str:
    if time_to == "now":
        return f"time > {_time_bound(time_from)}"
    return f"time >= {_time_bound(time_from)} AND time <= {_time_bound(time_to)}"


def _duration_ms(duration: str) -> int:
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + unit for n, unit in parts) != duration:
        raise UsageError(f"not a Grafana interval ({duration})")
    return sum(int(n) * _DURATION_MS[unit] for n, unit in parts)


def _epoch_ms(value: str) -> int:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    if value == "now":
        return now_ms
    if value.startswith("now-"):
        return now_ms - _duration_ms(value[4:])
    if value.isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError:
        raise UsageError(f"not a Grafana time ({value})") from None


# --- A small InfluxQL reader: enough to check queries against METRIC_CONTRACT. ---

_KEYWORDS = frozenset(
    {
        "select", "from", "where", "group", "by", "order", "limit", "slimit", "offset",
        "soffset", "as", "and", "or", "not", "time", "now", "asc", "desc", "show", "tag",
        "values", "with", "key", "true", "false", "null",
    }
)  # fmt: skip
_CLAUSE = re.compile(
    r"\b(SELECT|FROM|WHERE|GROUP\s+BY|ORDER\s+BY|LIMIT|SLIMIT|OFFSET|SOFFSET|WITH\s+KEY)\b",
    re.IGNORECASE,
)
_IDENTIFIER = re.compile(r'"((?:\\.|[^"\\])*)"|\b([A-Za-z_]\w*)\b(\s*\()?')


@dataclass(frozen=True)
class QueryReferences:
    """What an InfluxQL statement reads: its measurement, fields and tag or field keys."""

    measurement: str
    fields: frozenset[str]
    condition_keys: frozenset[str]
    group_keys: frozenset[str]
    tag_key: str | None = None


def parse_influxql(query: str) -> QueryReferences:
    """The measurement, selected fields, WHERE keys and GROUP BY tags of one statement.

    >>> refs = parse_influxql('SELECT max("psi") AS "psi", last("threshold_psi") FROM '
    ...     '"drift_feature" WHERE "model" =~ /^$model$/ AND $timeFilter '
    ...     'GROUP BY time($__interval), "version" fill(none)')
    >>> refs.measurement, sorted(refs.fields), sorted(refs.condition_keys), sorted(refs.group_keys)
    ('drift_feature', ['psi', 'threshold_psi'], ['model'], ['version'])
    """
    text = _REGEX_LITERAL.sub(r"\1 ''", query)
    text = _STRING_LITERAL.sub("''", text)
    text = _VARIABLE.sub(" ", text)
    text = re.sub(r"\b(fill|tz)\s*\([^)]*\)", " ", text, flags=re.IGNORECASE)
    text = re.sub(r'\bAS\s+("(?:\\.|[^"\\])*"|\w+)', " ", text, flags=re.IGNORECASE)
    if "(SELECT" in re.sub(r"\s+", "", text).upper():
        raise ValueError(f"subqueries are not supported: {query}")
    clauses: dict[str, str] = {}
    marks = list(_CLAUSE.finditer(text))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(text)
        clauses[re.sub(r"\s+", " ", mark[1].upper())] = text[mark.end() : end]
    measurements = sorted(_identifiers(clauses.get("FROM", "")))
    if len(measurements) != 1:
        raise ValueError(f"expected one measurement after FROM, found {measurements}: {query}")
    tag_key = sorted(_identifiers(clauses.get("WITH KEY", "").replace("=", " "))) or [None]
    return QueryReferences(
        measurement=measurements[0],
        fields=frozenset(_identifiers(clauses.get("SELECT", ""))),
        condition_keys=frozenset(_identifiers(clauses.get("WHERE", ""))),
        group_keys=frozenset(_identifiers(clauses.get("GROUP BY", ""))),
        tag_key=tag_key[0],
    )


def _identifiers(clause: str) -> set[str]:
    found = set()
    for match in _IDENTIFIER.finditer(clause):
        if match[1] is not None:
            found.add(match[1])
        elif not match[3] and match[2].lower() not in _KEYWORDS:
            found.add(match[2])
    return found


def contract_violations(query: str) -> list[str]:
    """Why `query` reads something outside METRIC_CONTRACT / METRIC_TAGS ([] if it does not)."""
    try:
        refs = parse_influxql(query)
    except ValueError as error:
        return [str(error)]
    if refs.measurement not in METRIC_CONTRACT:
        return [f"unknown measurement {refs.measurement!r}"]
    fields, tags = METRIC_CONTRACT[refs.measurement], METRIC_TAGS[refs.measurement]
    problems = [f"unknown field {name!r} in {refs.measurement}" for name in refs.fields - fields]
    problems += [
        f"unknown key {name!r} in WHERE of {refs.measurement}"
        for name in refs.condition_keys - fields - tags
    ]
    problems += [
        f"GROUP BY {name!r} is not a tag of {refs.measurement}" for name in refs.group_keys - tags
    ]
    if refs.tag_key is not None and refs.tag_key not in tags:
        problems.append(f"WITH KEY {refs.tag_key!r} is not a tag of {refs.measurement}")
    return sorted(problems)


# --- Pushing to a Grafana server. ---


def datasource_definition(
    directory: Path | str = DEFAULT_DIRECTORY, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The provisioned datasource as a Grafana API payload, ``$VAR``s taken from `environ`."""
    environ = os.environ if environ is None else environ
    path = Path(directory) / DATASOURCE_PROVISIONING
    try:
        provisioning = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InputError(f"cannot read datasource provisioning ({path}): {error}") from None
    source = next(d for d in provisioning["datasources"] if d.get("uid") == DATASOURCE_UID)

    def expand(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: expand(value) for key, value in item.items()}
        if isinstance(item, str):
            return _VARIABLE.sub(lambda m: _environment(environ, m[1] or m[3]), item)
        return item

    keys = ("name", "uid", "type", "access", "url", "isDefault", "jsonData", "secureJsonData")
    return {key: expand(source[key]) for key in keys if key in source}


_ENVIRONMENT_DEFAULTS = {"INFLUX_URL": "http://influxdb:8086"}


def _environment(environ: Mapping[str, str], name: str) -> str:
    if name in environ:
        return environ[name]
    if name in _ENVIRONMENT_DEFAULTS:
        return _ENVIRONMENT_DEFAULTS[name]
    raise UsageError(f"the datasource needs an environment variable that is not set ({name})")


def push_dashboards(
    url: str,
    token: str | None = None,
    *,
    include_datasource: bool = False,
    directory: Path | str = DEFAULT_DIRECTORY,
    folder_uid: str | None = None,
    timeout_seconds: float = 10.0,
) -> list[str]:
    """Create or overwrite every dashboard of `directory` in Grafana; return their uids.

    With `include_datasource`, the InfluxDB datasource is created or updated first (by
    uid), from the provisioning file and the ``INFLUX_URL`` / ``INFLUX_TOKEN`` environment.
    """
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise UsageError(f"the Grafana URL needs http:// or https:// and a host ({url})")
    dashboards = load_dashboards(directory)
    datasource = datasource_definition(directory) if include_datasource else None
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_seconds)
    pushed = []
    try:
        if datasource is not None:
            _upsert_datasource(api, datasource)
        for dashboard in dashboards:
            payload: dict[str, Any] = {
                "dashboard": {**dashboard, "id": None},
                "overwrite": True,
                "message": "pushed by drift-monitor",
            }
            if folder_uid is not None:
                payload["folderUid"] = folder_uid
            api.dashboard.update_dashboard(payload)
            pushed.append(dashboard["uid"])
    except GrafanaUnauthorizedError:
        raise ServiceError(f"Grafana rejected the token (401) at {url}") from None
    except (GrafanaClientError, GrafanaServerError) as error:
        raise ServiceError(
            f"Grafana at {url} answered HTTP {error.status_code}{_detail(error)}"
        ) from None
    except (GrafanaException, niquests.exceptions.RequestException, OSError) as error:
        raise ServiceError(f"cannot reach Grafana at {url}: {_network_reason(error)}") from None
    return pushed


def _upsert_datasource(api: GrafanaApi, datasource: dict[str, Any]) -> None:
    try:
        api.datasource.get_datasource_by_uid(datasource["uid"])
    except GrafanaClientError as error:
        if error.status_code != 404:
            raise
        api.datasource.create_datasource(datasource)
    else:
        api.datasource.update_datasource_by_uid(datasource["uid"], datasource)


def _detail(error: GrafanaException) -> str:
    response = error.response
    if isinstance(response, Mapping):
        response = response.get("message", "")
    text = _one_line(str(response or ""))[:200]
    return f": {text}" if text != "no reason given" else ""


def _network_reason(error: BaseException) -> str:
    """The useful part of a connection error ("[Errno 111] Connection refused")."""
    text = _one_line(str(error))
    for pattern in (r"\[Errno [^\]]*\][^'\")(]*", r"Failed to resolve '[^']*'", r"timed out"):
        found = re.search(pattern, text)
        if found:
            return found[0].strip()
    return text


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "no reason given"
