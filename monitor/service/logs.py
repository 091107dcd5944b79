"""Logs that stay readable during an outage: the Kafka client libraries log every failed
connection attempt (about a thousand lines a second while a broker is down); each kind of their
messages is let through at most once per `RepeatLimit.every` seconds, with how many were held
back since.

>>> import logging
>>> limit = RepeatLimit(every=30.0)
>>> def record(msg):
...     return logging.LogRecord("aiokafka", logging.ERROR, "", 0, msg, (1,), None)
>>> [limit.filter(record("Unable connect to node %s"), now=t) for t in (0.0, 1.0, 2.0)]
[True, False, False]
>>> r = record("Unable connect to node %s")
>>> limit.filter(r, now=31.0), r.getMessage()
(True, 'Unable connect to node 1 (2 more like this in the last 31 s)')
"""

from __future__ import annotations

import logging
import time

NOISY = ("aiokafka", "kafka")  # logger names (and their children) whose repeats are limited


class RepeatLimit(logging.Filter):
    def __init__(self, every: float = 30.0) -> None:
        super().__init__()
        self.every = every
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # -> (last passed, held)

    def filter(self, record: logging.LogRecord, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        key = (record.name, str(record.msg))
        last, held = self._seen.get(key, (None, 0))
        if last is not None and now - last < self.every:
            self._seen[key] = (last, held + 1)
            return False
        self._seen[key] = (now, 0)
        if held and isinstance(record.msg, str):
            record.msg = f"{record.msg} ({held} more like this in the last {now - last:.0f} s)"
        return True


def limit_repeats(every: float = 30.0) -> RepeatLimit:
    """Attach one `RepeatLimit` to every logger of the Kafka client libraries (a logger's
    filters do not apply to its children, so each gets it)."""
    import aiokafka  # noqa: F401  (its modules create their loggers on import)

    limit = RepeatLimit(every)
    names = [name for name in logging.Logger.manager.loggerDict
             if name.split(".")[0] in NOISY]
    for name in names + list(NOISY):
        logging.getLogger(name).addFilter(limit)
    return limit
