"""`replay`: the streaming engine over a JSONL file of prediction logs, in arrival order."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from monitor.drift import scipy_stats
from monitor.errors import InputError, UsageError
from monitor.ingest.prefetch import ahead
from monitor.ingest.readers import check_readable, data_suffix, jsonl_batches
from monitor.ingest.records import parse_messages
from monitor.outputs.render import jsonable
from monitor.profile.language import warm_up
from monitor.profile.store import ProfileStore
from monitor.stream.alerts import Alert
from monitor.stream.engine import Engine, EngineConfig, Evaluated

BATCH_LINES = 5000
# A batch allocates hundreds of thousands of short-lived objects; with the default threshold
# (700) the collector runs every few hundred records and walks every object the imports made.
GC_THRESHOLD = 50_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect garbage less often while replaying: what the imports made is frozen (never
    walked again) and the youngest generation is collected every GC_THRESHOLD allocations."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(before[0], GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def open_engine(logs: str | Path, profiles: str | Path, *, window_seconds: float = 60.0,
                grace_seconds: float = 0.0, min_records: int = 200,
                overrides: dict[str, Any] | None = None) -> tuple[Path, Engine]:
    """Check the inputs of a replay and build its engine; one clear error if they are wrong."""
    path = check_readable(logs)
    if data_suffix(path) not in (".jsonl", ".ndjson", ".json", ".log"):
        raise InputError(f"replay reads JSONL prediction logs (optionally .gz, .bz2 or .zst), "
                         f"not {path.suffix!r} ({path})")
    store = ProfileStore(profiles)
    if len(store) == 0:
        raise UsageError(f"no loadable profile in {profiles}"
                         + (f": {next(iter(store.errors.values()))}" if store.errors else ""))
    scipy_stats.warm_up()  # the first window's evaluation needs it: imported while reading
    if store.has_text():
        warm_up()
    try:
        config = EngineConfig(window_seconds=window_seconds, grace_seconds=grace_seconds,
                              min_records=min_records, overrides=overrides or {})
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return path, Engine(store, config)


def replay_events(path: Path, engine: Engine,
                  invalid_reasons: dict[str, int] | None = None) -> Iterator[Evaluated | Alert]:
    """Everything the engine emits over the file, in order, ending with the flush."""
    store = engine.folder.profiles
    decoder = store.decoder() if isinstance(store, ProfileStore) else None
    with fewer_collections():
        for batch in ahead(jsonl_batches(path, BATCH_LINES),
                           lambda lines: parse_messages(lines, decoder)):
            if invalid_reasons is not None:
                for bad in batch.invalid:
                    key = bad.reason.split(":")[0]
                    invalid_reasons[key] = invalid_reasons.get(key, 0) + 1
            yield from engine.ingest(batch)
        yield from engine.flush()


def replay_file(logs: str | Path, profiles: str | Path, *, window_seconds: float = 60.0,
                grace_seconds: float = 0.0, min_records: int = 200,
                overrides: dict[str, Any] | None = None, reports_path: str | None = None,
                out: IO[str] | None = None) -> dict[str, Any]:
    """Run the engine over `logs`, write alerts as JSON lines to `out`; return a summary."""
    path, engine = open_engine(logs, profiles, window_seconds=window_seconds,
                               grace_seconds=grace_seconds, min_records=min_records,
                               overrides=overrides)
    reports = open(reports_path, "w", encoding="utf-8") if reports_path else None  # noqa: SIM115
    counts = {"alerts_firing": 0, "alerts_persistent": 0, "alerts_resolved": 0}
    invalid_reasons: dict[str, int] = {}
    try:
        for item in replay_events(path, engine, invalid_reasons):
            alerts = item.alerts if isinstance(item, Evaluated) else [item]
            if isinstance(item, Evaluated) and reports:
                reports.write(json.dumps(jsonable(item.report.to_dict())) + "\n")
            for alert in alerts:
                counts[f"alerts_{alert.status}"] += 1
                if out is not None:
                    out.write(json.dumps(jsonable(alert.to_dict())) + "\n")
    finally:
        if reports:
            reports.close()
    stats = engine.stats
    return {"records": stats.records, "invalid_records": stats.invalid,
            "late_records": stats.late, "no_profile_records": stats.no_profile,
            "windows": stats.windows, **counts, "invalid_reasons": invalid_reasons}
