"""Slow-drift detection: a Page-Hinkley test whose whole state is a handful of numbers.

The detector is river's `river.drift.PageHinkley` (same parameters, same updates, same
decisions), written out here so that its state can be saved as plain JSON numbers in the
worker's checkpoints instead of a pickle (which would run whatever code a crafted checkpoint
carries). `tests/test_trend.py` checks it against river's on random streams.

>>> import random
>>> rng = random.Random(12345)
>>> ph = PageHinkley()
>>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
>>> for i, x in enumerate(stream):
...     ph.update(x)
...     if ph.drift_detected:
...         print(f"change at index {i}, statistic {ph.statistic:.1f} > {ph.threshold}")
change at index 1006, statistic 51.0 > 50.0
>>> PageHinkley.from_state(ph.to_state()).to_state() == ph.to_state()
True
"""

from __future__ import annotations

import math
from typing import Any

from monitor.errors import StateError

MODES = ("up", "down", "both")
STATE_FORMAT = 1


class PageHinkley:
    """Page-Hinkley change detection on the mean of a stream (river's parameters).

    `min_instances` values are needed before any detection; `delta` is the magnitude of change
    tolerated; `threshold` (lambda) the cumulative deviation that signals a change; `alpha` the
    forgetting factor of the cumulative sums; `mode` which changes count: "up", "down", "both".
    After a detection the next `update` starts afresh (as river's does).
    """

    def __init__(self, min_instances: int = 30, delta: float = 0.005, threshold: float = 50.0,
                 alpha: float = 1 - 0.0001, mode: str = "both") -> None:
        if min_instances < 1:
            raise ValueError(f'"min_instances" must be >= 1: {min_instances}')
        if not threshold > 0:
            raise ValueError(f'"threshold" must be > 0: {threshold}')
        if not 0 < alpha <= 1:
            raise ValueError(f'"alpha" must be in (0, 1]: {alpha}')
        if mode not in MODES:
            raise ValueError(f'"mode" must be one of {", ".join(MODES)}: {mode!r}')
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = math.inf
        self._max_decrease = -1.0  # as river starts it
        self._statistic = 0.0
        self._rising = True
        self._drift_detected = False

    def update(self, x: float) -> None:
        if self._drift_detected:
            self._reset()
        self._n += 1
        self._mean += (1.0 / self._n) * (x - self._mean)  # river's stats.Mean, bit for bit
        dev = x - self._mean
        self._sum_increase = self.alpha * self._sum_increase + dev - self.delta
        self._sum_decrease = self.alpha * self._sum_decrease + dev + self.delta
        self._min_increase = min(self._min_increase, self._sum_increase)
        self._max_decrease = max(self._max_decrease, self._sum_decrease)
        if self._n >= self.min_instances:
            up = self._sum_increase - self._min_increase
            down = self._max_decrease - self._sum_decrease
            self._statistic = {"up": up, "down": down, "both": max(up, down)}[self.mode]
            self._rising = self.mode == "up" or (self.mode == "both" and up >= down)
            self._drift_detected = self._statistic > self.threshold

    @property
    def drift_detected(self) -> bool:
        """Whether the last update signalled a change."""
        return self._drift_detected

    @property
    def statistic(self) -> float:
        """The test statistic of the last update (what is compared with `threshold`; 0 before
        `min_instances` values)."""
        return self._statistic

    @property
    def rising(self) -> bool:
        """Whether the statistic measures a rise of the mean (else a fall)."""
        return self._rising

    @property
    def n(self) -> int:
        """Values seen since the start or the last detection."""
        return self._n

    # -- plain-data state -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Parameters and state as JSON numbers (an infinity is written as None)."""
        return {
            "format": STATE_FORMAT,
            "params": {"min_instances": self.min_instances, "delta": self.delta,
                       "threshold": self.threshold, "alpha": self.alpha, "mode": self.mode},
            "n": self._n, "mean": self._mean, "sum_increase": self._sum_increase,
            "sum_decrease": self._sum_decrease,
            "min_increase": _finite_or_none(self._min_increase),
            "max_decrease": self._max_decrease, "statistic": self._statistic,
            "rising": self._rising,
            "drift_detected": self._drift_detected,
        }

    @classmethod
    def from_state(cls, state: Any) -> PageHinkley:
        """The detector saved by `to_state`; anything else is refused with a StateError.

        >>> PageHinkley.from_state({"format": 9})
        Traceback (most recent call last):
        ...
        monitor.errors.StateError: trend detector state format 9, expected 1
        """
        if not isinstance(state, dict):
            raise StateError(f"trend detector state must be a JSON object, not "
                             f"{type(state).__name__}")
        if state.get("format") != STATE_FORMAT:
            raise StateError(f"trend detector state format {state.get('format')!r}, "
                             f"expected {STATE_FORMAT}")
        try:
            params = state["params"]
            detector = cls(min_instances=_int(params["min_instances"]),
                           delta=_number(params["delta"]), threshold=_number(params["threshold"]),
                           alpha=_number(params["alpha"]), mode=str(params["mode"]))
            detector._n = _int(state["n"])
            detector._mean = _number(state["mean"])
            detector._sum_increase = _number(state["sum_increase"])
            detector._sum_decrease = _number(state["sum_decrease"])
            low = state["min_increase"]
            detector._min_increase = math.inf if low is None else _number(low)
            detector._max_decrease = _number(state["max_decrease"])
            detector._statistic = _number(state["statistic"])
            detector._rising = _bool(state["rising"])
            detector._drift_detected = _bool(state["drift_detected"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"trend detector state is malformed: {exc}") from None
        return detector


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an integer: {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"not a boolean: {value!r}")
    return value
