"""Checkpoints with many models, in process (no broker): what stage one writes per batch when a
partition holds M models (16 features + prediction each) and only a few are active.

1. One batch with records of all M models: every model is held with an open window (the full
   checkpoint: every model record is written once).
2. BATCHES batches of BATCH records of only ACTIVE models, M held: per batch, the models
   written (changed ones plus `state_store.REFRESH_PER_SAVE` unchanged ones), the time to build
   and encode them as the worker does (`model_state` + `state_store.encode`), and the bytes.
3. The same batches in a partition that holds only the ACTIVE models: the baseline, measured in
   the same run. Goal: the cost per batch does not depend on the idle models.
Also: the largest model record (bounded by the window summary's bounds) and this process's peak
RSS with M models held.

Run: .venv/bin/python bench/many_models.py [M]  (default 1000). Writes
bench/results/many_models.json.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pipeline_kit import base_profile

from monitor.demo.synthetic import generate_columns, records
from monitor.ingest.fast_decode import FastDecoder
from monitor.ingest.records import parse_messages
from monitor.profile.model import Profile
from monitor.profile.store import schemas
from monitor.service.state_store import REFRESH_PER_SAVE, encode
from monitor.stream.config import EngineConfig
from monitor.stream.folder import PartitionFolder

RESULTS = Path(__file__).parent / "results" / "many_models.json"
ACTIVE, BATCHES, BATCH = 10, 5, 5_000
T0 = 1.7e9


def messages(models: list[str], n: int, t: float, rng: np.random.Generator) -> list[bytes]:
    per = max(1, n // len(models))
    out: list[bytes] = []
    for model in models:
        ts = t + np.sort(rng.uniform(0, 50, per))  # inside one 60 s window
        out += [orjson.dumps(r) for r in records(generate_columns(per, rng), model=model,
                                                    version="1", ts=ts)]
    return out


def checkpoint(folder: PartitionFolder, written: dict[tuple[str, str], int], step: int
               ) -> dict[str, Any]:
    """What the worker's checkpoint writes after a batch: changed models, the REFRESH_PER_SAVE
    longest-unwritten ones, the header; built and encoded (no broker)."""
    t0 = time.process_time()
    dirty = folder.take_dirty()
    stale = sorted((k for k in written if k not in dirty), key=written.__getitem__)
    keys = [*dirty, *stale[:REFRESH_PER_SAVE]]
    values = [encode({"format": 2, "offset": folder.offset, "state": folder.model_state(k)})
              for k in keys]
    header = encode({"format": 2, "offset": folder.offset, "state": folder.header_state()})
    seconds = time.process_time() - t0
    for k in keys:
        written[k] = step
    return {"models_written": len(keys), "ms": round(seconds * 1000, 2),
            "bytes": sum(map(len, values)) + len(header),
            "largest_model_record": max(map(len, values), default=0)}


def run(profiles: dict[tuple[str, str], Profile], held: list[str], active: list[str],
        seed: int) -> tuple[dict[str, Any], list[dict[str, Any]], PartitionFolder]:
    folder = PartitionFolder(0, lambda m, v: profiles.get((m, v)),
                             EngineConfig(window_seconds=60.0, min_records=20))
    decoder = FastDecoder(schemas(profiles.values()))
    rng = np.random.default_rng(seed)
    written: dict[tuple[str, str], int] = {}
    folder.fold(parse_messages(messages(held, max(len(held) * 20, BATCH), T0, rng), decoder),
                offsets=None)
    first = checkpoint(folder, written, 0)
    per_batch = []
    for step in range(1, BATCHES + 1):
        folder.fold(parse_messages(messages(active, BATCH, T0, rng), decoder), offsets=None)
        per_batch.append(checkpoint(folder, written, step))
    return first, per_batch, folder


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    base = base_profile()
    names = [f"model{i:04d}" for i in range(count)]
    profiles = {(m, "1"): dataclasses.replace(base, model=m, profile_id=f"bench-{m}")
                for m in names}
    active = names[:ACTIVE]
    first, batches, folder = run(profiles, names, active, seed=1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    held = len(folder.models)
    del folder
    _, baseline, _ = run({k: profiles[k] for k in [(m, "1") for m in active]}, active, active,
                         seed=1)
    ms = [b["ms"] for b in batches]
    base_ms = [b["ms"] for b in baseline]
    result = {
        "models_held": held, "features_per_model": len(base.features), "active_models": ACTIVE,
        "batch_records": BATCH, "first_checkpoint_all_models": first,
        "per_batch_with_all_held": batches, "per_batch_with_only_active_held": baseline,
        "median_ms_all_held": float(np.median(ms)), "median_ms_only_active": float(np.median(base_ms)),
        "ratio_all_held_over_only_active": round(float(np.median(ms) / np.median(base_ms)), 2),
        "peak_rss_mb": round(rss, 1),
        "timing": "CPU time (time.process_time) of model_state + state_store.encode per batch",
    }
    print(f"stage one, one partition, {held} models held x {len(base.features)} features, "
          f"batches of {BATCH:,} records of {ACTIVE} active models:")
    print(f"  first checkpoint (every model new): {first['models_written']} model records, "
          f"{first['bytes'] / 2**20:.1f} MB, {first['ms']:.0f} ms; largest model record "
          f"{first['largest_model_record'] / 1024:.1f} kB")
    for name, rows in (("all held", batches), ("only active held", baseline)):
        print(f"  per batch, {name:<17}: " + "; ".join(
            f"{b['models_written']} models {b['bytes'] / 1024:.0f} kB {b['ms']:.1f} ms"
            for b in rows))
    print(f"  median cost per batch: {result['median_ms_all_held']:.1f} ms with {held} held vs "
          f"{result['median_ms_only_active']:.1f} ms with {ACTIVE} held (ratio "
          f"{result['ratio_all_held_over_only_active']}); peak RSS {rss:.0f} MB")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
