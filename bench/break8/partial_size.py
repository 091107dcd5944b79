"""How large is one model's partial window message (the partials topic, broker default limit
1 MB) as the number of features grows? `.venv/bin/python bench/break8/partial_size.py`"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from monitor.ingest.records import parse_messages
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.store import ProfileStore
from monitor.stream.config import EngineConfig
from monitor.stream.folder import PartitionFolder
from monitor.stream.messages import encode

RECORDS = int(__import__("os").environ.get("RECORDS", 500))
for n in [int(a) for a in sys.argv[1:]] or [10, 100, 400]:
    d = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(1)
    cols = [f"f{i}" for i in range(n)]
    data = rng.normal(size=(3000, n))
    (d / "t.csv").write_text(",".join(cols) + "\n" + "\n".join(
        ",".join(f"{v:.5f}" for v in row) for row in data))
    (d / "p").mkdir()
    build_profile(d / "t.csv", BuildOptions(model="m", version="1", window_size=200,
                                            calibration_windows=20, sample_rows=3000)
                  ).save(d / "p" / "m-1.json")
    store = ProfileStore(d / "p")
    folder = PartitionFolder(0, store, EngineConfig(window_seconds=10, grace_seconds=1,
                                                    min_records=50), sources=1, stream="s")
    msgs = [json.dumps({"model": "m", "version": "1", "ts": 1000.0 + i * 5.0 / RECORDS,
                        "features": dict(zip(cols, map(float, rng.normal(size=n)),
                                             strict=True))}).encode() for i in range(RECORDS)]
    folder.fold(parse_messages(msgs, store.decoder()), list(range(RECORDS)), 2000.0)
    folder.advance(1e9, caught_up=True)
    parts = folder.take_partials()
    sizes = [len(encode(p)) for p in parts] if parts else []
    print(f"{n} features: partial messages {sizes} bytes")
