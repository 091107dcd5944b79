"""Event time of one model on one input partition: its watermark, and which records it refuses.

The watermark is the model's newest record time minus the grace, where "newest" is robust: the
`SUPPORT`-th largest time seen, so that one record from tomorrow (a broken clock) cannot close
every open window at once; it waits in its own window until the model's traffic gets there.
A model that has gone quiet on a partition with nothing left to read lets its event time run on
with the wall clock from where its records left it (not jump to the wall clock: a model whose
logs arrive two minutes late keeps its two minutes), so that its last windows close when
traffic stops.

>>> import numpy as np
>>> clock = ModelClock()
>>> clock.observe(np.array([90.0, 100.0, 99.0, 5e9]), wall=1000.0)
>>> clock.newest
99.0
>>> clock.watermark(grace=5, wall=1010.0, caught_up=True, idle_after=30)
94.0
>>> clock.watermark(grace=5, wall=1040.0, caught_up=True, idle_after=30)
134.0
>>> clock.watermark(grace=5, wall=1040.0, caught_up=False, idle_after=30)
94.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SUPPORT = 3  # records that must reach a time before the watermark follows them there

# Why a record's time is not used for its window (counted, and said in the dead letter).
FUTURE = "ts too far in the future"
TOO_OLD = "ts older than the retention"


@dataclass
class ModelClock:
    top: list[float] = field(default_factory=list)  # the SUPPORT largest times seen, descending
    seen_wall: float = -math.inf  # wall-clock time when `newest` last moved (-inf: no clock)
    last_wall: float = -math.inf  # wall-clock time of the last record of this model

    @property
    def newest(self) -> float:
        """The robust newest record time (-inf before any record)."""
        return self.top[-1] if self.top else -math.inf

    def observe(self, ts: np.ndarray, wall: float | None) -> None:
        """Records with times `ts` arrived (at wall-clock time `wall`; None when replaying)."""
        if wall is not None:
            self.last_wall = wall
        if ts.size == 0:
            return
        before = self.newest
        candidates = np.concatenate((ts if ts.size <= SUPPORT else
                                     np.partition(ts, ts.size - SUPPORT)[-SUPPORT:],
                                     np.asarray(self.top)))
        self.top = sorted(candidates.tolist(), reverse=True)[:SUPPORT]
        if self.newest > before:
            self.seen_wall = wall if wall is not None else -math.inf

    def watermark(self, *, grace: float, wall: float | None, caught_up: bool,
                  idle_after: float) -> float:
        base = self.newest - grace
        if (wall is None or not caught_up or not math.isfinite(self.seen_wall)
                or wall - self.last_wall < idle_after):
            return base
        return max(base, self.newest + (wall - self.seen_wall) - grace)

    def expected(self, wall: float) -> float:
        """Where this model's event time should be now: its newest time moved on with the wall
        clock since it was seen (a model that logs two minutes late stays two minutes late, one
        whose clock runs ahead stays ahead), never behind the wall clock."""
        if not (math.isfinite(self.newest) and math.isfinite(self.seen_wall)):
            return wall
        return max(wall, self.newest + (wall - self.seen_wall))

    def before_each(self, ts: np.ndarray) -> np.ndarray:
        """The robust newest time before each record of `ts` (in arrival order), counting the
        records before it: what sequential processing, one record at a time, would see. So a
        record's fate does not depend on how the stream was cut into batches.

        >>> ModelClock([50.0, 40.0, 30.0]).before_each(np.array([60.0, 70.0, 35.0, 80.0]))
        array([30., 40., 50., 50.])
        """
        top = [*self.top, -math.inf, -math.inf, -math.inf][:SUPPORT]
        prev = np.empty((SUPPORT, ts.size))
        # k-th largest so far: max(previous k-th, min(x, previous (k-1)-th)), as running maxima.
        best = np.maximum.accumulate(np.maximum(ts, top[0]))
        prev[0] = np.concatenate(([top[0]], best[:-1]))
        for k in range(1, SUPPORT):
            best = np.maximum.accumulate(np.maximum(np.minimum(ts, prev[k - 1]), top[k]))
            prev[k] = np.concatenate(([top[k]], best[:-1]))
        return prev[SUPPORT - 1]

    def refusals(self, ts: np.ndarray, *, wall: float | None, future: float,
                 retention: float) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the records too far ahead of where the model should be (only against a
        wall clock: a replayed file has none) and of those older than the retention (against
        the newest time before each record, and the clock)."""
        if wall is None:
            ahead = np.zeros(ts.shape, bool)
        else:
            ahead = ts > self.expected(wall) + future
        newest = self.before_each(np.where(ahead, -math.inf, ts))
        if wall is not None:
            newest = np.maximum(newest, wall)
        with np.errstate(invalid="ignore"):
            old = ts < newest - retention
        return ahead, old & ~ahead

    def to_state(self) -> dict[str, Any]:
        return {"top": list(self.top), "seen_wall": _finite(self.seen_wall),
                "last_wall": _finite(self.last_wall)}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> ModelClock:
        def number(x: Any) -> float:
            return float(x) if x is not None else -math.inf

        return cls([float(t) for t in data["top"]][:SUPPORT], number(data["seen_wall"]),
                   number(data["last_wall"]))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
