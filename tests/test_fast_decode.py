"""The fast decode path (msgspec structs from the profiles' schemas) against the per-record
reference path: on random and adversarial batches (nulls, NaN, wrong types, unicode, missing and
extra keys, arrays, duplicate keys, broken bytes) both give the same groups, typed columns,
feature names and invalid records, and windows updated from either are identical bit for bit."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.ingest import fast_decode
from monitor.ingest.columns import NumericColumn, TextColumn
from monitor.ingest.fast_decode import FastDecoder
from monitor.ingest.records import parse_messages
from monitor.profile.model import Profile
from monitor.profile.store import schemas
from monitor.summaries.text import measure_texts
from monitor.summaries.window import WindowSummary

LATEST = 1.8e9
NAMES = ["age", "income_z", "tenure", "state", "plan", "comment", "extra", "ünï", "prediction"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e3, 1e3), st.integers(-(2**70), 2**70), st.integers(-5, 5),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**400]),
    st.text(max_size=6), st.sampled_from(["CA", "NY", "basic", "plus", "", "3", "\ud800x"]),
    st.just("Q" * 300))
VALUES = st.one_of(SCALARS, st.lists(st.integers(0, 3), max_size=2),
                   st.dictionaries(st.sampled_from(["a", "p"]), st.integers(0, 2), max_size=2))
TS = st.one_of(st.floats(1.69e9, 1.7e9), st.integers(1_690_000_000, 1_700_000_000),
               st.sampled_from(["2023-11-14T22:13:20Z", "2023-11-14T22:13:20.5+01:00", "soon",
                                "1700000000", 1e12, -1e13, True, None, float("nan"),
                                2**64, 10**400]))


@st.composite
def record(draw: Any) -> Any:
    rec: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        rec["model"] = draw(st.sampled_from(["churn", "churn", "churn", "other", "", 7, "m" * 201]))
    if draw(st.integers(0, 9)):
        rec["version"] = draw(st.sampled_from(["3", "3", 3, 3.0, "4", "", True, None, 10**400,
                                               "v" * 201]))
    if draw(st.integers(0, 9)):
        rec["ts"] = draw(TS)
    if draw(st.integers(0, 9)):
        rec["features"] = draw(st.one_of(
            st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=7),
            st.dictionaries(st.sampled_from(NAMES), SCALARS, max_size=7),
            st.sampled_from([None, [], "x", 1])))
    if draw(st.booleans()):
        rec["prediction"] = draw(st.one_of(SCALARS, st.dictionaries(
            st.sampled_from(["p", "q"]), SCALARS, max_size=2), st.just([0.1])))
    if draw(st.booleans()):
        rec["id"] = draw(st.text(max_size=4))
    keys = draw(st.permutations(list(rec)))
    return {k: rec[k] for k in keys} if draw(st.integers(0, 5)) else draw(
        st.sampled_from([[], "x", 3, None]))


def _encode(obj: Any, style: int) -> bytes:
    try:
        if style == 0:
            return orjson.dumps(obj)
        return json.dumps(obj, ensure_ascii=style == 1).encode("utf-8", "surrogatepass")
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj).encode("utf-8", "surrogatepass")


@st.composite
def message(draw: Any) -> bytes:
    kind = draw(st.integers(0, 12))
    style = draw(st.integers(0, 2))
    if kind <= 8:
        return _encode(draw(record()), style)
    if kind <= 10:
        return _encode(draw(st.lists(record(), max_size=4)), style)
    return draw(st.sampled_from([
        b'{"oops', b"\xff\xfe", b"", b"[1,2", b'{"model":"churn","version":"3","ts":1.69e9,'
        b'"features":{"age":1,"age":"x"}}',
        b'{"model":"other","version":"3","ts":1.69e9,"features":{},"model":"churn"}',
        b'{"model":"churn","version":"3","ts":1.69e9,"features":{"age":NaN,"state":"CA"}}',
        b'{"model":"churn","version":"3","ts":1.69e9,"features":{"age":1e999}}',
        b'{"model":"churn","version":"3","ts":1.69e9,"ts":"2023-11-14T22:13:20Z",'
        b'"features":{"comment":"a\\u0000b \\u00e9t\\u00e9"}}',
        b'\xef\xbb\xbf{"model":"churn","version":"3","ts":1.69e9,"features":{}}',
        b'{"model":"churn","version":"3","ts":1.69e9,"features":{"age":18446744073709551615}}',
    ]))


def _columns_equal(a: Any, b: Any) -> bool:
    if isinstance(a, TextColumn) or isinstance(b, TextColumn):
        a, b = (c if isinstance(c, TextColumn) else measure_texts(c) for c in (a, b))
        return (a.lengths.tolist() == b.lengths.tolist() and a.tokens.tolist() == b.tokens.tolist()
                and a.hashes.tolist() == b.hashes.tolist() and list(a.texts) == list(b.texts)
                and np.array_equal(a.null, b.null) and np.array_equal(a.mismatch, b.mismatch))
    if isinstance(a, NumericColumn):
        return (np.array_equal(a.values, b.values, equal_nan=True)
                and np.array_equal(np.signbit(a.values), np.signbit(b.values))
                and np.array_equal(a.null, b.null) and np.array_equal(a.mismatch, b.mismatch))
    return (a.values == b.values and np.array_equal(a.null, b.null)
            and np.array_equal(a.mismatch, b.mismatch))


def _decoder(profile: Profile, native: bool = False) -> FastDecoder:
    other = Profile("other", "3", {k: v for k, v in profile.features.items()
                                   if k in ("age", "state")})
    return FastDecoder(schemas([profile, other]), native=native)


@pytest.mark.parametrize("native", [False, True], ids=["msgspec", "native"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message(), max_size=12), st.sampled_from([500, 1, 3]))
def test_fast_path_reads_every_batch_as_the_reference_does(profile: Profile, native: bool,
                                                           messages: list[bytes],
                                                           chunk: int) -> None:
    """Both fast paths (the msgspec decoder, read in chunks of the batch that are joined, and
    the compiled one) against the reference."""
    default, fast_decode.CHUNK = fast_decode.CHUNK, chunk  # chunks of the batch, joined
    try:
        fast = parse_messages(messages, _decoder(profile, native), latest=LATEST)
    finally:
        fast_decode.CHUNK = default
    slow = parse_messages(messages, latest=LATEST)
    assert list(fast.groups) == list(slow.groups)
    assert [(b.reason, b.raw, b.model, b.index) for b in fast.invalid] == \
        [(b.reason, b.raw, b.model, b.index) for b in slow.invalid]
    profiled = profile.features.keys()
    for key, group in fast.groups.items():
        ref = slow.groups[key]
        assert len(group) == len(ref)
        assert group.ts_array().tolist() == ref.ts_array().tolist()
        assert list(group.index) == list(ref.index)
        assert group.feature_tally(profiled) == ref.feature_tally(profiled)
        for name, feature in profile.features.items():
            assert _columns_equal(group.column_for(name, feature.kind),
                                  ref.column_for(name, feature.kind)), name
        if key == ("churn", "3"):
            a, b = WindowSummary(profile), WindowSummary(profile)
            a.update(group)
            b.update(ref)
            assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(),
                                                                          sort_keys=True)


@pytest.mark.parametrize("native", [False, True], ids=["msgspec", "native"])
def test_well_formed_traffic_takes_the_fast_path(profile: Profile, native: bool) -> None:
    """Synthetic records of a profiled model: every message is read by the fast path, a record
    of a model without a profile is left to the reference, and so is a message with a string in
    a numeric feature (the compiled decoder reads that one as a mismatch); the groups hold all
    of them."""
    from monitor.demo.synthetic import generate_columns, records

    rng = np.random.default_rng(5)
    recs = records(generate_columns(50, rng), model="churn", version="3",
                   ts=1.69e9 + np.arange(50.0))
    messages = [orjson.dumps(r) for r in recs]
    decoder = _decoder(profile, native)
    assert decoder.native is native
    groups, refused = decoder.decode(messages, LATEST)
    assert refused == [] and len(groups[("churn", "3")]) == 50
    odd = {**recs[0], "features": {**recs[0]["features"], "age": "forty"}}
    messages += [orjson.dumps({**recs[1], "model": "unknown"}), orjson.dumps(odd)]
    groups, refused = decoder.decode(messages, LATEST)
    assert refused == ([50] if native else [50, 51])  # the compiled one reads a mismatch
    batch = parse_messages(messages, decoder, latest=LATEST)
    assert len(batch.groups[("churn", "3")]) == 51 and len(batch.groups[("unknown", "3")]) == 1
    age = batch.groups[("churn", "3")].column_for("age", profile.features["age"].kind)
    assert age.mismatch.sum() == 1 and not math.isnan(age.values[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=40),
       st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=300),
       st.booleans())
def test_compiled_histogram_bins_as_numpy_does(edges: list[float], values: list[float],
                                               on_edges: bool) -> None:
    """The compiled histogram update against numpy's searchsorted path: the same counts and
    tail sums, values on edges (repeated ones too) and at the training max included."""
    from monitor.ingest import native_decode
    from monitor.summaries import exact
    from monitor.summaries.numeric import NumericSummary

    assert native_decode.available()
    e = np.sort(np.array(edges))
    v = np.array(values + (edges if on_edges else []))
    z = exact.quantise(v, 0.0, exact.quantum_for(1e6))
    results = []
    for native in ("1", "0"):
        s = NumericSummary(e, center=0.0)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(native_decode.ENV, native)
            s._histogram_update(v, z)
        results.append((s.histogram.tolist(), s.below_s1, s.above_s1))
    assert results[0] == results[1]
    assert sum(results[0][0]) == len(v)
