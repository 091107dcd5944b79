"""Numeric summary: counts, exact moments, min/max and a fixed-edge histogram.

The histogram's interior edges come from the training profile (quantiles of the training data,
first edge = training min, last = training max); two outer bins count values below the training
min and above the training max, and the sums of those values are kept so that the Wasserstein
distance is exact outside the training range.

Moments (mean, M2) and the outer sums are exact integer sums of quantised values
(`monitor.summaries.exact`), so merging is associative and commutative bit for bit: any split of
the same values, merged in any order, gives an identical summary. The quantisation frame (centre,
quantum) belongs to the profile, like the edges.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from monitor.errors import ProfileError
from monitor.ingest import native_decode
from monitor.ingest.columns import NumericColumn
from monitor.summaries import exact


class NumericSummary:
    """Sufficient statistics of a numeric feature.

    >>> import numpy as np
    >>> from monitor.ingest.columns import numeric_column
    >>> edges = np.array([0.0, 1.0, 2.0])
    >>> a, b = NumericSummary(edges), NumericSummary(edges)
    >>> a.update(numeric_column([0.5, 1.5, None])); b.update(numeric_column([3.0, float("nan")]))
    >>> s = a + b
    >>> s.count, s.nulls, s.nonfinite, s.histogram.tolist(), s.mean, s.variance
    (3, 1, 1, [0, 1, 1, 1], 1.6666666666666667, 1.5833333333333333)
    """

    kind: ClassVar[str] = "numeric"
    __slots__ = ("edges", "center", "quantum", "records", "count", "nulls", "nonfinite",
                 "mismatches", "min", "max", "histogram", "s1", "s2", "clipped",
                 "below_s1", "above_s1", "_mean")

    def __init__(self, edges: np.ndarray | None = None, *, center: float | None = None,
                 quantum: float | None = None) -> None:
        """`center` and `quantum` fix the exact moments' frame (`exact.frame_for` of the training
        values); without them, the midpoint and span of the edges (or 0 and 1) stand in."""
        self.edges = np.asarray(edges if edges is not None else [], dtype=np.float64)
        if center is None or quantum is None:
            lo, hi = (float(self.edges[0]), float(self.edges[-1])) if len(self.edges) else (0.0, 0.0)
            center = (lo + hi) / 2 if center is None else center
            quantum = exact.quantum_for(hi - lo if hi > lo else max(1.0, abs(center))) \
                if quantum is None else quantum
        self.center = float(center)
        self.quantum = float(quantum)
        self.records = 0  # every slot seen: values, nulls, non-finite and mismatches
        self.count = 0  # finite values
        self.nulls = 0
        self.nonfinite = 0
        self.mismatches = 0
        self.min = np.inf
        self.max = -np.inf
        self.histogram = np.zeros(len(self.edges) + 1 if len(self.edges) else 0, dtype=np.int64)
        self.s1 = 0  # sum of quanta z = rint((x - center) / quantum)
        self.s2 = 0  # sum of z ** 2
        self.clipped = 0  # finite values beyond the frame's bound, clipped in the moments
        self.below_s1 = 0  # sum of quanta of values below edges[0]
        self.above_s1 = 0  # sum of quanta of values above edges[-1]
        self._mean: tuple[int, int, float] | None = None  # (s1, count, mean): exact, so cached

    # -- updating -------------------------------------------------------------------------------
    def update(self, column: NumericColumn) -> None:
        NumericSummary.update_many([self], [column])

    @staticmethod
    def update_many(summaries: list[NumericSummary], columns: list[NumericColumn]) -> None:
        """`s.update(c)` for every pair, with the moments of all columns computed at once
        (one numpy call per statistic instead of one per feature: small batches are dominated
        by per-call overhead). All columns have the same number of records."""
        if not summaries or columns[0].size == 0:
            return
        values = np.stack([c.values for c in columns])
        finite = np.isfinite(values)
        counts = finite.sum(axis=1).tolist()
        null_counts = np.stack([c.null for c in columns]).sum(axis=1).tolist()
        mismatch_counts = np.stack([c.mismatch for c in columns]).sum(axis=1).tolist()
        centers = np.array([s.center for s in summaries])[:, None]
        quanta = np.array([s.quantum for s in summaries])[:, None]
        z = exact.quantise(values, centers, quanta, finite)
        s1s, s2s = exact.sums(z)
        # + 0.0 turns -0.0 into 0.0: min(0.0, -0.0) would depend on the order of the values.
        mins = (np.where(finite, values, np.inf).min(axis=1) + 0.0).tolist()
        maxs = (np.where(finite, values, -np.inf).max(axis=1) + 0.0).tolist()
        n = values.shape[1]
        for i, s in enumerate(summaries):
            s.records += n
            s.nulls += null_counts[i]
            s.mismatches += mismatch_counts[i]
            s.nonfinite += n - counts[i] - null_counts[i] - mismatch_counts[i]
            if counts[i] == 0:
                continue
            s.count += counts[i]
            s.s1 += s1s[i]
            s.s2 += s2s[i]
            s.min = min(s.min, mins[i])
            s.max = max(s.max, maxs[i])
            row = values[i] if counts[i] == n else values[i][finite[i]]
            zrow = z[i] if counts[i] == n else z[i][finite[i]]
            if abs(mins[i] - s.center) > s.quantum * 2.0 ** exact.CLIP_BITS or \
                    abs(maxs[i] - s.center) > s.quantum * 2.0 ** exact.CLIP_BITS:
                s.clipped += exact.clipped_count(row, s.center, s.quantum)
            if len(s.edges):
                s._histogram_update(row, zrow)

    def update_finite(self, finite: np.ndarray) -> None:
        """Fold in finite values only (the counters of nulls and records are the caller's)."""
        n = int(finite.shape[0])
        if n == 0:
            return
        z = exact.quantise(finite, self.center, self.quantum)
        (s1,), (s2,) = exact.sums(z[None, :])
        self.count += n
        self.s1 += s1
        self.s2 += s2
        lo, hi = float(finite.min()) + 0.0, float(finite.max()) + 0.0  # never -0.0
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)
        bound = self.quantum * 2.0 ** exact.CLIP_BITS
        if abs(lo - self.center) > bound or abs(hi - self.center) > bound:
            self.clipped += exact.clipped_count(finite, self.center, self.quantum)
        if len(self.edges):
            self._histogram_update(finite, z)

    def _histogram_update(self, finite: np.ndarray, z: np.ndarray) -> None:
        if native_decode.available() and len(self.edges) < 65_535:
            below, above = native_decode.drift_native.histogram(
                self.edges, np.ascontiguousarray(finite), np.ascontiguousarray(z), self.histogram)
            self.below_s1 += below
            self.above_s1 += above
            return
        last = len(self.edges) - 1
        index = np.searchsorted(self.edges, finite, side="right")
        index[finite == self.edges[-1]] = last  # the training max belongs to the last bin
        self.histogram += np.bincount(index, minlength=last + 2)
        if index.min() == 0:
            self.below_s1 += int(z[index == 0].sum())
        if index.max() == last + 1:
            self.above_s1 += int(z[index == last + 1].sum())

    # -- merging --------------------------------------------------------------------------------
    def merge(self, other: NumericSummary) -> NumericSummary:
        """Merge `other` into this summary in place and return self (exact: integer sums)."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge numeric summaries with different bin edges")
        if (self.center, self.quantum) != (other.center, other.quantum):
            raise ValueError("cannot merge numeric summaries with different quantisation frames")
        self.records += other.records
        self.nulls += other.nulls
        self.nonfinite += other.nonfinite
        self.mismatches += other.mismatches
        if other.count:
            self.count += other.count
            self.s1 += other.s1
            self.s2 += other.s2
            self.clipped += other.clipped
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.histogram = self.histogram + other.histogram
        self.below_s1 += other.below_s1
        self.above_s1 += other.above_s1
        return self

    def __iadd__(self, other: NumericSummary) -> NumericSummary:
        return self.merge(other)

    def __add__(self, other: NumericSummary) -> NumericSummary:
        return self.copy().merge(other)

    def copy(self) -> NumericSummary:
        return NumericSummary.from_dict(self.to_dict())

    def empty_like(self) -> NumericSummary:
        return NumericSummary(self.edges, center=self.center, quantum=self.quantum)

    # -- derived statistics ---------------------------------------------------------------------
    @property
    def mean(self) -> float:
        """The exact mean, rounded once (a Fraction computation: remembered for these sums)."""
        cached = self._mean
        if cached is not None and cached[0] == self.s1 and cached[1] == self.count:
            return cached[2]
        value = exact.mean_of(self.center, self.quantum, self.s1, self.count)
        self._mean = (self.s1, self.count, value)
        return value

    @property
    def m2(self) -> float:
        return exact.m2_of(self.quantum, self.s1, self.s2, self.count)

    @property
    def variance(self) -> float:
        return self.m2 / (self.count - 1) if self.count > 1 else 0.0

    @property
    def std(self) -> float:
        return float(np.sqrt(self.variance))

    @property
    def below(self) -> int:
        return int(self.histogram[0]) if len(self.histogram) else 0

    @property
    def above(self) -> int:
        return int(self.histogram[-1]) if len(self.histogram) else 0

    @property
    def below_sum(self) -> float:
        """Sum of the values below the training min (edges[0])."""
        return exact.total_of(self.center, self.quantum, self.below_s1, self.below)

    @property
    def above_sum(self) -> float:
        """Sum of the values above the training max (edges[-1])."""
        return exact.total_of(self.center, self.quantum, self.above_s1, self.above)

    def quantile(self, q: float) -> float:
        """Quantile interpolated linearly inside the histogram's bins (NaN when empty)."""
        if self.count == 0:
            return float("nan")
        if not len(self.edges):
            return self.mean
        # Bin bounds, with the outer bins closed by the observed min and max.
        lo = np.concatenate(([min(self.min, self.edges[0])], self.edges))
        hi = np.concatenate((self.edges, [max(self.max, self.edges[-1])]))
        cum = np.cumsum(self.histogram) / self.count
        i = int(np.searchsorted(cum, q, side="left"))
        i = min(i, len(cum) - 1)
        prev = cum[i - 1] if i else 0.0
        width = cum[i] - prev
        frac = (q - prev) / width if width > 0 else 0.0
        return float(lo[i] + frac * (hi[i] - lo[i]))

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; the exact sums are decimal strings (they outgrow 64 bits), `mean`
        and `m2` are derived from them and only there for readers."""
        return {"kind": self.kind, "edges": self.edges.tolist(), "center": self.center,
                "quantum": self.quantum, **self.state_dict()}

    def state_dict(self) -> dict[str, Any]:
        """What a window adds to the frame (edges, centre, quantum) it shares with its profile."""
        return {
            "records": self.records,
            "count": self.count,
            "nulls": self.nulls,
            "nonfinite": self.nonfinite,
            "mismatches": self.mismatches,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "histogram": self.histogram.tolist(),
            "s1": str(self.s1),
            "s2": str(self.s2),
            "clipped": self.clipped,
            "below_s1": str(self.below_s1),
            "above_s1": str(self.above_s1),
            "mean": self.mean,
            "m2": self.m2,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericSummary:
        try:
            s = cls(np.asarray(data["edges"], dtype=np.float64), center=float(data["center"]),
                    quantum=float(data["quantum"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"malformed numeric summary: {exc!r}") from exc
        return s.load_state(data)

    def load_state(self, data: dict[str, Any]) -> NumericSummary:
        """Fill this (empty) summary from `state_dict()` output; returns self."""
        try:
            self.records = int(data["records"])
            self.count = int(data["count"])
            self.nulls = int(data["nulls"])
            self.nonfinite = int(data["nonfinite"])
            self.mismatches = int(data["mismatches"])
            self.min = float(data["min"]) if data["min"] is not None else np.inf
            self.max = float(data["max"]) if data["max"] is not None else -np.inf
            self.histogram = np.asarray(data["histogram"], dtype=np.int64)
            self.s1 = int(data["s1"])
            self.s2 = int(data["s2"])
            self.clipped = int(data["clipped"])
            self.below_s1 = int(data["below_s1"])
            self.above_s1 = int(data["above_s1"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"malformed numeric summary: {exc!r}") from exc
        if len(self.histogram) != (len(self.edges) + 1 if len(self.edges) else 0):
            raise ProfileError(f"malformed numeric summary: {len(self.histogram)} histogram "
                               f"bins for {len(self.edges)} edges")
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumericSummary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"NumericSummary(count={self.count}, nulls={self.nulls}, mean={self.mean:.4g})"
