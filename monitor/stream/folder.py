"""Stage one: fold one input partition's records into partial windows (pure, synchronous).

A `PartitionFolder` holds, per model and version it has records of, the open windows of this
partition's share of the traffic and the model's event time here (`ModelClock`). When the
model's watermark passes a window's end the window is closed here and its summary goes out as a
`Partial`; records that arrive for it later are late. A `Progress` message per partials partition
carries the watermarks. Nothing here does I/O: the worker sends `take_partials()` and
`progress()`, and checkpoints `header_state()` and `model_state(key)` for the keys in
`take_dirty()`.

The engine used by `replay` runs one folder and one `WindowMerger` in-process, so a replay
computes what the worker computes (docs/architecture.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.ingest.records import ModelKey, ParsedBatch, RecordGroup
from monitor.profile.model import Profile
from monitor.stream.config import EngineConfig
from monitor.stream.event_time import FUTURE, ModelClock
from monitor.stream.messages import Partial, Progress
from monitor.summaries.window import WindowSummary

ProfileLookup = Callable[[str, str], Profile | None]
MAX_OPEN_WINDOWS = 64  # per model here; records that would open more count as late
WINDOW_CAP = "more open windows than allowed"
EVICT_AFTER_WINDOWS = 20  # a held model quiet this long (and with no open window) is dropped


@dataclass
class DeadLetter:
    index: int  # message position in the batch
    reason: str
    model: str


@dataclass
class HeldModel:
    """One model/version this partition has records of."""

    profile: Profile
    clock: ModelClock = field(default_factory=ModelClock)
    windows: dict[float, WindowSummary] = field(default_factory=dict)
    published: float = -math.inf  # windows ending at or before this have gone out
    outbox: list[Partial] = field(default_factory=list)  # closed, checkpointed, not yet sent
    skip_to: int = -1  # records of this model at or below this offset are already folded


@dataclass
class Counts:
    """Running counts per model (never reset, so that a repeat of a message changes nothing)."""

    late: dict[ModelKey, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)  # by model name (no version is known)
    unprofiled: dict[ModelKey, int] = field(default_factory=dict)
    unprofiled_overflow: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # late and refused records, by reason


class PartitionFolder:
    def __init__(self, partition: int, profiles: ProfileLookup, config: EngineConfig, *,
                 sources: int = 1, stream: str = "") -> None:
        self.partition = partition
        self.profiles = profiles
        self.config = config
        self.sources = sources
        self.stream = stream
        self.models: dict[ModelKey, HeldModel] = {}
        self.clock = ModelClock()  # every record of the partition: the default watermark
        self.counts = Counts()
        self.offset = -1  # every record at or below this offset is folded in
        self.records = 0  # records folded into windows
        self.invalid_unattributed = 0  # invalid records that name no profiled model
        self._dirty: set[ModelKey] = set()
        self._finished = False  # flush(): every window is out, event time is over

    # -- input ----------------------------------------------------------------------------------
    def fold(self, batch: ParsedBatch, offsets: Sequence[int] | None = None,
             wall: float | None = None) -> list[DeadLetter]:
        """Fold a parsed batch in (messages at `offsets`, received at wall-clock time `wall`;
        both None when replaying a file). Returns the records refused with a reason."""
        refused: list[DeadLetter] = []
        newest = []
        for key, group in batch.groups.items():
            held = self._held(key, len(group))
            if held is None:  # counted, not monitored; its times still move the partition's
                ts = group.ts_array()
                ahead, _ = self.clock.refusals(ts, wall=wall, future=self.config.future_seconds,
                                               retention=self.config.retention_seconds)
                newest.append(ts[~ahead])
                continue
            if offsets is not None and held.skip_to > self.offset:
                group = _after(group, offsets, held.skip_to)
            ts = group.ts_array()
            ahead, old = held.clock.refusals(ts, wall=wall, future=self.config.future_seconds,
                                             retention=self.config.retention_seconds)
            for i in np.flatnonzero(ahead):
                refused.append(DeadLetter(group.index[i], f"{FUTURE} ({float(ts[i])!r})",
                                          key[0]))
            self._count(key, "too_old", int(old.sum()))
            accepted = ~(ahead | old)
            self._fold_windows(key, held, group, ts, accepted)
            held.clock.observe(ts[accepted], wall)
            newest.append(ts[accepted])
            self._dirty.add(key)
        if newest:
            self.clock.observe(np.concatenate(newest), wall)
        for bad in batch.invalid:
            # Attributed to a model this partition holds (any version); the rest (no model, or
            # any string an invalid record carries) is one partition-level count: bounded.
            if bad.model and (bad.model in self.counts.invalid
                              or any(k[0] == bad.model for k in self.models)):
                self.counts.invalid[bad.model] = self.counts.invalid.get(bad.model, 0) + 1
            else:
                self.invalid_unattributed += 1
        if offsets is not None and len(offsets):
            self.offset = max(self.offset, int(max(offsets)))
        self._count_reason(FUTURE, len(refused))
        self.advance(wall, caught_up=False)
        return refused

    def _fold_windows(self, key: ModelKey, held: HeldModel, group: RecordGroup,
                      ts: np.ndarray, accepted: np.ndarray) -> None:
        """A record is late when its window closed before it arrived: by publication here, or
        by the model's records before it (in arrival order, as if folded one at a time)."""
        size = self.config.window_seconds
        starts = np.floor(ts / size) * size
        before = held.clock.before_each(np.where(accepted, ts, -np.inf))
        closed = np.maximum(held.published, before - self.config.grace_seconds)
        late = accepted & (starts + size <= closed)
        self._count(key, "late", int(late.sum()))
        fresh = accepted & ~late
        opening = sorted(set(np.unique(starts[fresh]).tolist()) - set(held.windows))
        room = MAX_OPEN_WINDOWS - len(held.windows)
        if len(opening) > room:  # keep the newest windows; the oldest records count as late
            dropped = opening[:len(opening) - max(room, 0)]
            over = fresh & np.isin(starts, dropped)
            self._count(key, "window_cap", int(over.sum()))
            fresh &= ~over
        self.records += int(fresh.sum())
        for start in np.unique(starts[fresh]).tolist():
            window = held.windows.get(start)
            if window is None:
                window = held.windows[start] = WindowSummary(held.profile, start, start + size)
            window.update(group.take(np.flatnonzero(fresh & (starts == start))))

    def advance(self, wall: float | None, *, caught_up: bool) -> None:
        """Close the windows that event time has passed (`caught_up`: nothing left to read on
        this partition, so quiet models may move on with the wall clock)."""
        for key, held in self.models.items():
            mark = self._model_watermark(held, wall, caught_up)
            due = sorted(s for s, w in held.windows.items() if w.end <= mark)
            for start in due:
                window = held.windows.pop(start)
                held.outbox.append(Partial(self.partition, self.stream, key[0], key[1],
                                           window.to_dict()))
                held.published = max(held.published, window.end)
            if due:
                self._dirty.add(key)
        if wall is not None and caught_up:
            self._evict_quiet(wall)

    def flush(self) -> None:
        """End of input (replay): every open window goes out, and event time ends."""
        self._finished = True
        self.advance(None, caught_up=True)

    # -- output ---------------------------------------------------------------------------------
    def take_partials(self) -> list[Partial]:
        """Closed windows not yet sent, oldest first; they stay in the checkpointed state until
        `sent()` confirms them."""
        return [p for held in self.models.values() for p in held.outbox]

    def sent(self) -> None:
        for key, held in self.models.items():
            if held.outbox:
                held.outbox = []
                self._dirty.add(key)

    def progress(self, wall: float | None = None, *, caught_up: bool = False,
                 route: Callable[[str], int] | None = None,
                 partitions: int = 1) -> dict[int, Progress]:
        """The watermarks, one `Progress` per partials partition (`route(model)` picks it)."""
        route = route or (lambda model: 0)
        out = {q: Progress(self.partition, self.sources, self.stream,
                           self._default_watermark(wall, caught_up))
               for q in range(partitions)}
        for key, held in self.models.items():
            out[route(key[0])].models[key] = self._model_watermark(held, wall, caught_up)
        for key, n in self.counts.unprofiled.items():
            out[route(key[0])].unprofiled[key] = n
        for key, n in self.counts.late.items():
            out[route(key[0])].late[key] = n
        for model, n in self.counts.invalid.items():
            out[route(model)].invalid[model] = n
        return out

    # -- checkpoints ----------------------------------------------------------------------------
    def take_dirty(self) -> set[ModelKey]:
        """Models whose state changed since the last call (their records must be saved)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def header_state(self) -> dict[str, Any]:
        c = self.counts
        return {"partition": self.partition, "offset": self.offset, "records": self.records,
                "clock": self.clock.to_state(),
                "late": _pairs(c.late), "invalid": sorted(c.invalid.items()),
                "unprofiled": _pairs(c.unprofiled), "unprofiled_overflow": c.unprofiled_overflow,
                "reasons": dict(c.reasons), "invalid_unattributed": self.invalid_unattributed}

    def model_state(self, key: ModelKey) -> dict[str, Any] | None:
        """The record of one model (None: it was dropped, the saved record must go too)."""
        held = self.models.get(key)
        if held is None:
            return None
        return {"key": list(key), "offset": self.offset, "clock": held.clock.to_state(),
                "published": held.published if math.isfinite(held.published) else None,
                "windows": [w.to_dict() for w in held.windows.values()],
                "outbox": [p.window for p in held.outbox]}

    def restore(self, header: dict[str, Any] | None,
                models: dict[ModelKey, dict[str, Any]]) -> list[str]:
        """Load saved state; returns warnings (windows that cannot be restored, and why)."""
        warnings: list[str] = []
        if header is not None:
            self.offset = int(header["offset"])
            self.records = int(header["records"])
            self.clock = ModelClock.from_state(header["clock"])
            self.counts = Counts(_unpairs(header["late"]),
                                 {str(m): int(n) for m, n in header["invalid"]},
                                 _unpairs(header["unprofiled"]),
                                 int(header["unprofiled_overflow"]),
                                 {str(k): int(v) for k, v in header["reasons"].items()})
            self.invalid_unattributed = int(header["invalid_unattributed"])
        for key, data in models.items():
            profile = self.profiles(*key)
            if profile is None:
                warnings.append(f"{key[0]} v{key[1]}: no profile any more; its saved windows "
                                f"are dropped")
                continue
            held = HeldModel(profile, ModelClock.from_state(data["clock"]))
            published = data.get("published")
            held.published = float(published) if published is not None else -math.inf
            held.skip_to = int(data["offset"])
            for saved in data["windows"]:
                window = _window(saved, profile)
                if window is None:
                    n = int(saved.get("records", 0))
                    self._count(key, "profile_replaced", n)
                    warnings.append(f"{key[0]} v{key[1]}: an open window of {n} records began "
                                    f"under profile {saved.get('profile_id')}, now "
                                    f"{profile.profile_id}: counted as late")
                else:
                    held.windows[window.start] = window
            held.outbox = [Partial(self.partition, self.stream, key[0], key[1], w)
                           for w in data["outbox"]]
            self.models[key] = held
        return warnings

    # -- internals ------------------------------------------------------------------------------
    def _model_watermark(self, held: HeldModel, wall: float | None, caught_up: bool) -> float:
        if self._finished:
            return math.inf
        return held.clock.watermark(grace=self.config.grace_seconds, wall=wall,
                                    caught_up=caught_up, idle_after=self.config.idle_seconds)

    def _default_watermark(self, wall: float | None, caught_up: bool) -> float:
        if self._finished:
            return math.inf
        mark = self.clock.newest - self.config.grace_seconds
        if wall is not None and caught_up:
            mark = max(mark, wall - self.config.grace_seconds)
        return mark

    def _held(self, key: ModelKey, n: int) -> HeldModel | None:
        """The model's state here, with its current profile (new windows use it; open ones keep
        theirs); None, with the records counted, when the model has no profile (any more)."""
        profile = self.profiles(*key)
        held = self.models.get(key)
        if profile is None:
            self._count_unprofiled(key, n)
            return None
        if held is None:
            held = self.models[key] = HeldModel(profile)
        held.profile = profile
        return held

    def _count(self, key: ModelKey, reason: str, n: int) -> None:
        if n:
            self.counts.late[key] = self.counts.late.get(key, 0) + n
            self._count_reason(reason, n)

    def _count_reason(self, reason: str, n: int) -> None:
        if n:
            self.counts.reasons[reason] = self.counts.reasons.get(reason, 0) + n

    def _count_unprofiled(self, key: ModelKey, n: int) -> None:
        unprofiled = self.counts.unprofiled
        if key in unprofiled or len(unprofiled) < self.config.max_unprofiled_keys:
            unprofiled[key] = unprofiled.get(key, 0) + n
        else:
            self.counts.unprofiled_overflow += n

    def _evict_quiet(self, wall: float) -> None:
        quiet = EVICT_AFTER_WINDOWS * self.config.window_seconds + self.config.idle_seconds
        for key in [k for k, h in self.models.items()
                    if not h.windows and not h.outbox and wall - h.clock.last_wall > quiet]:
            del self.models[key]
            self._dirty.add(key)


def _after(group: RecordGroup, offsets: Sequence[int], skip_to: int) -> RecordGroup:
    keep = [i for i, position in enumerate(group.index) if offsets[position] > skip_to]
    return group.take(np.asarray(keep, dtype=np.int64))


def _window(data: dict[str, Any], profile: Profile) -> WindowSummary | None:
    if data.get("profile_id") != profile.profile_id:
        return None  # summaries on another profile's bins cannot be merged with this one's
    return WindowSummary.from_dict(data, profile)


def _pairs(counts: dict[ModelKey, int]) -> list[list[Any]]:
    return [[m, v, n] for (m, v), n in sorted(counts.items())]


def _unpairs(rows: list[list[Any]]) -> dict[ModelKey, int]:
    return {(str(m), str(v)): int(n) for m, v, n in rows}
