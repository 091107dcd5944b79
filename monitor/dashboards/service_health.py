"""The service health dashboard (`drift-service`): the workers themselves."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard

from monitor.dashboards.panels import (
    agg,
    base,
    match,
    select,
    stat_panel,
    steps,
    tag_values,
    timeseries,
    variable,
)


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
