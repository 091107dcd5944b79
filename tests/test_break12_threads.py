"""Stage one's parse-ahead under real threads: batches prepared in one thread (as the runner's
`drift-parse` thread does) while the previous ones are folded in another and profiles are
reloaded from a third (files rewritten with the same content: new profile objects, a new
decoder each time, the same figures). Whatever the interleaving, the outcome is that of folding
the records themselves, one after another."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.profile.model import Profile
from monitor.profile.store import ProfileStore
from monitor.service.stage_one import FoldProcessor
from monitor.stream.folder import PartitionFolder
from tests.test_processors import CONFIG, T0, kafka_records, minute


def processor(directory: Path) -> FoldProcessor:
    folder = PartitionFolder(0, ProfileStore(directory), CONFIG)
    return FoldProcessor(0, folder, partials_partitions=2, route=lambda model: 1,
                         max_message_bytes=1000)


def outcome(p: FoldProcessor) -> tuple[Any, ...]:
    p.header_state()
    states = {key: p.model_state(key) for key in sorted(p.take_dirty())}
    return p.offset, p.stats(), states, [m.value for m in p.outbox()]


def test_prepared_in_one_thread_folded_in_another_while_profiles_reload(
        profile: Profile, tmp_path: Path) -> None:
    path = tmp_path / "churn-3.json"
    profile.save(path)
    rng = np.random.default_rng(12)
    good = [m for w in range(4) for m in minute(rng, w, 400)]
    bad = [b"{oops", orjson.dumps(dict(json.loads(good[0]), pad="x" * 1200)),
           b"[" + b",".join(good[:2]) + b",1]"]
    messages = [m for i, g in enumerate(good) for m in ([g, bad[i % 3]] if i % 97 == 0 else [g])]
    records = kafka_records(messages)
    # Batches of 7 that overlap now and then (a redelivery after a seek back).
    batches, start = [], 0
    while start < len(records):
        batches.append(records[start:start + 7])
        start += 7 if start % 11 else 4

    plain = processor(tmp_path)
    letters_plain = []
    for i, batch in enumerate(batches):
        step = plain.process(batch, T0 + 30 + i * 0.1)
        letters_plain += [(d.record.offset, d.reason) for d in step.dead_letters]
    expected = outcome(plain), letters_plain

    ahead = processor(tmp_path)
    store = ahead.folder.profiles
    done = threading.Event()

    def reload() -> None:  # the event loop's refresh, as often as it can
        stamp = 0
        while not done.is_set():
            stamp += 1
            os.utime(path, ns=(stamp * 1000, stamp * 1000))
            store.refresh()

    again = []  # preparations done again at the fold (the one prepared ahead no longer fit)
    prepare = ahead.prepare

    def counted(batch: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            again.append(batch)
        return prepare(batch)

    ahead.prepare = counted  # type: ignore[method-assign]
    reloader = threading.Thread(target=reload)
    reloader.start()
    letters = []
    try:
        with ThreadPoolExecutor(1) as parse:
            futures = [parse.submit(prepare, batch) for batch in batches]
            for i, future in enumerate(futures):
                step = ahead.process(future.result(), T0 + 30 + i * 0.1)
                letters += [(d.record.offset, d.reason) for d in step.dead_letters]
    finally:
        done.set()
        reloader.join()
    assert (outcome(ahead), letters) == expected
    assert again  # the interleavings this test is about did happen
    assert expected[0][1]["records_processed"] == len(good) + 2 * sum(
        1 for i in range(len(good)) if i % 97 == 0 and i % 3 == 2)
