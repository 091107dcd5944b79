"""`python -m monitor.service.worker`, with time marks on its start (bench/startup.py runs it).

Each mark is one line on stderr, `[startup] <unix time> <what>`, written when a step of the
start begins and ends: the imports, the profiles, the warm-ups, Faust's start up to its "Ready",
the topics, the producer, the checkpoint readers, each consumer's start and group join, each
checkpoint load, and the first fetch that returns records of the predictions topic. Nothing of
the worker is changed but these wrappers; a step this drift-monitor does not have (another
checkout, bench/startup.py --baseline-code) is not marked.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
import time
from collections.abc import Callable
from typing import Any

PARTITIONS = int(os.environ.get("STARTUP_PARTITIONS", "4"))  # of the predictions topic

def mark(what: str) -> None:
    os.write(2, f"[startup] {time.time():.6f} {what}\n".encode())


mark("interpreter up")
import monitor.service.worker as worker  # noqa: E402

mark("imports done")


def wrap(path: str, label: Callable[..., str] | None = None, *, once: bool = False) -> None:
    """Mark the start and the end of `module:Class.method` (or `module:function`)."""
    module_name, _, qualname = path.partition(":")
    try:
        owner: Any = importlib.import_module(module_name)
        *parents, name = qualname.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        fn = getattr(owner, name)
    except (ImportError, AttributeError):
        return
    done: list[bool] = []

    def what(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        if once and done:
            return None
        done.append(True)
        return label(*args, **kwargs) if label else qualname

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            step = what(args, kwargs)
            if step:
                mark(f"{step} >")
            try:
                return await fn(*args, **kwargs)
            finally:
                if step:
                    mark(f"{step} <")
        setattr(owner, name, timed_async)
    else:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            step = what(args, kwargs)
            if step:
                mark(f"{step} >")
            try:
                return fn(*args, **kwargs)
            finally:
                if step:
                    mark(f"{step} <")
        setattr(owner, name, timed)


def first_records() -> None:
    """Mark the first `getmany` that returns records of the predictions topic, and the first
    that returns records of each of its partitions (the last of these: every partition is
    being read)."""
    from aiokafka import AIOKafkaConsumer

    topic = os.environ["DRIFT_MONITOR_PREDICTIONS_TOPIC"]
    getmany = AIOKafkaConsumer.getmany
    seen: set[int] = set()

    @functools.wraps(getmany)
    async def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = await getmany(self, *args, **kwargs)
        fresh = sorted(tp.partition for tp, records in out.items()
                       if tp.topic == topic and len(records) and tp.partition not in seen)
        if fresh and not seen:
            mark("first fetch with records <")
        for partition in fresh:
            seen.add(partition)
            mark(f"records of partition {partition} <")
        if fresh and len(seen) == PARTITIONS:
            mark("every partition fetched <")
        return out

    AIOKafkaConsumer.getmany = timed  # type: ignore[method-assign]


def client(consumer: Any, *args: Any, **kwargs: Any) -> str:
    """A consumer's role: a stage's group, or a checkpoint reader (no group)."""
    group = consumer._group_id
    if group is None:
        return f"consumer start: reader {consumer._client._client_id.rsplit('-', 1)[-1]}"
    return f"consumer start+join: {'stage two' if group.endswith('.windows') else 'stage one'}"


wrap("monitor.service.worker:DriftWorker.__init__", lambda *a, **k: "DriftWorker()")
wrap("monitor.profile.store:ProfileStore.__init__", lambda *a, **k: "profiles load")
wrap("monitor.service.worker:scipy_stats.stats", lambda: "scipy_stats.stats()", once=True)
wrap("monitor.service.worker:scipy_stats.warm_up", lambda: "scipy_stats.warm_up()")
wrap("monitor.service.worker:language.warm_up", lambda: "language.warm_up()")
wrap("monitor.profile.language:_identifier", lambda: "language model load", once=True)
wrap("monitor.service.worker:gc.freeze", lambda: "gc.freeze()")
wrap("faust:Worker.execute_from_commandline", lambda *a: "faust worker")
wrap("faust.worker:Worker._on_startup_end_spinner", lambda *a: "faust Ready")
wrap("monitor.service.worker:DriftWorker._run", lambda *a: "worker task")
wrap("monitor.service.worker:DriftWorker._ensure_topics", lambda *a: "topics")
wrap("monitor.service.outlet:Outlet.start", lambda *a: "producer start")
wrap("monitor.service.worker:DriftWorker._reader", lambda s, role: f"state reader {role}")
wrap("monitor.service.state_store:StateStore.open",
     lambda store: f"first reader {store.topic.rsplit('-', 1)[-1]}")
wrap("monitor.service.worker:DriftWorker._freeze_start", lambda *a: "warm-ups joined, gc.freeze")
wrap("aiokafka:AIOKafkaConsumer.start", client)
wrap("monitor.service.partitions:Partitions.on_partitions_assigned",
     lambda runner, assigned: f"{runner.name} assigned {len(assigned)} partitions")
wrap("monitor.service.state_store:StateStore.load",
     lambda store, partition, *a, **k: f"load {store.topic.rsplit('-', 1)[-1]}[{partition}]")


def offsets(kind: str) -> Callable[..., str]:
    def label(consumer: Any, partitions: list[Any]) -> str:
        who = client(consumer).split(": ", 1)[1]
        return f"{kind} {who} {sorted(tp.partition for tp in partitions)}"
    return label


wrap("aiokafka:AIOKafkaConsumer.beginning_offsets", offsets("beginning_offsets"))
wrap("aiokafka:AIOKafkaConsumer.end_offsets", offsets("end_offsets"))
wrap("monitor.service.state_store:StateStore._newest_header",
     lambda store, *a: "newest header {}[{}]".format(  # (reader,) tp, begin, end, deadline
         store.topic.rsplit("-", 1)[-1], next(x for x in a if hasattr(x, "partition")).partition))
first_records()

if __name__ == "__main__":
    sys.exit(worker.main())
