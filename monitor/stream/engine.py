"""The streaming engine: tumbling event-time windows per model and version, evaluated against
the model's profile when they close, with the alert lifecycle. `replay` and the Kafka worker both
run this class; neither has a copy of the windowing.

A window [start, start + window_seconds) closes when the watermark (the largest record time seen,
minus the grace) passes its end. A record for an already-closed window is *late*: counted, not
folded in. A closing window with fewer than `min_records` records is not evaluated but carried
into the next window of the same model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.drift.evaluate import Overrides, WindowReport, compare
from monitor.ingest.records import ModelKey, ParsedBatch
from monitor.profile.model import Profile
from monitor.stream.alerts import Alert, AlertTracker, UnprofiledModels
from monitor.summaries.window import WindowSummary

ProfileLookup = Callable[[str, str], Profile | None]


@dataclass
class EngineConfig:
    window_seconds: float = 60.0
    grace_seconds: float = 5.0
    min_records: int = 200
    overrides: dict[str, Overrides] = field(default_factory=dict)  # model (or "*") -> overrides
    trend: bool = True
    resolve_after: int = 2  # clean windows before an alert resolves (no flapping at the edge)
    persistent_windows: int = 30  # an episode open this long publishes one `persistent` event

    def __post_init__(self) -> None:
        if not self.window_seconds > 0:
            raise ValueError(f'"window_seconds" must be > 0: {self.window_seconds}')
        if self.grace_seconds < 0:
            raise ValueError(f'"grace_seconds" must be >= 0: {self.grace_seconds}')
        if self.min_records < 1:
            raise ValueError(f'"min_records" must be >= 1: {self.min_records}')
        if self.persistent_windows < 1:
            raise ValueError(f'"persistent_windows" must be >= 1: {self.persistent_windows}')

    def tracker(self) -> AlertTracker:
        return AlertTracker(resolve_after=self.resolve_after, trend=self.trend,
                            persistent_windows=self.persistent_windows)

    def overrides_for(self, model: str) -> Overrides:
        merged: Overrides = {}
        for source in (self.overrides.get("*", {}), self.overrides.get(model, {})):
            for feature, checks in source.items():
                merged.setdefault(feature, {}).update(checks)
        return merged


@dataclass
class Evaluated:
    """A closed window: its report and the alert events it caused."""

    report: WindowReport
    alerts: list[Alert]


@dataclass
class ModelState:
    profile: Profile
    windows: dict[float, WindowSummary] = field(default_factory=dict)  # by window start
    carry: WindowSummary | None = None  # a closed window too small to evaluate
    closed_before: float = -math.inf  # windows starting before this are closed
    tracker: AlertTracker = field(default_factory=AlertTracker)


@dataclass
class EngineStats:
    records: int = 0
    invalid: int = 0
    late: int = 0
    no_profile: int = 0
    windows: int = 0


class Engine:
    def __init__(self, profiles: ProfileLookup, config: EngineConfig | None = None) -> None:
        self.profiles = profiles
        self.config = config or EngineConfig()
        self.models: dict[ModelKey, ModelState] = {}
        self.watermark = -math.inf
        self.stats = EngineStats()
        self.unprofiled = UnprofiledModels()
        self.pending_invalid: dict[str, int] = {}

    # -- input ----------------------------------------------------------------------------------
    def ingest(self, batch: ParsedBatch) -> list[Evaluated | Alert]:
        """Fold a parsed batch into its windows; return what closed because time moved on."""
        out: list[Evaluated | Alert] = []
        self.stats.invalid += len(batch.invalid)
        for bad in batch.invalid:
            if bad.model:
                self.pending_invalid[bad.model] = self.pending_invalid.get(bad.model, 0) + 1
        newest = self.watermark
        for key, group in batch.groups.items():
            ts = group.ts_array()
            state = self._state(key, out, ts)
            if state is None:
                continue
            starts = np.floor(ts / self.config.window_seconds) * self.config.window_seconds
            late = starts < state.closed_before
            if late.any():
                self.stats.late += int(late.sum())
                # Counted on the newest open window (never on a closed one).
                newest_open = max(float(starts.max()), state.closed_before)
                self._open_window(state, newest_open).late += int(late.sum())
            for start in np.unique(starts[~late]):
                index = np.flatnonzero(starts == start)
                self._open_window(state, float(start)).update(group.take(index))
            self.stats.records += len(group)
            newest = max(newest, float(ts.max()) - self.config.grace_seconds)
        if newest > self.watermark:
            self.watermark = newest
            out.extend(self._close_due())
        return out

    def advance(self, watermark: float) -> list[Evaluated | Alert]:
        """Move event time forward without records (idle traffic, or a wall-clock timer)."""
        if watermark <= self.watermark:
            return []
        self.watermark = watermark
        return list(self._close_due())

    def flush(self) -> list[Evaluated | Alert]:
        """End of input: evaluate every open window; a small last one gets the seed rules only."""
        out: list[Evaluated | Alert] = []
        for state in self.models.values():
            for start in sorted(state.windows):
                out.extend(self._close(state, start, final=True))
            if state.carry is not None and state.carry.records:
                window, state.carry = state.carry, None
                out.append(self._evaluate(state, window, distribution_checks=False))
        return out

    # -- windows --------------------------------------------------------------------------------
    def _state(self, key: ModelKey, out: list[Evaluated | Alert],
               ts: np.ndarray) -> ModelState | None:
        state = self.models.get(key)
        profile = self.profiles(*key)
        if profile is None:
            self.stats.no_profile += len(ts)
            fired = self.unprofiled.seen(key, len(ts), float(ts.min()), float(ts.max()))
            out.extend([fired] if fired else [])
            return None
        resolved = self.unprofiled.profiled(key, float(ts.min()), profile.profile_id)
        out.extend([resolved] if resolved else [])  # the profile has arrived: the episode ends
        if state is None:
            state = self.models[key] = ModelState(profile, tracker=self.config.tracker())
        elif state.profile.profile_id != profile.profile_id:
            state.profile = profile  # a rebuilt profile applies from the next window on
        return state

    def _open_window(self, state: ModelState, start: float) -> WindowSummary:
        window = state.windows.get(start)
        if window is None:
            window = WindowSummary(state.profile, start, start + self.config.window_seconds)
            invalid = self.pending_invalid.pop(state.profile.model, 0)
            window.invalid += invalid
            state.windows[start] = window
        return window

    def _close_due(self) -> list[Evaluated | Alert]:
        out: list[Evaluated | Alert] = []
        for state in self.models.values():
            for start in sorted(state.windows):
                if start + self.config.window_seconds <= self.watermark:
                    out.extend(self._close(state, start))
        return out

    def _close(self, state: ModelState, start: float, *, final: bool = False) -> list[Evaluated]:
        window = state.windows.pop(start)
        state.closed_before = max(state.closed_before, start + self.config.window_seconds)
        if window.profile.profile_id != state.profile.profile_id:
            window = _rebase(window, state.profile)
        if state.carry is not None:
            carried, state.carry = state.carry, None
            if carried.profile.profile_id == window.profile.profile_id:
                window = carried.merge(window)
        if window.records < self.config.min_records and not final:
            state.carry = window
            return []
        return [self._evaluate(state, window, distribution_checks=True)]

    def _evaluate(self, state: ModelState, window: WindowSummary, *,
                  distribution_checks: bool) -> Evaluated:
        report = compare(window, state.profile,
                         distribution_checks=distribution_checks and
                         window.records >= self.config.min_records,
                         overrides=self.config.overrides_for(state.profile.model))
        self.stats.windows += 1
        return Evaluated(report, state.tracker.observe(report))

    # -- checkpoints ----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "watermark": self.watermark if math.isfinite(self.watermark) else None,
            "stats": vars(self.stats).copy(),
            "unprofiled": self.unprofiled.to_state(),
            "pending_invalid": dict(self.pending_invalid),
            "models": [
                {"key": list(key), "profile_id": s.profile.profile_id,
                 "windows": [w.to_dict() for w in s.windows.values()],
                 "carry": s.carry.to_dict() if s.carry else None,
                 "closed_before": s.closed_before if math.isfinite(s.closed_before) else None,
                 "tracker": s.tracker.to_state()}
                for key, s in self.models.items()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.watermark = data["watermark"] if data.get("watermark") is not None else -math.inf
        self.stats = EngineStats(**data.get("stats", {}))
        self.unprofiled = UnprofiledModels()
        self.unprofiled.restore(data.get("unprofiled", []))
        self.pending_invalid = dict(data.get("pending_invalid", {}))
        self.models = {}
        for m in data.get("models", []):
            key = (m["key"][0], m["key"][1])
            profile = self.profiles(*key)
            if profile is None:
                continue  # the profile was removed: its windows cannot be evaluated any more
            state = ModelState(profile, tracker=self.config.tracker())
            for w in m["windows"]:
                window = _load_window(w, profile)
                if window is not None:
                    state.windows[window.start] = window
            if m.get("carry"):
                state.carry = _load_window(m["carry"], profile)
            cb = m.get("closed_before")
            state.closed_before = cb if cb is not None else -math.inf
            state.tracker.restore(m.get("tracker", {}))
            self.models[key] = state


def _load_window(data: dict[str, Any], profile: Profile) -> WindowSummary | None:
    if data.get("profile_id") != profile.profile_id:
        return None  # summaries on another profile's bins cannot be compared with this one
    return WindowSummary.from_dict(data, profile)


def _rebase(window: WindowSummary, profile: Profile) -> WindowSummary:
    """A window begun under an older profile: its invalid and late counts survive; its records
    (already in the engine's `records` count) cannot be compared with the new profile's bins."""
    fresh = WindowSummary(profile, window.start, window.end)
    fresh.invalid, fresh.late = window.invalid, window.late
    return fresh
