"""Building blocks for the dashboards, on Grafana's foundation SDK: raw InfluxQL targets and
annotations (the SDK has no InfluxDB query types, so these two are small `Dataquery` /
`AnnotationTarget` classes of our own), InfluxQL statements, and the panel kinds the three
dashboards use, each with the house style (datasource pinned by uid, thresholds dashed red,
severities coloured the same everywhere).

>>> select([agg("max", "psi"), agg("last", "threshold_psi", "psi threshold")], "drift_feature",
...        [match("model"), match("feature", "numeric_feature")])
'SELECT max("psi") AS "psi", last("threshold_psi") AS "psi threshold" FROM "drift_feature" WHERE "model" =~ /^$model$/ AND "feature" =~ /^$numeric_feature$/ AND $timeFilter GROUP BY time($__interval) fill(none)'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import barchart, common, dashboard, stat, statetimeline
from grafana_foundation_sdk.builders import table as table_builder
from grafana_foundation_sdk.builders import timeseries as timeseries_builder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from monitor.dashboards.files import DATASOURCE, DATASOURCE_UID

DS = dm.DataSourceRef(type_val=DATASOURCE["type"], uid=DATASOURCE_UID)
TAGS = ["drift-monitor"]
RATE_UNIT = "percentunit"
SEVERITIES = (("ok", "green"), ("info", "blue"), ("warning", "orange"), ("critical", "red"))


# -- InfluxQL ------------------------------------------------------------------------------------
def agg(function: str, field: str, alias: str | None = None) -> str:
    """``max("psi") AS "psi"``; `function` "" selects the raw field."""
    expression = f'{function}("{field}")' if function else f'"{field}"'
    return f'{expression} AS "{alias or field}"'


def match(tag: str, variable: str | None = None) -> str:
    """The tag matches the (multi-value) template variable of the same name."""
    return f'"{tag}" =~ /^${variable or tag}$/'


def equals(key: str, value: str) -> str:
    return f"\"{key}\" = '{value}'"


MODEL = [match("model"), match("version")]  # the model and version variables


def tag_values(measurement: str, key: str, where: Sequence[str] = ()) -> str:
    """A variable's query: the values of one tag."""
    text = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"'
    return text + (" WHERE " + " AND ".join(where) if where else "")


def select(fields: Sequence[str], measurement: str, where: Sequence[str], *,
           group_by: Sequence[str] = (), per_interval: bool = True, tail: str = "") -> str:
    """One statement over the dashboard's time range; `per_interval` aggregates per
    ``$__interval`` (with ``fill(none)``), else per series over the whole range."""
    conditions = " AND ".join([*where, "$timeFilter"])
    groups = [*(["time($__interval)"] if per_interval else []), *(f'"{t}"' for t in group_by)]
    text = f'SELECT {", ".join(fields)} FROM "{measurement}" WHERE {conditions}'
    if groups:
        text += " GROUP BY " + ", ".join(groups)
    if per_interval:
        text += " fill(none)"
    return text + (f" {tail}" if tail else "")


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target pinned to the drift datasource."""

    def __init__(self, query: str, ref_id: str, result_format: str) -> None:
        self.query, self.ref_id, self.result_format = query, ref_id, result_format

    def to_json(self) -> dict[str, object]:
        return {"refId": self.ref_id, "datasource": DATASOURCE, "rawQuery": True,
                "query": self.query, "resultFormat": self.result_format}


class _Fixed(Builder[Any]):
    def __init__(self, value: Any) -> None:
        self._value = value

    def build(self) -> Any:
        return self._value


def influxql(query: str, ref_id: str = "A", *, table: bool = False) -> Builder[Any]:
    return _Fixed(InfluxQLQuery(query, ref_id, "table" if table else "time_series"))


class InfluxAnnotationTarget:
    """The target of an InfluxDB annotation: the query and which columns hold what."""

    def __init__(self, query: str, text: str, tags: Sequence[str], time_end: str = "") -> None:
        self.query, self.text, self.tags, self.time_end = query, text, tags, time_end

    def to_json(self) -> dict[str, object]:
        return {"refId": "Anno", "rawQuery": True, "fromAnnotations": True, "query": self.query,
                "textColumn": self.text, "tagsColumn": ",".join(self.tags), "titleColumn": "",
                "timeEndColumn": self.time_end}


def annotation(name: str, colour: str, query: str, *, text: str = "message",
               tags: Sequence[str] = (), time_end: str = "") -> dashboard.AnnotationQuery:
    """An InfluxDB annotation; with `time_end` (a column of epoch milliseconds) each row is a
    region from its time to that column's value."""
    return (dashboard.AnnotationQuery().name(name).datasource(DS).enable(True).hide(False)
            .icon_color(colour).target(_Fixed(InfluxAnnotationTarget(query, text, tags, time_end))))


def variable(name: str, label: str, query: str, *, multi: bool,
             hidden: bool = False) -> dashboard.QueryVariable:
    """A tag-values variable refreshed with the time range; multi-value ones default to All."""
    built = (dashboard.QueryVariable(name).label(label).datasource(DS).query(query)
             .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
             .multi(multi).include_all(multi))
    if multi:
        built = built.current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    if hidden:
        built = built.hide(dm.VariableHide.HIDE_VARIABLE)
    return built


# -- field configuration ---------------------------------------------------------------------------
def severity_mapping() -> list[Any]:
    """Severity numbers (0..3) shown as their names in their colours."""
    return [dm.ValueMap(options={str(i): dm.ValueMappingResult(text=name, color=colour, index=i)
                                 for i, (name, colour) in enumerate(SEVERITIES)})]


def severity_steps() -> dashboard.ThresholdsConfig:
    return steps(*((colour, float(i) if i else None) for i, (_, colour) in enumerate(SEVERITIES)))


def steps(*pairs: tuple[str, float | None]) -> dashboard.ThresholdsConfig:
    return (dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=value, color=colour) for colour, value in pairs]))


def fixed_colour(colour: str) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})


def _set(key: str, value: Any) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val=key, value=value)


DASHED = {"fill": "dash", "dash": [10, 10]}
THRESHOLD_STYLE = [fixed_colour("red"), _set("custom.lineStyle", DASHED),
                   _set("custom.lineWidth", 1), _set("custom.fillOpacity", 0)]


# -- panels ----------------------------------------------------------------------------------------
def timeseries(title: str, description: str, queries: Sequence[str], *, width: int = 8,
               unit: str | None = None, fill: float = 10, soft_min: float | None = 0,
               stacked: bool = False) -> timeseries_builder.Panel:
    """A time series panel; every series whose name holds "threshold" is a dashed red line."""
    panel = (timeseries_builder.Panel().title(title).description(description).datasource(DS)
             .height(8).span(width).interval("1m").line_width(2).fill_opacity(fill)
             .show_points(cm.VisibilityMode.AUTO).span_nulls(True)
             .legend(common.VizLegendOptions().show_legend(True)
                     .display_mode(cm.LegendDisplayMode.TABLE)
                     .placement(cm.LegendPlacement.BOTTOM).calcs(["lastNotNull", "max"]))
             .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI)
                      .sort(cm.SortOrder.DESCENDING))
             .override_by_regexp("/threshold/", THRESHOLD_STYLE))
    if soft_min is not None:
        panel = panel.axis_soft_min(soft_min)
    if unit:
        panel = panel.unit(unit)
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL).group("A"))
    for ref_id, query in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(influxql(query, ref_id))
    return panel


def stat_panel(title: str, description: str, query: str, thresholds: dashboard.ThresholdsConfig,
               *, unit: str | None = None) -> stat.Panel:
    """A big number per series: the newest value in the time range."""
    panel = (stat.Panel().title(title).description(description).datasource(DS).height(5).span(4)
             .with_target(influxql(query)).thresholds(thresholds)
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
             .color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.NONE)
             .text_mode(cm.BigValueTextMode.VALUE_AND_NAME))
    return panel.unit(unit) if unit else panel


def table(title: str, description: str, query: str, *, width: int = 12,
          height: int = 8) -> table_builder.Panel:
    return (table_builder.Panel().title(title).description(description).datasource(DS)
            .height(height).span(width).with_target(influxql(query, table=True))
            .show_header(True).cell_height(cm.TableCellHeight.SM)
            .footer(common.TableFooterOptions().show(False)))


def severity_timeline(title: str, query: str) -> statetimeline.Panel:
    """Worst finding per window as coloured bands (ok, info, warning, critical)."""
    return (statetimeline.Panel().title(title)
            .description("Worst finding of the feature per window (ok, info, warning, critical).")
            .datasource(DS).height(8).span(8).interval("1m").with_target(influxql(query))
            .mappings(severity_mapping()).thresholds(severity_steps())
            .color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .show_value(cm.VisibilityMode.AUTO).merge_values(True).row_height(0.9))


def bars(title: str, description: str, query: str, x_field: str, *,
         unit: str | None = None) -> barchart.Panel:
    panel = (barchart.Panel().title(title).description(description).datasource(DS).height(8)
             .span(8).with_target(influxql(query, table=True)).x_field(x_field)
             .orientation(cm.VizOrientation.HORIZONTAL).show_value(cm.VisibilityMode.AUTO)
             .with_transformation(dm.DataTransformerConfig(
                 id_val="organize", options={"excludeByName": {"Time": True}})))
    return panel.unit(unit) if unit else panel


def table_sort(column: str) -> common.TableSortByFieldState:
    return common.TableSortByFieldState().display_name(column).desc(True)


def base(uid: str, title: str, description: str, time_from: str) -> dashboard.Dashboard:
    """A dashboard in the house style: UTC, read-only, shared crosshair, 30 s refresh, tagged and
    linked to the other drift-monitor dashboards."""
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(TAGS)
            .timezone("utc").readonly().tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .time(time_from, "now").refresh("30s")
            .timepicker(dashboard.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m"]))
            .link(dashboard.DashboardLink("drift-monitor").type(dm.DashboardLinkType.DASHBOARDS)
                  .tags(TAGS).as_dropdown(False).include_vars(False).keep_time(True)
                  .target_blank(False).icon("external link")))
