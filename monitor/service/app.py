"""The Faust application (only the App: the consumer task and timers live in `monitor.service.worker`)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import faust
from faust.app.base import BootStrategy

from monitor.service.settings import Settings


class _ServiceBoot(BootStrategy):
    """Start Faust without its Kafka consumer: the worker's batch consumer task owns the
    predictions consumer group (Faust's consumer would crash with no topic to subscribe)."""

    enable_kafka_consumer = False


class DriftApp(faust.App):
    BootStrategy = _ServiceBoot


def create_app(settings: Settings) -> faust.App:
    """The App hosting one worker: its service lifecycle, signals, timers and the batch consumer
    task. The predictions consumer group (`settings.group`) belongs to that task, so the App's
    own id is kept apart from it. Exactly-once window counts come from our own checkpoints
    (`monitor.service.state_store`), not from Faust's `exactly_once`."""
    return DriftApp(
        f"{settings.group}-service",
        **settings.kafka.faust(),  # broker URLs and credentials (monitor.service.kafka_config)
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",  # no Faust tables: window state lives in our checkpoint topic
        # The web server carries the probes and /metrics (monitor.service.http) only: Faust's
        # own pages (stats, graph, router, tables, metrics) stay off.
        web_enabled=True,
        web_port=settings.http_port,
        web_bind=settings.http_bind,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_router_enabled=False,
        web_tables_enabled=False,
        web_metrics_enabled=False,
        topic_disable_leader=True,  # no `<id>-__assignor-__leader` topic
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # The group as a file name: any character but letters, digits, '.', '_', '-' becomes
        # '_' ('team/a' must not name a subdirectory), and at most 200 of them.
        datadir=str(Path(tempfile.gettempdir())
                    / ("drift-monitor-" + re.sub(r"[^a-zA-Z0-9._-]", "_", settings.group)[:200])),
    )
