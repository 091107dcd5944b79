"""Exact, order-independent sums of real values: quantise, then add integers.

A float sum depends on the order of its terms in the last bits, so a window summed in one
partition and the same window summed in four partitions and merged would differ. Instead each
finite value x is quantised against a per-feature frame fixed by the profile, a centre c and a
quantum q (a power of two near the training scale times 2**-QUANTUM_BITS):

    z = rint((x - c) / q), clipped to +-2**CLIP_BITS

and only integers are added: S1 = sum z and S2 = sum z**2 (z split into 20-bit halves so that
int64 never overflows inside a numpy batch; batches are added as Python ints). Integer addition
is associative, so any grouping of the values gives the same sums, and mean = c + q*S1/n and
M2 = q**2 * (n*S2 - S1**2) / n are computed from them once, deterministically.

Precision: |x - (c + q*z)| <= q/2 <= 2**-QUANTUM_BITS * scale, a relative error of 6e-8 of the
training scale on a mean and about 1.2e-7 on a variance: far below any check's threshold. Values
more than 2**(CLIP_BITS - QUANTUM_BITS) = 65,536 (at least 32,768) training scales from the centre
are clipped in the moments only (they still count in min, max, histogram and out-of-range).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

QUANTUM_BITS = 24
CLIP_BITS = 40
_CLIP = float(2 ** CLIP_BITS)
_HALF = 20
_LOW_MASK = (1 << _HALF) - 1
# |z| <= 2**40, so each of hi*hi, hi*lo, lo*lo is < 2**40 and a block of 2**22 values sums below 2**62.
_BLOCK = 1 << 22
Sums = tuple[int, int]  # (S1, S2)


def frame_for(sample: np.ndarray) -> tuple[float, float]:
    """Centre and quantum for a feature whose training values look like `sample` (finite).

    >>> frame_for(np.array([10.0, 12.0, 14.0]))
    (12.0, 1.1920928955078125e-07)
    >>> frame_for(np.array([]))
    (0.0, 5.960464477539063e-08)
    """
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, quantum_for(1.0)
    center = float(sample.mean())
    if not math.isfinite(center):  # values near the float limit: the sum overflowed
        center = float(np.median(sample))
    scale = float(sample.std(ddof=1)) if sample.size > 1 else 0.0
    if not (math.isfinite(scale) and scale > 0):
        scale = float(sample.max() - sample.min())
    if not (math.isfinite(scale) and scale > 0):
        scale = max(abs(center), 1.0)
    return center, quantum_for(scale)


def quantum_for(scale: float) -> float:
    """The power of two at or below `scale * 2**-QUANTUM_BITS` (kept in the normal float range).

    >>> quantum_for(1.0) == 2.0 ** -24, quantum_for(3.0) == 2.0 ** -23
    (True, True)
    """
    exponent = math.floor(math.log2(scale)) if scale > 0 and math.isfinite(scale) else 0
    return math.ldexp(1.0, min(max(exponent - QUANTUM_BITS, -1000), 1000))


def quantise(values: np.ndarray, center: np.ndarray | float, quantum: np.ndarray | float,
             finite: np.ndarray | None = None) -> np.ndarray:
    """int64 quanta of `values` (any shape); 0 where not `finite` (None: all are finite)."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = (values - center) / quantum
    np.rint(z, out=z)
    np.clip(z, -_CLIP, _CLIP, out=z)
    if finite is not None:
        z[~finite] = 0.0
    return z.astype(np.int64)


def clipped_count(values: np.ndarray, center: float, quantum: float) -> int:
    """How many finite values lie beyond the clipping bound of this frame."""
    with np.errstate(over="ignore", invalid="ignore"):
        far = np.abs((values - center) / quantum) > _CLIP
    return int(far.sum())


def sums(z: np.ndarray) -> tuple[list[int], list[int]]:
    """Exact S1 and S2 of int64 quanta along the last axis (a 2-D array: one per row).

    >>> sums(np.array([[2 ** 40, -(2 ** 40), 3]]))
    ([3], [2417851639229258349412361])
    """
    rows = z.shape[0]
    top = int(np.abs(z).max()) if z.size else 0
    if top < 1 << 31:
        # z**2 fits int64: sum it in column blocks small enough that no block sum overflows
        # (all of them at once for small quanta: lengths, counts, integer features).
        block = (2 ** 63 - 1) // max(top * top, 1)
        if block >= min(z.shape[1], 256):
            squares = z * z
            s1 = z.sum(axis=1).tolist()
            s2 = [0] * rows
            for start in range(0, z.shape[1], block):
                part = squares[:, start:start + block].sum(axis=1).tolist()
                s2 = [a + b for a, b in zip(s2, part, strict=True)]
            return s1, s2
    s1 = [0] * rows
    s2 = [0] * rows
    for start in range(0, z.shape[1], _BLOCK):
        block = z[:, start:start + _BLOCK]
        hi = block >> _HALF  # floor division: lo is in [0, 2**20)
        lo = block & _LOW_MASK
        b1 = block.sum(axis=1).tolist()
        hh = (hi * hi).sum(axis=1).tolist()
        hl = (hi * lo).sum(axis=1).tolist()
        ll = (lo * lo).sum(axis=1).tolist()
        for i in range(rows):
            s1[i] += b1[i]
            s2[i] += (hh[i] << (2 * _HALF)) + (hl[i] << (_HALF + 1)) + ll[i]
    return s1, s2


def mean_of(center: float, quantum: float, s1: int, n: int) -> float:
    """c + q * S1 / n, computed exactly and rounded once (0.0 when n is 0).

    >>> mean_of(1.0, 2.0 ** -23, 2 ** 24, 3)
    1.6666666666666667
    """
    return float(Fraction(center) + Fraction(quantum) * Fraction(s1, n)) if n else 0.0


def total_of(center: float, quantum: float, s1: int, n: int) -> float:
    """The sum of n values whose quanta sum to S1: n*c + q*S1, rounded once."""
    return float(n * Fraction(center) + Fraction(quantum) * s1)


def m2_of(quantum: float, s1: int, s2: int, n: int) -> float:
    """The sum of squared deviations from the mean, q**2 * (n*S2 - S1**2) / n, exactly rounded
    once.

    >>> z = [3, 5, 7]
    >>> m2_of(0.5, sum(z), sum(v * v for v in z), 3)
    2.0
    """
    if n == 0:
        return 0.0
    return (n * s2 - s1 * s1) / n * quantum * quantum
