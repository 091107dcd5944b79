"""Numeric summary: counts, moments (Chan's parallel merge), min/max and a fixed-edge histogram.

The histogram's interior edges come from the training profile (quantiles of the training data,
first edge = training min, last = training max); two outer bins count values below the training
min and above the training max, and the sums of those values are kept so that the Wasserstein
distance is exact outside the training range.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from monitor.errors import ProfileError
from monitor.ingest.columns import NumericColumn


class NumericSummary:
    """Sufficient statistics of a numeric feature.

    >>> import numpy as np
    >>> from monitor.ingest.columns import numeric_column
    >>> edges = np.array([0.0, 1.0, 2.0])
    >>> a, b = NumericSummary(edges), NumericSummary(edges)
    >>> a.update(numeric_column([0.5, 1.5, None])); b.update(numeric_column([3.0, float("nan")]))
    >>> s = a + b
    >>> s.count, s.nulls, s.nonfinite, s.histogram.tolist(), round(s.mean, 6)
    (3, 1, 1, [0, 1, 1, 1], 1.666667)
    """

    kind: ClassVar[str] = "numeric"
    __slots__ = ("edges", "records", "count", "nulls", "nonfinite", "mismatches",
                 "min", "max", "mean", "m2", "histogram", "below_sum", "above_sum")

    def __init__(self, edges: np.ndarray | None = None) -> None:
        self.edges = np.asarray(edges if edges is not None else [], dtype=np.float64)
        self.records = 0  # every slot seen: values, nulls, non-finite and mismatches
        self.count = 0  # finite values
        self.nulls = 0
        self.nonfinite = 0
        self.mismatches = 0
        self.min = np.inf
        self.max = -np.inf
        self.mean = 0.0
        self.m2 = 0.0
        self.histogram = np.zeros(len(self.edges) + 1 if len(self.edges) else 0, dtype=np.int64)
        self.below_sum = 0.0  # sum of values below edges[0]
        self.above_sum = 0.0  # sum of values above edges[-1]

    # -- updating -------------------------------------------------------------------------------
    def update(self, column: NumericColumn) -> None:
        values = column.values
        finite_mask = np.isfinite(values)
        finite = values[finite_mask]
        self.records += column.size
        self.nulls += int(column.null.sum())
        self.mismatches += int(column.mismatch.sum())
        self.nonfinite += int(column.size - finite.shape[0] - column.null.sum() - column.mismatch.sum())
        self.update_finite(finite)

    @staticmethod
    def update_many(summaries: list[NumericSummary], columns: list[NumericColumn]) -> None:
        """`s.update(c)` for every pair, with the moments of all columns computed at once
        (one numpy call per statistic instead of one per feature: small batches are dominated
        by per-call overhead). All columns have the same number of records."""
        if not summaries:
            return
        values = np.stack([c.values for c in columns])
        nulls = np.stack([c.null for c in columns])
        mismatches = np.stack([c.mismatch for c in columns])
        finite = np.isfinite(values)
        counts = finite.sum(axis=1)
        null_counts = nulls.sum(axis=1)
        mismatch_counts = mismatches.sum(axis=1)
        safe = np.where(finite, values, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = safe.sum(axis=1) / counts
            m2s = (np.where(finite, values - means[:, None], 0.0) ** 2).sum(axis=1)
        mins = np.where(finite, values, np.inf).min(axis=1)
        maxs = np.where(finite, values, -np.inf).max(axis=1)
        n = values.shape[1]
        for i, s in enumerate(summaries):
            s.records += n
            s.nulls += int(null_counts[i])
            s.mismatches += int(mismatch_counts[i])
            s.nonfinite += int(n - counts[i] - null_counts[i] - mismatch_counts[i])
            if counts[i] == 0:
                continue
            s._merge_moments(int(counts[i]), float(means[i]), float(m2s[i]))
            s.min = min(s.min, float(mins[i]))
            s.max = max(s.max, float(maxs[i]))
            if len(s.edges):
                row = values[i] if counts[i] == n else values[i][finite[i]]
                s._histogram_update(row)

    def update_finite(self, finite: np.ndarray) -> None:
        """Fold in finite values only (the counters of nulls and records are the caller's)."""
        n = int(finite.shape[0])
        if n == 0:
            return
        batch_mean = float(finite.mean())
        batch_m2 = float(((finite - batch_mean) ** 2).sum())
        self._merge_moments(n, batch_mean, batch_m2)
        self.min = min(self.min, float(finite.min()))
        self.max = max(self.max, float(finite.max()))
        if len(self.edges):
            self._histogram_update(finite)

    def _histogram_update(self, finite: np.ndarray) -> None:
        last = len(self.edges) - 1
        index = np.searchsorted(self.edges, finite, side="right")
        index[finite == self.edges[-1]] = last  # the training max belongs to the last bin
        self.histogram += np.bincount(index, minlength=last + 2)
        if index[0] == 0 or index.min() == 0:
            self.below_sum += float(finite[index == 0].sum())
        if index.max() == last + 1:
            self.above_sum += float(finite[index == last + 1].sum())

    def _merge_moments(self, n: int, mean: float, m2: float) -> None:
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    # -- merging --------------------------------------------------------------------------------
    def merge(self, other: NumericSummary) -> NumericSummary:
        """Merge `other` into this summary in place and return self."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge numeric summaries with different bin edges")
        self.records += other.records
        self.nulls += other.nulls
        self.nonfinite += other.nonfinite
        self.mismatches += other.mismatches
        if other.count:
            self._merge_moments(other.count, other.mean, other.m2)
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.histogram = self.histogram + other.histogram
        self.below_sum += other.below_sum
        self.above_sum += other.above_sum
        return self

    def __iadd__(self, other: NumericSummary) -> NumericSummary:
        return self.merge(other)

    def __add__(self, other: NumericSummary) -> NumericSummary:
        return self.copy().merge(other)

    def copy(self) -> NumericSummary:
        return NumericSummary.from_dict(self.to_dict())

    def empty_like(self) -> NumericSummary:
        return NumericSummary(self.edges)

    # -- derived statistics ---------------------------------------------------------------------
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
        return {
            "kind": self.kind,
            "edges": self.edges.tolist(),
            "records": self.records,
            "count": self.count,
            "nulls": self.nulls,
            "nonfinite": self.nonfinite,
            "mismatches": self.mismatches,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "mean": self.mean,
            "m2": self.m2,
            "histogram": self.histogram.tolist(),
            "below_sum": self.below_sum,
            "above_sum": self.above_sum,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericSummary:
        try:
            s = cls(np.asarray(data["edges"], dtype=np.float64))
            s.records = int(data["records"])
            s.count = int(data["count"])
            s.nulls = int(data["nulls"])
            s.nonfinite = int(data["nonfinite"])
            s.mismatches = int(data["mismatches"])
            s.min = float(data["min"]) if data["min"] is not None else np.inf
            s.max = float(data["max"]) if data["max"] is not None else -np.inf
            s.mean = float(data["mean"])
            s.m2 = float(data["m2"])
            s.histogram = np.asarray(data["histogram"], dtype=np.int64)
            s.below_sum = float(data["below_sum"])
            s.above_sum = float(data["above_sum"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"malformed numeric summary: {exc!r}") from exc
        return s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumericSummary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"NumericSummary(count={self.count}, nulls={self.nulls}, mean={self.mean:.4g})"
