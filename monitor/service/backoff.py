"""Retry pacing for the worker's I/O: after a failure wait, doubling the wait up to a ceiling;
a success starts over. It also remembers what the worker should say about the outage: since
when it lasts, how many attempts failed, and whether a failure is worth a log line (the first,
then about once per ceiling, so an outage of an hour is a few dozen lines, not thousands).

>>> b = Backoff(first=1.0, longest=4.0)
>>> b.ready(now=0.0), b.failed(now=0.0), b.failed(now=1.0), b.failed(now=3.0), b.failed(now=7.0)
(True, 1.0, 2.0, 4.0, 4.0)
>>> b.ready(now=10.0), b.ready(now=11.0), b.failing, b.failures
(False, True, True, 4)
>>> b.succeeded(now=12.0), b.failing, b.ready(now=12.0)
(12.0, False, True)
"""

from __future__ import annotations

import time


class Backoff:
    def __init__(self, first: float = 0.5, longest: float = 10.0) -> None:
        self.first = first
        self.longest = longest
        self.wait = first
        self.retry_at = 0.0
        self.failures = 0  # consecutive failed attempts
        self.since: float | None = None  # when the current run of failures began
        self.total_failures = 0
        self._said_at = -float("inf")

    @property
    def failing(self) -> bool:
        return self.since is not None

    def ready(self, now: float | None = None) -> bool:
        """May the next attempt go now?"""
        return (time.monotonic() if now is None else now) >= self.retry_at

    def failed(self, now: float | None = None) -> float:
        """An attempt failed: returns how long to wait before the next one."""
        now = time.monotonic() if now is None else now
        wait = self.wait
        if self.since is None:
            self.since = now
        self.failures += 1
        self.total_failures += 1
        self.retry_at = now + wait
        self.wait = min(wait * 2, self.longest)
        return wait

    def worth_saying(self, now: float | None = None) -> bool:
        """True for the first failure of an outage, then at most once per `longest` seconds."""
        now = time.monotonic() if now is None else now
        if self.failures <= 1 or now - self._said_at >= self.longest:
            self._said_at = now
            return True
        return False

    def succeeded(self, now: float | None = None) -> float | None:
        """An attempt went through: returns how long the outage lasted (None: there was none)."""
        now = time.monotonic() if now is None else now
        since, self.since = self.since, None
        self.failures = 0
        self.wait = self.first
        self.retry_at = 0.0
        self._said_at = -float("inf")
        return None if since is None else now - since
