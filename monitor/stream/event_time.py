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

    def refusals(self, ts: np.ndarray, *, wall: float | None, future: float,
                 retention: float) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the records too far ahead (only against a wall clock: a replayed file has
        none) and of those older than the retention (against the newest time and the clock)."""
        ahead = ts > wall + future if wall is not None else np.zeros(ts.shape, bool)
        reference = max(self.newest, wall if wall is not None else -math.inf)
        old = ts < reference - retention if math.isfinite(reference) else np.zeros(ts.shape, bool)
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
