"""The Faust application (only the App: the agent and timers live in `monitor.worker`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import faust

from monitor.config import Settings


def create_app(settings: Settings) -> faust.App:
    """The App for one consumer group. Processing guarantee stays at Faust's default
    (at-least-once): exactly-once window counts come from our own checkpoints
    (`monitor.checkpoint`), not from Faust's `exactly_once`."""
    return faust.App(
        settings.group,
        broker=settings.broker,
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",  # no Faust tables: window state lives in our checkpoint topic
        web_enabled=False,
        topic_disable_leader=True,  # no `<id>-__assignor-__leader` topic
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_seconds,
        producer_acks=-1,
        # A killed worker's partitions move to the others after this long (Faust's default
        # is 60 s); the heartbeat must be well under it.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        datadir=str(Path(tempfile.gettempdir()) / f"drift-monitor-{settings.group}"),
    )
