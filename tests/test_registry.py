"""One registry of checks: every registered check has a metric, a threshold field, a README row
and a place in the dashboards' contract; evaluation emits exactly the registry's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.dashboards.files import load_dashboards, panel_queries
from monitor.demo.synthetic import generate_columns, score
from monitor.drift.evaluate import compare
from monitor.drift.registry import CHECKS, checks_for, markdown_table
from monitor.ingest.schema import Kind
from monitor.outputs.line_protocol import METRICS, report_points
from monitor.profile.model import Profile
from monitor.summaries.window import WindowSummary

README = Path(__file__).resolve().parent.parent / "README.md"


def _report(profile: Profile):
    cols = generate_columns(800, np.random.default_rng(2))
    cols["prediction"] = score(cols)
    window = WindowSummary(profile)
    window.update_columns(cols, 800)
    window.seen_features = set(cols)
    return compare(window, profile)


def test_names_are_unique_per_kind_and_every_kind_has_checks() -> None:
    for kind in Kind:
        names = [c.name for c in CHECKS if kind in c.kinds]
        assert names and len(names) == len(set(names)), kind


def test_every_check_is_a_metric_and_a_threshold_of_each_window(profile: Profile) -> None:
    report = _report(profile)
    for feature in report.features.values():
        checks = set(checks_for(feature.kind))
        assert checks <= set(feature.metrics), feature.name
        assert set(feature.thresholds) == checks, feature.name


def test_every_check_and_threshold_is_a_field_the_worker_writes(profile: Profile) -> None:
    fields = METRICS["drift_feature"]
    for check in CHECKS:
        assert check.name in fields and f"threshold_{check.name}" in fields
    written = {kv.split("=")[0] for p in report_points(_report(profile), profile)
               if p.startswith("drift_feature,") for kv in p.split(" ")[1].split(",")}
    assert {f"threshold_{c.name}" for c in CHECKS} <= written


def test_the_shipped_dashboards_draw_every_check_with_its_threshold() -> None:
    """The dashboards are generated from the registry: a new check gets its panel."""
    queries = " ".join(q for d in load_dashboards() for _, q in panel_queries(d))
    for check in CHECKS:
        assert f'"{check.name}"' in queries and f'"threshold_{check.name}"' in queries, check.name


def test_the_readme_table_is_the_registrys() -> None:
    """Regenerate with `python -m monitor.drift.registry` after changing a check."""
    text = README.read_text(encoding="utf-8")
    assert markdown_table() in text
    for check in CHECKS:
        assert f"| `{check.name}` |" in text
