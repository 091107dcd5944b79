r"""InfluxQL as the dashboards send it: Grafana's variables and macros rendered, and a small
reader that checks a query against the metric contract (`monitor.outputs.line_protocol`: the
measurements, fields and tags the worker writes). Pure: no Grafana, no InfluxDB.

>>> render_query('SELECT mean("psi") FROM "drift_feature" WHERE "model" =~ /^$model$/ '
...              'AND $timeFilter GROUP BY time($__interval)',
...              {"model": "churn.v2"}, "now-6h", "now", "1m")
'SELECT mean("psi") FROM "drift_feature" WHERE "model" =~ /^churn\\.v2$/ AND time > now() - 6h GROUP BY time(1m)'
>>> contract_violations('SELECT max("psi_v2") FROM "drift_feature" WHERE $timeFilter')
["unknown field 'psi_v2' in drift_feature"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.errors import UsageError
from monitor.outputs.line_protocol import METRICS, TAGS

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


# --- A small InfluxQL reader: enough to check queries against the metric contract. ---

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
    """Why `query` reads something the worker does not write ([] if it reads nothing else).

    A tag may be selected too (annotations take their tags from selected columns).
    """
    try:
        refs = parse_influxql(query)
    except ValueError as error:
        return [str(error)]
    if refs.measurement not in METRICS:
        return [f"unknown measurement {refs.measurement!r}"]
    fields, tags = METRICS[refs.measurement], set(TAGS[refs.measurement])
    problems = [f"unknown field {name!r} in {refs.measurement}"
                for name in refs.fields - fields - tags]
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
