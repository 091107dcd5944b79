"""Stage two's processor for one partials partition: partials and watermarks in, decisions out.

It feeds the internal messages to a `WindowMerger`; every window it evaluates becomes metric
points and alert events in an outbox that is part of the checkpointed state, so a crash after a
window closed loses neither: they are sent again after the restart (a metric point of the same
series and time overwrites itself; alerts are deduplicated by `alert_id` and `status`). While
the metrics store is down the outbox holds the points, at most `max_points`; beyond that the
oldest windows' points are dropped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from monitor.ingest.records import ModelKey
from monitor.outputs.line_protocol import alert_points, report_points
from monitor.outputs.render import jsonable
from monitor.profile.model import Profile
from monitor.service.runner import Step
from monitor.service.state_store import Loaded
from monitor.stream.alerts import Alert
from monitor.stream.merger import Evaluated, WindowMerger
from monitor.stream.messages import MessageError, decode

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """What one model's evaluated windows still have to deliver."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    points: list[list[str]] = field(default_factory=list)  # one list of lines per window
    reports: list[dict[str, Any]] = field(default_factory=list)  # when a reports topic is set

    def to_dict(self) -> dict[str, Any]:
        return {"alerts": self.alerts, "points": self.points, "reports": self.reports}


class MergeProcessor:
    def __init__(self, partition: int, merger: WindowMerger, *, max_points: int,
                 profiles: Any, loaded: Loaded | None = None, reports: bool = False) -> None:
        self.partition = partition
        self.keep_reports = reports
        self.merger = merger
        self.max_points = max_points
        self.profiles = profiles
        self.pending: dict[ModelKey, Pending] = {}
        self.unkeyed: list[dict[str, Any]] = []  # alerts of models without a profile
        self.dropped_points = 0  # since the partition's state began (checkpointed)
        self.bad_messages = 0
        self.windows = 0
        self.session = {"windows_evaluated": 0, "metric_points_dropped": 0}
        self._offset = -1
        self._dirty: set[ModelKey] = set()
        if loaded is not None:
            self._restore(loaded)

    @property
    def offset(self) -> int:
        return self._offset

    # -- decisions ------------------------------------------------------------------------------
    def process(self, records: list[Any], wall: float) -> Step:
        messages = []
        for record in records:
            if record.offset <= self._offset:
                continue
            try:
                messages.append(decode(record.value))
            except MessageError as exc:  # internal topic: only another version writes these
                self.bad_messages += 1
                log.error("partials[%d] offset %d skipped: %s", self.partition, record.offset,
                          exc)
        if records:
            self._offset = max(self._offset, max(r.offset for r in records))
        self.merger.receive(messages)
        return self._evaluate()

    def tick(self, wall: float, caught_up: bool) -> Step:
        return self._evaluate()

    def _evaluate(self) -> Step:
        out = self.merger.evaluate_due()
        for item in out:
            if isinstance(item, Evaluated):
                self._evaluated(item)
            else:
                self.unkeyed.append(_alert_dict(item))
        self._bound()
        return Step(urgent=bool(out))

    def _evaluated(self, item: Evaluated) -> None:
        r = item.report
        key = (r.model, r.version)
        self.windows += 1
        self.session["windows_evaluated"] += 1
        log.info("window closed: partition %d model %s version %s [%s, %s) records %d "
                 "invalid %d late %d severity %s", self.partition, r.model, r.version, r.start,
                 r.end, r.records, r.invalid, r.late, r.severity)
        profile: Profile | None = self.profiles(r.model, r.version)
        lines = report_points(r, profile, alerts_firing=self.merger.firing(key))
        lines += alert_points(item.alerts)
        pending = self.pending.setdefault(key, Pending())
        pending.points.append(lines)
        pending.alerts += [_alert_dict(a) for a in item.alerts]
        if self.keep_reports:
            pending.reports.append(jsonable(r.to_dict()))
        self._dirty.add(key)

    def _bound(self) -> None:
        total = sum(len(lines) for p in self.pending.values() for lines in p.points)
        while total > self.max_points:
            oldest = min((k for k, p in self.pending.items() if p.points),
                         key=lambda k: _time_of(self.pending[k].points[0]))
            lines = self.pending[oldest].points.pop(0)
            total -= len(lines)
            self.dropped_points += len(lines)
            self.session["metric_points_dropped"] += len(lines)
            self._dirty.add(oldest)
            log.warning("metrics outbox full (%d points): dropped the %d points of the oldest "
                        "window of %s v%s (%d dropped so far)", self.max_points, len(lines),
                        oldest[0], oldest[1], self.dropped_points)

    # -- the outbox -----------------------------------------------------------------------------
    def has_outbox(self) -> bool:
        return bool(self.unkeyed) or any(p.alerts or p.points or p.reports
                                         for p in self.pending.values())

    def reports(self) -> list[dict[str, Any]]:
        return [r for p in self.pending.values() for r in p.reports]

    def reports_delivered(self) -> None:
        for key, pending in self.pending.items():
            if pending.reports:
                pending.reports = []
                self._dirty.add(key)

    def alerts(self) -> list[dict[str, Any]]:
        # Windows' alerts first: a model retired in the same step resolves what they fired.
        return [a for p in self.pending.values() for a in p.alerts] + self.unkeyed

    def alerts_delivered(self) -> None:
        self.unkeyed = []
        for key, pending in self.pending.items():
            if pending.alerts:
                pending.alerts = []
                self._dirty.add(key)

    def points(self) -> list[str]:
        return [line for p in self.pending.values() for lines in p.points for line in lines]

    def points_delivered(self) -> None:
        for key, pending in self.pending.items():
            if pending.points:
                pending.points = []
                self._dirty.add(key)

    def outbox_points(self) -> int:
        return sum(len(lines) for p in self.pending.values() for lines in p.points)

    # -- counters -------------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return dict(self.session)

    def gauges(self) -> dict[str, int]:
        return {"metric_points_buffered": self.outbox_points(),
                "alerts_firing": sum(self.merger.firing(key) for key in self.merger.models)}

    def reset_stats(self) -> None:
        self.session = {key: 0 for key in self.session}

    # -- checkpoints ----------------------------------------------------------------------------
    def take_dirty(self) -> set[ModelKey]:
        dirty = self.merger.take_dirty() | self._dirty
        self._dirty = set()
        return dirty

    def header_state(self) -> dict[str, Any]:
        return {"merger": self.merger.header_state(), "unkeyed": self.unkeyed,
                "dropped_points": self.dropped_points, "windows": self.windows}

    def model_state(self, key: ModelKey) -> dict[str, Any] | None:
        merged = self.merger.model_state(key)
        pending = self.pending.get(key)
        if merged is None and pending is None:
            return None
        return {"merger": merged, "pending": pending.to_dict() if pending else None}

    def _restore(self, loaded: Loaded) -> None:
        header = loaded.header
        self._offset = loaded.offset
        self.unkeyed = list(header["unkeyed"])
        self.dropped_points = int(header["dropped_points"])
        self.windows = int(header["windows"])
        merged = {k: m["merger"] for k, m in loaded.models.items() if m.get("merger")}
        self.merger.restore(header["merger"], merged)
        for key, data in loaded.models.items():
            if data.get("pending"):
                saved = data["pending"]
                self.pending[key] = Pending(list(saved["alerts"]),
                                            [list(x) for x in saved["points"]],
                                            list(saved["reports"]))


def _alert_dict(alert: Alert) -> dict[str, Any]:
    return jsonable(alert.to_dict())  # type: ignore[no-any-return]


def _time_of(lines: list[str]) -> int:
    try:
        return int(lines[0].rsplit(" ", 1)[1]) if lines else 0
    except (ValueError, IndexError):
        return 0
