"""The overview dashboard (`drift-overview`): every model version now and over time, the status
of every feature, the alert episodes."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as dm

from monitor.dashboards.panels import (
    MODEL,
    RATE_UNIT,
    agg,
    annotation,
    base,
    equals,
    match,
    select,
    severity_mapping,
    stat_panel,
    steps,
    table,
    table_sort,
    tag_values,
    timeseries,
    variable,
)


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
              .sort_by([table_sort("severity")])
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
