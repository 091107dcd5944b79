"""Work on the next batches while the caller handles this one: `ahead(items, fn)` yields
`fn(item)` for each item in order, computed by one background thread up to `depth` items ahead.

The compiled decoder releases the GIL while it reads a batch, so a replay decodes batch k+1 on
the second core while the window summaries take in batch k; results come back in the input
order, exceptions at the item that raised them, so nothing about the output changes.

>>> list(ahead(range(5), lambda x: x * x))
[0, 1, 4, 9, 16]
>>> next(ahead([1, 0], lambda x: 1 // x))
1
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


def ahead(items: Iterable[T], fn: Callable[[T], U], depth: int = 2) -> Iterator[U]:
    """`map(fn, items)`, with up to `depth` calls running ahead in a background thread."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
    pending: deque[Future[U]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
