"""The model drill-down dashboard (`drift-model`): one model version, one repeated row per
feature with every check of its kind against its threshold (`checks_by_kind`, so a new check
shows up without touching this file), and alert episodes as annotations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as dm

from monitor.dashboards.panels import (
    MODEL,
    RATE_UNIT,
    agg,
    annotation,
    bars,
    base,
    equals,
    fixed_colour,
    match,
    select,
    severity_timeline,
    table,
    tag_values,
    timeseries,
    variable,
)
from monitor.drift.registry import checks_for
from monitor.ingest.schema import Kind


def checks_by_kind() -> dict[Kind, dict[str, bool]]:
    """Every check run on each feature kind (each a drift_feature field with a
    ``threshold_<check>`` field) -> whether a low value is the drifting one (p-values), from the
    registry of checks (`monitor.drift.registry`)."""
    return {kind: {name: bool(check.lower_is_worse) for name, check in checks_for(kind).items()}
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
