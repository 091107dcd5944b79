"""The three Grafana dashboards as code. ``python -m monitor.dashboards.generate`` writes them to
``monitor/dashboards/grafana/`` (what is committed, shipped in the package and provisioned; a
test checks the files are exactly what this module writes). Each dashboard is a module of its
own (`overview`, `drilldown`, `service_health`) built on Grafana's foundation SDK with the house
style of `panels`; every query names only the metric contract of
`monitor.outputs.line_protocol` (tests/test_dashboards.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from monitor.dashboards.drilldown import drilldown
from monitor.dashboards.files import DASHBOARD_DIR, iter_panels
from monitor.dashboards.overview import overview
from monitor.dashboards.service_health import service_health

DASHBOARDS = {"overview.json": overview, "model-drilldown.json": drilldown,
              "service-health.json": service_health}


def as_dict(builder: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model: `id` null (Grafana assigns it), panel ids numbered in order,
    panels laid out left to right in their order (`layout`)."""
    model: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    layout(model["panels"])
    for number, panel in enumerate(iter_panels(model), 1):
        panel["id"] = number
    return {"id": None, **model}


def layout(panels: list[dict[str, Any]], columns: int = 24) -> None:
    """Place panels on Grafana's grid in order: left to right, a panel that does not fit on the
    line starts the next one, a row takes a whole line. (The SDK's own placement lets a panel
    cross the right edge.)

    >>> panels = [{"type": "row", "gridPos": {"w": 24, "h": 1}}] + [
    ...     {"type": "x", "gridPos": {"w": w, "h": 8}} for w in (12, 8, 8, 16)]
    >>> layout(panels)
    >>> [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels]
    [(0, 0), (0, 1), (12, 1), (0, 9), (8, 9)]
    """
    x = y = line_height = 0
    for panel in panels:
        grid = panel["gridPos"]
        if panel["type"] == "row" or x + grid["w"] > columns:
            x, y, line_height = 0, y + line_height, 0
        grid["x"], grid["y"] = x, y
        if panel["type"] == "row":
            y += grid["h"]
        else:
            x += grid["w"]
            line_height = max(line_height, grid["h"])


def rendered() -> dict[str, str]:
    """File name -> the text this module writes for it."""
    return {name: json.dumps(as_dict(make()), indent=2, ensure_ascii=False) + "\n"
            for name, make in DASHBOARDS.items()}


def write(directory: Path = DASHBOARD_DIR) -> list[Path]:
    written = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARD_DIR):
        print(f"wrote {path}")
