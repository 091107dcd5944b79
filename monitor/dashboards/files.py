"""The dashboards shipped in the package (``monitor/dashboards/grafana/``: three dashboards and
Grafana's provisioning files) and how to read them. The JSON is written by
``python -m monitor.dashboards.generate``; Grafana provisions it read-only.

>>> sorted(d["uid"] for d in load_dashboards())
['drift-model', 'drift-overview', 'drift-service']
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from monitor.errors import InputError

DASHBOARD_DIR = Path(__file__).resolve().parent / "grafana"
DATASOURCE_UID = "drift-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
DATASOURCE_PROVISIONING = Path("provisioning") / "datasources" / "drift.yaml"


def load_dashboards(directory: Path | str = DASHBOARD_DIR) -> list[dict[str, Any]]:
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


