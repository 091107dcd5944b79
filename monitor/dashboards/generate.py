"""The three Grafana dashboards as code. ``python -m monitor.dashboards.generate`` writes them to
``monitor/dashboards/grafana/`` (what is committed and provisioned; a test checks the files are
exactly what this module writes). Every query names only the metric contract of
`monitor.outputs.line_protocol`; the drill-down plots every check of each feature kind with its
threshold (`checks_by_kind`), so a new check shows up without touching this file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from monitor.dashboards.files import DASHBOARD_DIR, iter_panels
from monitor.dashboards.panels import (
    agg,
    annotation,
    bars,
    equals,
    fixed_colour,
    match,
    select,
    severity_mapping,
    severity_timeline,
    stat_panel,
    steps,
    table,
    timeseries,
    variable,
)
from monitor.drift import checks as drift_checks
from monitor.ingest.schema import Kind

MODEL = [match("model"), match("version")]
TAGS = ["drift-monitor"]


def checks_by_kind() -> dict[Kind, dict[str, bool]]:
    """Every check run on each feature kind (each a drift_feature field with a
    ``threshold_<check>`` field) -> whether a low value is the drifting one (p-values).

    Read from the registry of checks (`monitor.drift.registry`, issue 11) where it exists, else
    from the tables in `monitor.drift.checks` it replaces.
    """
    try:
        from monitor.drift.registry import checks_for  # type: ignore[import-not-found]
    except ImportError:
        tables = vars(drift_checks)
        return {kind: {c: c in tables["LOWER_IS_WORSE"]
                       for c in (*tables["CALIBRATED"][kind], *tables["RATE_CHECKS"][kind])}
                for kind in Kind}
    return {kind: {name: bool(check.lower_is_worse) for name, check in checks_for(kind).items()}
            for kind in Kind}


# Checks drawn together, per kind, in this order; checks not named here get a panel of their own.
GROUPS: dict[Kind, list[tuple[str, str, list[str]]]] = {
    Kind.NUMERIC: [
        ("Distribution drift: PSI, JS, KS", "Distance between this window's distribution and the "
         "training profile; dashed lines are the calibrated thresholds.", ["psi", "js", "ks"]),
        ("Mean shift and Wasserstein distance", "In training standard deviations.",
         ["mean_shift", "wasserstein"]),
        ("Null, out-of-range and type-mismatch rates", "Shares of the window's records.",
         ["null_rate", "out_of_range_rate", "type_mismatch_rate"]),
    ],
    Kind.CATEGORICAL: [
        ("Distribution drift: PSI, JS", "Over category frequencies, unseen values pooled.",
         ["psi", "js"]),
        ("Chi-squared p-value", "Small is drift: the window's counts are unlikely under the "
         "training frequencies.", ["chi2_p"]),
        ("Novelty and null rates", "Shares of the window's records.",
         ["novelty_rate", "null_rate", "type_mismatch_rate"]),
    ],
    Kind.TEXT: [
        ("Length distribution: PSI", "PSI of the text length distribution.", ["length_psi"]),
        ("Language drift", "Total variation distance of the language mix; share of texts in a "
         "language not seen in training.", ["language_tvd", "unseen_language_rate"]),
        ("Vocabulary: out-of-vocabulary rate and JS", "Tokens outside the training vocabulary; "
         "JS distance of word frequencies.", ["oov_rate", "vocab_js"]),
        ("Null and type-mismatch rates", "Shares of the window's records.",
         ["null_rate", "type_mismatch_rate"]),
    ],
}
RATE_UNIT = "percentunit"


def base(uid: str, title: str, description: str, time_from: str) -> dashboard.Dashboard:
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(TAGS)
            .timezone("utc").readonly().tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .time(time_from, "now").refresh("30s")
            .timepicker(dashboard.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m"]))
            .link(dashboard.DashboardLink("drift-monitor").type(dm.DashboardLinkType.DASHBOARDS)
                  .tags(TAGS).as_dropdown(False).include_vars(False).keep_time(True)
                  .target_blank(False).icon("external link")))


# -- overview --------------------------------------------------------------------------------------
def overview() -> dashboard.Dashboard:
    window = "drift_window"
    per_model = {"group_by": ["model", "version"], "per_interval": False}
    over_time = {"group_by": ["model", "version"]}
    status_query = select([agg("last", "severity", "severity"), agg("last", "worst_check",
                           "worst check")], "drift_feature", MODEL,
                          group_by=["model", "version", "feature"], per_interval=False)
    drill = ("/d/drift-model/drift-model-drill-down?var-model=${__data.fields.model}"
             "&var-version=${__data.fields.version}&var-feature=${__data.fields.feature}"
             "&${__url_time_range}")
    status = (table("Feature status (latest window)", "Worst finding of every feature in the "
                    "latest window of the time range, worst first. Click a feature to open its "
                    "drill-down.", status_query, height=12)
              .override_by_name("severity", [
                  dm.DynamicConfigValue(id_val="mappings", value=severity_mapping()),
                  dm.DynamicConfigValue(id_val="custom.cellOptions",
                                        value={"type": "color-background"}),
                  dm.DynamicConfigValue(id_val="custom.width", value=110)])
              .override_by_name("feature", [dm.DynamicConfigValue(id_val="links", value=[
                  {"title": "Open the feature drill-down", "url": drill}])])
              .sort_by([dashboard_sort("severity")])
              .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
                  "excludeByName": {"Time": True},
                  "indexByName": {"model": 0, "version": 1, "feature": 2, "severity": 3,
                                  "worst check": 4}})))
    episodes = select([agg("", "severity"), agg("", "status"), agg("", "message")],
                      "drift_episode", MODEL, group_by=["model", "version", "feature", "episode"],
                      per_interval=False, tail="ORDER BY time DESC LIMIT 50")
    return (base("drift-overview", "Drift overview", "Every monitored model version: traffic, "
                 "data quality, drifting features and alerts.", "now-6h")
            .with_variable(variable("model", "Model", tag_values(window, "model"), multi=True))
            .with_variable(variable("version", "Version", tag_values(window, "version",
                                                                      [match("model")]), multi=True))
            .annotation(annotation("Critical drift alerts", "red", select(
                [agg("", "message"), agg("", "feature"), agg("", "check")], "drift_alert",
                [*MODEL, equals("severity", "critical"), equals("status", "firing")],
                per_interval=False), tags=["feature", "check"]))
            .with_row(dashboard.Row("Now, per model version (latest window in the time range)"))
            .with_panel(stat_panel("Records/s", "Records in the latest evaluated window divided "
                                   "by its length.", select(['last("records") / last("window_seconds") AS "records/s"'],
                                                            window, MODEL, **per_model),
                                   steps(("blue", None)), unit="short"))
            .with_panel(stat_panel("Features at critical", "Features whose worst finding in the "
                                   "latest window is critical. Open the model drill-down for which "
                                   "ones.", select([agg("last", "features_critical")], window, MODEL,
                                                   **per_model), steps(("green", None), ("red", 1))))
            .with_panel(stat_panel("Features at warning", "Features whose worst finding in the "
                                   "latest window is a warning.", select(
                                       [agg("last", "features_warning")], window, MODEL, **per_model),
                                   steps(("green", None), ("orange", 1))))
            .with_panel(stat_panel("Alert episodes open", "Alert episodes of the model open "
                                   "after its latest window.", select(
                                       [agg("last", "alerts_firing")], window, MODEL, **per_model),
                                   steps(("green", None), ("red", 1))))
            .with_panel(stat_panel("Edge-record rate", "Records with almost every feature null or "
                                   "a value far outside the training range.", select(
                                       [agg("last", "edge_record_rate")], window, MODEL, **per_model),
                                   steps(("green", None), ("orange", 0.01)), unit=RATE_UNIT))
            .with_panel(stat_panel("Missing / unexpected features", "Profile features absent "
                                   "from the window; features the profile does not know.", select(
                                       [agg("last", "missing_features", "missing"),
                                        agg("last", "unexpected_features", "unexpected")],
                                       window, MODEL, **per_model), steps(("green", None), ("orange", 1))))
            .with_row(dashboard.Row("Features and alert episodes"))
            .with_panel(status)
            .with_panel(table("Alert episodes", "One row per alert episode (a feature drifting, "
                              "a trend, a model-level finding), newest first, with its worst "
                              "severity and whether it is still open.", episodes, height=12))
            .with_row(dashboard.Row("Traffic and data quality"))
            .with_panel(timeseries("Records/s", "Records per second of each model version.", [
                select(['sum("records") / sum("window_seconds") AS "records/s"'], window, MODEL,
                       **over_time)], unit="short"))
            .with_panel(timeseries("Invalid and late records", "Per window.", [
                select([agg("sum", "invalid_records", "invalid"), agg("sum", "late_records", "late")],
                       window, MODEL, **over_time)], unit="short"))
            .with_panel(timeseries("Edge-record rate", "Share of records at the edges.", [
                select([agg("max", "edge_record_rate")], window, MODEL, **over_time)],
                unit=RATE_UNIT))
            .with_panel(timeseries("Features at warning / critical", "Per window.", [
                select([agg("max", "features_warning", "warning"),
                        agg("max", "features_critical", "critical")], window, MODEL, **over_time)],
                width=12))
            .with_panel(timeseries("Alert episodes open", "Per window.", [
                select([agg("max", "alerts_firing")], window, MODEL, **over_time)], width=12)))


def tag_values(measurement: str, key: str, where: Sequence[str] = ()) -> str:
    text = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"'
    return text + (" WHERE " + " AND ".join(where) if where else "")


def dashboard_sort(column: str) -> Any:
    from grafana_foundation_sdk.builders import common

    return common.TableSortByFieldState().display_name(column).desc(True)


# -- model drill-down ------------------------------------------------------------------------------
def check_fields(checks: Sequence[str], lower_is_worse: dict[str, bool]) -> list[str]:
    """Each check (its worst value per interval) with its threshold."""
    fields = []
    for check in checks:
        worst = "min" if lower_is_worse[check] else "max"
        label = check.replace("_", " ")
        fields += [agg(worst, check, label), agg("last", f"threshold_{check}", f"{label} threshold")]
    return fields


def feature_row(kind: Kind, title: str) -> list[Any]:
    """The panels of one feature of `kind` (its row repeats per feature)."""
    var = f"{kind}_feature"
    where = [*MODEL, match("feature", var)]
    panels: list[Any] = []
    if kind is Kind.NUMERIC:
        panels.append(timeseries(f"${var}: Mean vs training", "Window mean against the training "
                                 "mean; the band is the training min-max range.", [select(
                                     [agg("mean", "mean"), agg("last", "training_mean", "training mean"),
                                      agg("last", "training_min", "training min"),
                                      agg("last", "training_max", "training max"),
                                      agg("min", "min", "window min"), agg("max", "max", "window max")],
                                     "drift_feature", where)], width=12, fill=0, soft_min=None)
                      .override_by_name("training max", [
                          dm.DynamicConfigValue(id_val="custom.fillBelowTo", value="training min"),
                          dm.DynamicConfigValue(id_val="custom.fillOpacity", value=15),
                          dm.DynamicConfigValue(id_val="custom.lineWidth", value=0),
                          fixed_colour("green")])
                      .override_by_name("training min", [
                          dm.DynamicConfigValue(id_val="custom.lineWidth", value=0), fixed_colour("green")])
                      .override_by_name("training mean", [
                          dm.DynamicConfigValue(id_val="custom.lineStyle",
                                                value={"fill": "dash", "dash": [10, 10]}),
                          fixed_colour("green")]))
    if kind is Kind.TEXT:
        panels.append(timeseries(f"${var}: Text length vs training", "Mean text length of the "
                                 "window against training.", [select(
                                     [agg("mean", "length_mean", "length mean"),
                                      agg("last", "training_length_mean", "training length mean")],
                                     "drift_feature", where)], soft_min=None))
        language = "drift_language"
        panels.append(timeseries(f"${var}: Language share", "Share of each detected language per "
                                 "window.", [select([agg("last", "share")], language, where,
                                                    group_by=["language"])],
                                 unit=RATE_UNIT, fill=40, stacked=True))
        panels.append(bars(f"${var}: Language share: latest window vs training", "Latest share "
                           "of each language next to its training share.", select(
                               [agg("last", "share", "now"), agg("last", "training_share", "training")],
                               language, where, group_by=["language"], per_interval=False),
                           "language", unit=RATE_UNIT))
    checks = checks_by_kind()[kind]
    grouped = [(t, d, [c for c in cs if c in checks]) for t, d, cs in GROUPS[kind]]
    named = {c for _, _, cs in grouped for c in cs}
    grouped += [(c.replace("_", " "), f"The {c} check.", [c]) for c in checks if c not in named]
    for index, (panel_title, description, group) in enumerate(g for g in grouped if g[2]):
        unit = RATE_UNIT if all(c.endswith("_rate") for c in group) else None
        width = 12 if kind is Kind.NUMERIC and index == 0 else 8  # beside "Mean vs training"
        panels.append(timeseries(f"${var}: {panel_title}", description + " Dashed: thresholds.",
                                 [select(check_fields(group, checks), "drift_feature", where)],
                                 unit=unit, width=width))
    if kind is Kind.CATEGORICAL:
        panels.append(table(f"${var}: Newest unseen values", "Values not in the training profile, "
                            "with counts, per window, newest first.", select(
                                [agg("", "new_values", "new values (value:count)"),
                                 agg("", "novelty_rate", "novelty rate")], "drift_feature",
                                [*where, "\"new_values\" <> ''"], per_interval=False,
                                tail="ORDER BY time DESC LIMIT 20"), width=16)
                      .override_by_name("novelty rate", [
                          dm.DynamicConfigValue(id_val="unit", value=RATE_UNIT)]))
    panels.append(severity_timeline(f"${var}: Severity", select(
        [agg("max", "severity")], "drift_feature", where)))
    return [dashboard.Row(title).repeat(var), *panels]


def drilldown() -> dashboard.Dashboard:
    feature = "drift_feature"
    where_feature = [*MODEL, '("feature" =~ /^$feature$/ OR "feature" = \'\')']
    board = (base("drift-model", "Drift: model drill-down", "One model version, feature by "
                  "feature: drift scores against thresholds, training baselines, data quality, "
                  "alert episodes.", "now-3h")
             .with_variable(variable("model", "Model", tag_values(feature, "model"), multi=False))
             .with_variable(variable("version", "Version", tag_values(
                 feature, "version", [match("model")]), multi=False))
             .with_variable(variable("feature", "Feature", tag_values(
                 feature, "feature", MODEL), multi=True)))
    for kind in Kind:
        board = board.with_variable(variable(
            f"{kind}_feature", f"{kind} features",
            tag_values(feature, "feature", [*MODEL, equals("kind", str(kind)), match("feature")]),
            multi=True, hidden=True))
    board = (board
             .annotation(annotation("Alert episodes (resolved)", "orange", select(
                 [agg("", "end_ms"), agg("", "message"), agg("", "severity"), agg("", "feature"),
                  agg("", "episode")], "drift_episode", [*where_feature, equals("status", "resolved")],
                 per_interval=False), tags=["feature", "episode", "severity"], time_end="end_ms"))
             .annotation(annotation("Alert episodes still open (start)", "red", select(
                 [agg("", "message"), agg("", "severity"), agg("", "feature"), agg("", "episode")],
                 "drift_episode", [*where_feature, "\"status\" <> 'resolved'"],
                 per_interval=False), tags=["feature", "episode", "severity"]))
             .annotation(annotation("Alert events", "yellow", select(
                 [agg("", "message"), agg("", "feature"), agg("", "check"), agg("", "severity")],
                 "drift_alert", [*where_feature, "\"status\" <> 'resolved'"], per_interval=False),
                 tags=["feature", "check", "severity"]))
             .with_row(dashboard.Row("Model version $model v$version"))
             .with_panel(timeseries("Records/s and invalid / late records", "Traffic of this "
                                    "model version per window.", [
                                        select(['sum("records") / sum("window_seconds") AS "records/s"'],
                                               "drift_window", MODEL),
                                        select([agg("sum", "invalid_records", "invalid per window"),
                                                agg("sum", "late_records", "late per window")],
                                               "drift_window", MODEL)], width=12, unit="short"))
             .with_panel(table("Alert episodes", "Alert episodes of the selected features, "
                               "newest first.", select(
                                   [agg("", "severity"), agg("", "status"), agg("", "message")],
                                   "drift_episode", where_feature, group_by=["feature", "episode"],
                                   per_interval=False, tail="ORDER BY time DESC LIMIT 20"))))
    for kind in Kind:
        row, *panels = feature_row(kind, f"{str(kind).capitalize()} feature: ${kind}_feature")
        board = board.with_row(row)
        for panel in panels:
            board = board.with_panel(panel)
    return board


# -- service health --------------------------------------------------------------------------------
def service_health() -> dashboard.Dashboard:
    svc, where = "drift_service", [match("worker")]
    now = {"group_by": ["worker"], "per_interval": False}
    over = {"group_by": ["worker"]}

    def rate(field: str, alias: str, per: str = "1s") -> str:
        return f'non_negative_derivative(max("{field}"), {per}) AS "{alias}"'

    def counter(title: str, field: str, what: str) -> Any:
        return stat_panel(title, f"{what} in the time range.",
                          select([f'spread("{field}")'], svc, where, **now),
                          steps(("green", None), ("red", 1)))

    return (base("drift-service", "Drift service health", "The drift-monitor workers themselves: "
                 "throughput, Kafka lag, dead letters, metric writes.", "now-3h")
            .with_variable(variable("worker", "Worker", tag_values(svc, "worker"), multi=True))
            .with_row(dashboard.Row("Now"))
            .with_panel(stat_panel("Records/s", "Records per second, as the worker reports it.",
                                   select([agg("last", "records_per_second")], svc, where, **now),
                                   steps(("blue", None)), unit="short"))
            .with_panel(stat_panel("Consumer lag", "Records not yet read.", select(
                [agg("last", "consumer_lag")], svc, where, **now),
                steps(("green", None), ("orange", 10000), ("red", 100000))))
            .with_panel(counter("Dead-lettered in range", "dlq_messages", "Messages dead-lettered"))
            .with_panel(counter("Metric write failures in range", "metric_write_failures",
                                "Failed writes to the metrics store"))
            .with_panel(counter("Metric points dropped in range", "metric_points_dropped",
                                "Points dropped from a full outbox"))
            .with_panel(stat_panel("Windows evaluated in range", "Model windows evaluated.",
                                   select(['spread("windows_evaluated")'], svc, where, **now),
                                   steps(("blue", None))))
            .with_row(dashboard.Row("Throughput and lag"))
            .with_panel(timeseries("Throughput", "Records processed per second.", [select(
                [rate("records_processed", "processed/s"),
                 agg("mean", "records_per_second", "reported/s")], svc, where, **over)],
                width=12, unit="short"))
            .with_panel(timeseries("Consumer lag", "Records not yet read.", [select(
                [agg("max", "consumer_lag", "lag")], svc, where, **over)], width=12, unit="short"))
            .with_row(dashboard.Row("Bad input"))
            .with_panel(timeseries("Dead-letter rate", "Messages dead-lettered per second.", [
                select([rate("dlq_messages", "dead-lettered/s")], svc, where, **over)]))
            .with_panel(timeseries("Invalid and late records", "Per second.", [select(
                [rate("invalid_records", "invalid/s"), rate("late_records", "late/s")],
                svc, where, **over)]))
            .with_panel(timeseries("Windows evaluated", "Per minute.", [select(
                [rate("windows_evaluated", "windows/min", "1m")], svc, where, **over)]))
            .with_row(dashboard.Row("Metric writes"))
            .with_panel(timeseries("Metric write failures", "Per second.", [select(
                [rate("metric_write_failures", "failures/s")], svc, where, **over)]))
            .with_panel(timeseries("Buffered metric points", "Points waiting in the outbox.", [
                select([agg("max", "metric_points_buffered", "buffered")], svc, where, **over)]))
            .with_panel(timeseries("Dropped metric points", "Per second.", [select(
                [rate("metric_points_dropped", "dropped/s")], svc, where, **over)])))


# -- writing ---------------------------------------------------------------------------------------
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
