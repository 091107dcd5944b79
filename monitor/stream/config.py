"""Settings of the streaming engine (pure; the worker fills them from `DRIFT_MONITOR_*`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from monitor.drift.evaluate import Overrides
from monitor.stream.alerts import AlertTracker

MIN_WINDOW_SECONDS, MAX_WINDOW_SECONDS = 1.0, 366 * 86_400.0


@dataclass
class EngineConfig:
    """Windows, event time and alerting rules shared by both stages and by `replay`.

    >>> EngineConfig(window_seconds=-3)
    Traceback (most recent call last):
    ...
    ValueError: "window_seconds" must be > 0: -3
    >>> EngineConfig(window_seconds=1e-300)
    Traceback (most recent call last):
    ...
    ValueError: "window_seconds" must be from 1 s to 366 days: 1e-300
    """

    window_seconds: float = 60.0
    grace_seconds: float = 5.0
    min_records: int = 200
    overrides: dict[str, Overrides] = field(default_factory=dict)  # model (or "*") -> overrides
    trend: bool = True
    resolve_after: int = 2  # clean windows before an alert resolves (no flapping at the edge)
    persistent_windows: int = 30  # an episode open this long publishes one `persistent` event
    # A model quiet for this long on a partition that has nothing left to read: its event time
    # moves on with the wall clock, so that its last window closes. Longer than the gaps of a
    # model that logs in bursts, or its next burst would arrive late.
    idle_seconds: float = 30.0
    # A record further ahead of where its model's traffic is (its newest time moved on with the
    # wall clock, never behind the clock) is refused (dead letter): a few broken clocks must not
    # close a model's windows ahead of its traffic. None: 3 windows, at least a minute.
    max_future_seconds: float | None = None
    # A record older than the model's newest record by more than this counts as late, with its
    # reason, instead of opening a window far in the past.
    retention_seconds: float = 7 * 86_400.0
    max_unprofiled_keys: int = 1_000  # model/version keys without a profile counted per partition
    max_no_profile_alerts: int = 100  # open `no_profile` episodes at most (the rest: counted)

    def __post_init__(self) -> None:
        for name in ("window_seconds", "idle_seconds", "retention_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'"{name}" must be > 0: {value}')
        if not MIN_WINDOW_SECONDS <= self.window_seconds <= MAX_WINDOW_SECONDS:
            # Shorter: a window per record or less, and times / window overflow; longer: no
            # window would close within any retention.
            raise ValueError(f'"window_seconds" must be from 1 s to 366 days: '
                             f'{self.window_seconds}')
        if not (math.isfinite(self.grace_seconds) and self.grace_seconds >= 0):
            raise ValueError(f'"grace_seconds" must be >= 0: {self.grace_seconds}')
        if self.min_records < 1:
            raise ValueError(f'"min_records" must be >= 1: {self.min_records}')
        if self.max_future_seconds is not None and not self.max_future_seconds > 0:
            raise ValueError(f'"max_future_seconds" must be > 0: {self.max_future_seconds}')
        if self.persistent_windows < 1:
            raise ValueError(f'"persistent_windows" must be >= 1: {self.persistent_windows}')
        if self.max_unprofiled_keys < 1:
            raise ValueError(f'"max_unprofiled_keys" must be >= 1: {self.max_unprofiled_keys}')

    @property
    def future_seconds(self) -> float:
        return (self.max_future_seconds if self.max_future_seconds is not None
                else max(3 * self.window_seconds, 60.0))

    def tracker(self) -> AlertTracker:
        return AlertTracker(resolve_after=self.resolve_after, trend=self.trend,
                            persistent_windows=self.persistent_windows)

    def window_start(self, ts: float) -> float:
        return math.floor(ts / self.window_seconds) * self.window_seconds

    def overrides_for(self, model: str) -> Overrides:
        merged: Overrides = {}
        for source in (self.overrides.get("*", {}), self.overrides.get(model, {})):
            for feature, checks in source.items():
                merged.setdefault(feature, {}).update(checks)
        return merged
