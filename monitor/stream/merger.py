"""Stage two: merge the partial windows of every input partition and evaluate each window once.

A `WindowMerger` owns the models routed to one partials partition. It keeps, per model, one
partial per (input partition, window) — a partial delivered twice replaces itself — and each
input partition's latest watermarks. A window is evaluated when the lowest watermark over all
input partitions has passed its end: for an input partition the model's own watermark there if
the partition holds records of it, else the partition's default watermark. Pure and
synchronous: the worker feeds it messages and performs what `evaluate_due()` returns.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor.drift.evaluate import WindowReport, compare
from monitor.ingest.records import ModelKey
from monitor.profile.model import Profile
from monitor.stream import merger_state
from monitor.stream.alerts import Alert, AlertTracker
from monitor.stream.config import EngineConfig
from monitor.stream.messages import Message, Partial, Progress
from monitor.stream.unprofiled import Unprofiled
from monitor.summaries.window import WindowSummary

log = logging.getLogger(__name__)

ProfileLookup = Callable[[str, str], Profile | None]
RECENT_CLOSED = 16  # closed windows whose merged sources are remembered (to spot repeats)
CARRY_GAP_WINDOWS = 10  # a small window is carried into the next one only across this gap


@dataclass
class Evaluated:
    """A closed window: its report and the alert events it caused."""

    report: WindowReport
    alerts: list[Alert]


@dataclass
class SourceProgress:
    """The latest `Progress` of one input partition."""

    stream: str = ""
    default: float = -math.inf
    models: dict[ModelKey, float] = field(default_factory=dict)
    unprofiled: dict[ModelKey, int] = field(default_factory=dict)
    late: dict[ModelKey, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)


@dataclass
class MergedModel:
    tracker: AlertTracker
    open: dict[float, dict[int, dict[str, Any]]] = field(default_factory=dict)  # start->source->
    closed_before: float = -math.inf  # windows starting before this are evaluated
    recent: dict[float, list[int]] = field(default_factory=dict)  # closed start -> sources merged
    carry: dict[str, Any] | None = None  # a closed window too small to evaluate, for the next
    late: int = 0  # late records to count on the next evaluated window


class WindowMerger:
    def __init__(self, profiles: ProfileLookup, config: EngineConfig, *,
                 profile_by_id: Callable[[str], Profile | None] | None = None) -> None:
        self.profiles = profiles
        self.profile_by_id = profile_by_id or (lambda _id: None)
        self.config = config
        self.sources: dict[int, SourceProgress] = {}
        self.n_sources = 1
        self.stream: str | None = None  # the input topic's id: one stream at a time
        self.retired_streams: list[str] = []  # earlier streams: their stragglers are ignored
        self.foreign = 0  # messages of a retired stream, ignored
        self.models: dict[ModelKey, MergedModel] = {}
        self.invalid: dict[str, int] = {}  # invalid records per model name, for its next window
        self.unprofiled = Unprofiled(config.max_no_profile_alerts)
        self.duplicates = 0  # partials received again (a restarted stage one resends them)
        self.late_partials = 0  # partials of a window already evaluated
        self.windows = 0
        self._dirty: set[ModelKey] = set()
        self._header_dirty = False
        self._final = False

    # -- input ----------------------------------------------------------------------------------
    def receive(self, messages: Iterable[Message]) -> None:
        for message in messages:
            if not self._same_stream(message.stream):
                continue
            if isinstance(message, Partial):
                self._partial(message)
            else:
                self._progress(message)

    def _same_stream(self, stream: str) -> bool:
        """The input topic was deleted and created again (or the deployment was pointed at
        another topic): everything known about the old stream's partitions and windows goes,
        so that the new stream's windows are neither held back nor taken for repeats."""
        if stream == self.stream:
            return True
        if stream in self.retired_streams:
            self.foreign += 1
            return False
        if self.stream is not None:
            open_records = sum(int(w.get("records", 0)) for m in self.models.values()
                               for by in m.open.values() for w in by.values())
            log.warning("input stream changed from %s to %s (topic recreated or replaced): "
                        "its partitions' progress is forgotten and %d records of windows still "
                        "open are dropped", self.stream, stream, open_records)
            self.retired_streams = [*self.retired_streams, self.stream][-8:]
            self.sources = {}
            self.n_sources = 1
            for key, model in self.models.items():
                model.open, model.recent, model.closed_before = {}, {}, -math.inf
                self._dirty.add(key)
        self.stream = stream
        self._header_dirty = True
        return True

    def _partial(self, p: Partial) -> None:
        model = self.get_or_create(p.key)
        start = p.start
        if start < model.closed_before:
            if p.source in model.recent.get(start, ()):
                self.duplicates += 1
            else:  # its window was evaluated without it: its records are late
                self.late_partials += 1
                model.late += int(p.window.get("records", 0))
            return
        if p.source in model.open.get(start, {}):
            self.duplicates += 1
        model.open.setdefault(start, {})[p.source] = p.window
        self._dirty.add(p.key)

    def _progress(self, p: Progress) -> None:
        self.n_sources = max(self.n_sources, p.sources)
        old = self.sources.get(p.source)
        new = SourceProgress(p.stream, max(p.default, old.default if old else -math.inf),
                             dict(p.models), dict(p.unprofiled), dict(p.late), dict(p.invalid))
        if old is not None:  # watermarks never go back
            for key, mark in new.models.items():
                new.models[key] = max(mark, old.models.get(key, -math.inf))
        self.sources[p.source] = new
        self._header_dirty = True
        for key, n in new.late.items():
            added = _delta(n, old.late.get(key) if old else None)
            if added:
                self.get_or_create(key).late += added
                self._dirty.add(key)
        for name, n in new.invalid.items():
            self.invalid[name] = self.invalid.get(name, 0) + _delta(
                n, old.invalid.get(name) if old else None)
        for key, n in new.unprofiled.items():
            added = _delta(n, old.unprofiled.get(key) if old else None)
            if added:
                self.unprofiled.count(key, added, now=self._now())

    # -- evaluation -----------------------------------------------------------------------------
    def watermark(self, key: ModelKey) -> float:
        """The lowest watermark for `key` over every input partition (-inf until all reported)."""
        if self._final:
            return math.inf
        marks = []
        for source in range(self.n_sources):
            progress = self.sources.get(source)
            if progress is None:
                return -math.inf
            marks.append(progress.models.get(key, progress.default))
        return min(marks)

    def evaluate_due(self) -> list[Evaluated | Alert]:
        """Evaluate every window that all input partitions are done with; also the
        `no_profile` episodes that begin or end."""
        out: list[Evaluated | Alert] = list(self.unprofiled.events(self.profiles,
                                                                   now=self._now()))
        for key, model in list(self.models.items()):
            mark = self.watermark(key)
            for start in sorted(s for s in model.open if s + self.config.window_seconds <= mark):
                out.extend(self._close(key, model, start))
            if self._final and model.carry is not None:
                out.extend(self._evaluate_carry(key, model))
            if not model.open and self.profiles(*key) is None:
                out.extend(self._retire(key, model))
        return out

    def _retire(self, key: ModelKey, model: MergedModel) -> list[Alert]:
        """The model's profile was removed and its last windows are evaluated: its open alerts
        end (nothing would ever clear them), and its state goes."""
        alerts = model.tracker.close_all(
            self._now(), "the profile was removed, the model is no longer monitored")
        if model.carry is not None:
            log.warning("%s v%s: profile removed; a carried window of %d records is dropped",
                        key[0], key[1], int(model.carry.get("records", 0)))
        del self.models[key]
        self._dirty.add(key)
        return alerts

    def finish(self) -> list[Evaluated | Alert]:
        """End of input (replay): evaluate everything still open."""
        self._final = True
        return self.evaluate_due()

    def _close(self, key: ModelKey, model: MergedModel, start: float) -> list[Evaluated]:
        partials = model.open.pop(start)
        model.closed_before = max(model.closed_before, start + self.config.window_seconds)
        model.recent[start] = sorted(partials)
        for old in sorted(model.recent)[:-RECENT_CLOSED]:
            del model.recent[old]
        self._dirty.add(key)
        window = self._merge(key, partials)
        if window is None:
            return []
        window.late += model.late
        window.invalid += self.invalid.pop(key[0], 0)
        model.late = 0
        out: list[Evaluated] = []
        if model.carry is not None:
            carried = self._load(key, model.carry)
            model.carry = None
            if carried is not None and carried.records and (
                    window.start - carried.end > CARRY_GAP_WINDOWS * self.config.window_seconds):
                # A small window from long before (a stray old record): evaluated on its own
                # with the seed rules, not stretched over the days in between.
                out.append(self._evaluate(key, model, carried, distribution_checks=False))
            elif carried is not None and carried.profile.profile_id == window.profile.profile_id:
                window = carried.merge(window)
        if window.records < self.config.min_records and not self._final:
            model.carry = window.to_dict()
            return out
        return [*out, self._evaluate(key, model, window, distribution_checks=True)]

    def _evaluate_carry(self, key: ModelKey, model: MergedModel) -> list[Evaluated]:
        window = self._load(key, model.carry) if model.carry else None
        model.carry = None
        self._dirty.add(key)
        if window is None or not window.records:
            return []
        return [self._evaluate(key, model, window, distribution_checks=False)]

    def _merge(self, key: ModelKey, partials: dict[int, dict[str, Any]]) -> WindowSummary | None:
        """The window of all partitions' partials (in partition order; the merge is exact, so
        any order gives the same summary). Partials begun under another profile than the
        window's (a profile replaced mid-window) keep their counts, not their summaries."""
        loaded = [(s, self._load(key, partials[s])) for s in sorted(partials)]
        usable = [w for _, w in loaded if w is not None]
        if not usable:
            return None
        chosen = max({w.profile.profile_id for w in usable},
                     key=lambda pid: sum(w.records for w in usable if w.profile.profile_id == pid))
        window: WindowSummary | None = None
        for w in usable:
            if w.profile.profile_id != chosen:
                continue
            window = w if window is None else window.merge(w)
        assert window is not None
        for source, w in loaded:
            if w is None or w.profile.profile_id != chosen:
                window.late += int(partials[source].get("records", 0))
        return window

    def _load(self, key: ModelKey, data: dict[str, Any]) -> WindowSummary | None:
        profile = self.profiles(*key)
        if profile is None or profile.profile_id != data.get("profile_id"):
            profile = self.profile_by_id(str(data.get("profile_id")))
        if profile is None:
            return None
        return WindowSummary.from_dict(data, profile)

    def _evaluate(self, key: ModelKey, model: MergedModel, window: WindowSummary, *,
                  distribution_checks: bool) -> Evaluated:
        report = compare(window, window.profile,
                         distribution_checks=distribution_checks
                         and window.records >= self.config.min_records,
                         overrides=self.config.overrides_for(key[0]))
        self.windows += 1
        return Evaluated(report, model.tracker.observe(report))

    def _now(self) -> float:
        """Event time of this merger: the newest default watermark (0 before any)."""
        marks = [s.default for s in self.sources.values() if math.isfinite(s.default)]
        return max(marks) + self.config.grace_seconds if marks else 0.0

    # -- state ----------------------------------------------------------------------------------
    def get_or_create(self, key: ModelKey) -> MergedModel:
        model = self.models.get(key)
        if model is None:
            model = self.models[key] = MergedModel(self.config.tracker())
        return model

    def take_dirty(self) -> set[ModelKey]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def header_state(self) -> dict[str, Any]:
        return merger_state.header(self)

    def model_state(self, key: ModelKey) -> dict[str, Any] | None:
        model = self.models.get(key)
        return merger_state.model(model) if model is not None else None

    def restore(self, header: dict[str, Any] | None,
                models: dict[ModelKey, dict[str, Any]]) -> None:
        merger_state.restore(self, header, models)
        self._dirty.clear()

    def firing(self, key: ModelKey) -> int:
        """Alert episodes open for this model and version."""
        model = self.models.get(key)
        return model.tracker.open_count() if model is not None else 0


def _delta(new: int, old: int | None) -> int:
    """What a running count added since `old` (a smaller count: the partition's state began
    again, and all of it is new)."""
    if old is None or new < old:
        return new
    return new - old
