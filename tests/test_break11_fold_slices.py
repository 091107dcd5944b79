"""Adversarial check of stage one fed `Fetched` batches: random mixes of good records, bad JSON,
tombstones, array messages (one bad element) and messages too large, cut into random
(overlapping, redelivered) batches and parsed in small slices, fold exactly as the same
`ConsumerRecord`s do: same offset, counters, dead letters (offset, key, reason, raw) and outbox.
"""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest
from test_processors import T0, fold_processor, kafka_records, minute
from test_raw_fetch import fetched_of

from monitor.profile.model import Profile
from monitor.service import stage_one


def mixed(rng: np.random.Generator) -> list[bytes]:
    good = minute(rng, 0, 300) + minute(rng, 1, 300)
    out: list[bytes] = []
    i = 0
    while i < len(good):
        roll = rng.random()
        if roll < 0.05:
            out.append(b"")
        elif roll < 0.1:
            out.append(b"{oops")
        elif roll < 0.14:
            out.append(json.dumps(dict(json.loads(good[i]), pad="p" * 1200)).encode())
        elif roll < 0.2:
            out.append(b"[" + b",".join([*good[i:i + 2], b'{"model": 1}']) + b"]")
            i += 2
        else:
            out.append(good[i])
            i += 1
    return out


@pytest.mark.parametrize("seed", range(6))
def test_fetched_batches_fold_as_consumer_records_whatever_the_cuts_and_slices(
        profile: Profile, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    messages = mixed(rng)
    monkeypatch.setattr(stage_one, "PARSE_SLICE_BYTES", int(rng.integers(300, 5000)))
    cuts = sorted({0, len(messages), *rng.integers(0, len(messages), 6).tolist()})
    batches = [(max(0, a - int(rng.integers(0, 20))), b) for a, b in pairwise(cuts)]
    outcomes = []
    for batch_of in (kafka_records, fetched_of):
        records = batch_of(messages, 5)
        p = fold_processor(profile)
        p.max_message_bytes = 1000
        letters = []
        for n, (a, b) in enumerate(batches):
            step = p.process(records[a:b], wall=T0 + 61 + n)
            letters += [(d.record.offset, d.record.key, d.reason, bytes(d.raw), d.size)
                        for d in step.dead_letters]
        p.header_state()
        outcomes.append((p.offset, p.stats(), letters, [m.value for m in p.outbox()]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == 5 + len(messages) - 1
    assert len(outcomes[0][2]) >= sum(m in (b"", b"{oops") for m in messages)


def test_a_fetched_batch_of_nothing_but_messages_too_large(profile: Profile) -> None:
    rng = np.random.default_rng(9)
    big = [json.dumps(dict(json.loads(m), pad="p" * 1200)).encode() for m in minute(rng, 0, 5)]
    outcomes = []
    for batch_of in (kafka_records, fetched_of):
        p = fold_processor(profile)
        p.max_message_bytes = 1000
        step = p.process(batch_of(big, 3), wall=T0 + 61)
        outcomes.append((p.offset, p.stats(), [(d.record.offset, d.size, len(d.raw))
                                               for d in step.dead_letters]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == 7 and len(outcomes[0][2]) == 5
