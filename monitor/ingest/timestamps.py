"""Record timestamps: parse them (epoch seconds or ISO 8601) and format them (ISO 8601, UTC).

Neither direction ever raises on a finite number: years outside 1..9999, which Python's datetime
cannot hold, are written and read with ISO 8601's expanded years (`-314918-08-13T...Z`). Parsing
refuses what is not a time with a ValueError that says why, and nothing else.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import Any

MAX_FUTURE_SECONDS = 86_400.0  # a ts further ahead of this machine's clock is an error
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_EXPANDED = re.compile(
    r"([+-]\d{4,})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?"
    r"(Z|[+-]\d\d:?\d\d)?")
_DAY = 86_400


def iso(ts: float) -> str:
    """UTC ISO 8601 with milliseconds; any finite number works (non-finite ones are named).

    >>> iso(1764158400.25), iso(-1e13), iso(float("nan"))
    ('2025-11-26T12:00:00.250Z', '-314918-08-13T06:13:20.000Z', 'nan')
    >>> iso(1e300)[:8], len(iso(-1.7976931348623157e308)) < 330
    ('+3168873', True)
    """
    if not isinstance(ts, int | float) or not math.isfinite(ts):
        return str(ts)
    try:
        return (datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"))
    except (ValueError, OverflowError, OSError):
        pass  # a year datetime cannot hold: computed below
    whole = math.floor(ts)
    millis = int((ts - whole) * 1000) if abs(ts) < 2 ** 52 else 0
    days, seconds = divmod(int(whole), _DAY)
    year, month, day = _civil_from_days(days)
    sign = "-" if year < 0 else "+"
    hh, rest = divmod(seconds, 3600)
    return (f"{sign}{abs(year):06d}-{month:02d}-{day:02d}T{hh:02d}:{rest // 60:02d}:"
            f"{rest % 60:02d}.{millis:03d}Z")


_FIRST = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LAST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


def to_datetime(ts: float) -> datetime:
    """A UTC datetime (for plots), clamped into the years datetime can hold; never raises.

    >>> to_datetime(0.0).year, to_datetime(-1e13).year, to_datetime(float("inf")).year
    (1970, 1, 9999)
    """
    if ts != ts:  # NaN
        ts = 0.0
    return datetime.fromtimestamp(min(max(ts, _FIRST), _LAST), UTC)


def parse_ts(value: Any, latest: float | None = None) -> float:
    """Epoch seconds from a number (epoch seconds) or a string: ISO 8601 (UTC when naive,
    expanded years allowed) or a number. Raises ValueError, with the reason, and nothing else.

    >>> parse_ts(1764158400), parse_ts("2025-11-26T12:00:00Z"), parse_ts("2025-11-26T12:00:00.5+00:00")
    (1764158400.0, 1764158400.0, 1764158400.5)
    >>> parse_ts("1764158400"), parse_ts(-1e13), parse_ts(iso(-1e13))
    (1764158400.0, -10000000000000.0, -10000000000000.0)
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"ts must be a string or a number, got {type(value).__name__}")
    if isinstance(value, str):
        return parse_ts(_parse_text(value), latest)
    try:
        ts = float(value)
    except OverflowError:
        raise ValueError(f"ts is out of range: {str(value)[:40]}") from None
    if not math.isfinite(ts):
        raise ValueError(f"ts is not finite: {value!r}")
    limit = time.time() + MAX_FUTURE_SECONDS if latest is None else latest
    if ts > limit:
        # Epoch milliseconds, or a broken clock: one such record would hold every later
        # window open, so it is refused.
        raise ValueError(f"ts is more than a day in the future ({value!r}; epoch seconds "
                         f"expected, not milliseconds)")
    return ts


def _parse_text(value: str) -> float:
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return float(text)  # inf for a huge exponent: refused by the caller as not finite
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return _parse_expanded(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.timestamp()
    except (OverflowError, ValueError):  # year 1 or 9999 shifted out of range by its offset
        return _parse_expanded(value)


def _parse_expanded(value: str) -> float:
    match = _EXPANDED.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"ts is neither ISO 8601 nor epoch seconds: {value[:64]!r}")
    year, month, day, hh, mm, ss, frac, zone = match.groups()
    month_i, day_i, h, m, s = int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0)
    if not (1 <= month_i <= 12 and 1 <= day_i <= 31 and h < 24 and m < 60 and s < 61):
        raise ValueError(f"ts is not a valid date and time: {value[:64]!r}")
    offset = 0
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * (1 if zone[0] == "+" else -1)
    days = _days_from_civil(int(year), month_i, day_i)
    seconds = days * _DAY + h * 3600 + m * 60 + s - offset
    try:
        return float(seconds) + (float("0." + frac) if frac else 0.0)
    except OverflowError:
        raise ValueError(f"ts is out of range: {value[:64]!r}") from None


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """(year, month, day) of day `z` since 1970-01-01, proleptic Gregorian, any integer
    (H. Hinnant's algorithm; Python's floor division handles negative eras)."""
    z += 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Inverse of `_civil_from_days`.

    >>> all(_days_from_civil(*_civil_from_days(z)) == z for z in (-10**9, -719_469, 0, 20_418))
    True
    """
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468
