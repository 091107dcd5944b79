"""Summaries: any split of the records, merged in any order, equals the summary of the whole,
bit for bit (`to_dict()`); the exact moments match numpy far below what a check can see."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.columns import label_column, numeric_column
from monitor.summaries import CategoricalSummary, NumericSummary, TextSummary, summary_from_dict
from monitor.summaries.bounds import MAX_VALUE_CHARS
from monitor.summaries.exact import frame_for

EDGES = np.array([-10.0, -1.0, 0.0, 0.5, 1.0, 10.0])
numbers = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False),
                    st.floats(min_value=-20, max_value=20),
                    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
                    st.integers(-1000, 1000), st.just("oops"))


@st.composite
def splits(draw: Any, values: Any) -> tuple[list, list[list]]:
    """A list and a random split of it into 2 to 5 parts, in a random order."""
    items = draw(values)
    parts = draw(st.integers(2, 5))
    cuts = sorted(draw(st.lists(st.integers(0, len(items)), min_size=parts - 1,
                                max_size=parts - 1)))
    pieces = [items[a:b] for a, b in zip([0, *cuts], [*cuts, len(items)], strict=True)]
    return items, draw(st.permutations(pieces))


def _merged(summaries: list) -> Any:
    out = summaries[0].copy()
    for s in summaries[1:]:
        out += s
    return out


def _numeric(values: list, batch: int = 7) -> NumericSummary:
    s = NumericSummary(EDGES, center=0.25, quantum=2.0 ** -20)
    for i in range(0, len(values), batch):  # batching must not matter either
        s.update(numeric_column(values[i:i + batch]))
    return s


@settings(max_examples=200, deadline=None)
@given(splits(st.lists(numbers, max_size=80)), st.integers(1, 9))
def test_numeric_any_split_merges_to_the_whole_bit_for_bit(data: tuple, batch: int) -> None:
    values, parts = data
    whole = _numeric(values)
    merged = _merged([_numeric(p, batch) for p in parts])
    assert json_bytes(merged.to_dict()) == json_bytes(whole.to_dict())  # -0.0 == 0.0 in dicts
    assert merged.records == len(values)


def test_negative_zero_cannot_make_the_order_matter() -> None:
    a, b = _numeric([0.0, 1.0]), _numeric([-0.0, 2.0])
    assert json_bytes((a.copy() + b).to_dict()) == json_bytes((b.copy() + a).to_dict())
    assert json_bytes(_numeric([-0.0]).to_dict()) == json_bytes(_numeric([0.0]).to_dict())


def json_bytes(data: dict) -> bytes:
    import json

    return json.dumps(data, sort_keys=True).encode()


def test_float_sums_would_differ_by_grouping_but_exact_moments_do_not(
        rng: np.random.Generator) -> None:
    """The reason for exact sums: Chan's float merge of 4 parts differs from 1 part in the last
    bits for this data; the quantised sums are identical."""
    x = rng.normal(1e4, 3.0, 4000) * rng.choice([1.0, 1e-3], 4000)
    float_whole = sum(x.tolist())
    float_parts = sum(sum(p.tolist()) for p in np.array_split(x, 4)[::-1])
    assert float_whole != float_parts  # float addition is not associative
    c, q = frame_for(x[:500])
    whole = NumericSummary(EDGES, center=c, quantum=q)
    whole.update(numeric_column(x))
    parts = [NumericSummary(EDGES, center=c, quantum=q) for _ in range(4)]
    for s, p in zip(parts, np.array_split(x, 4), strict=True):
        s.update(numeric_column(p))
    assert _merged(parts[::-1]).to_dict() == whole.to_dict()


def test_exact_moments_match_the_exact_mean_and_variance(rng: np.random.Generator) -> None:
    """Precision of the quantised moments, against exact rational arithmetic: the mean is within
    2**-24 training std, the variance within 2e-7 relative (checks threshold shifts of 1e-3 std
    and more)."""
    for loc, scale in ((0.0, 1.0), (1e6, 3.0), (-5e-3, 1e-4), (40.0, 10.0)):
        train = rng.normal(loc, scale, 2000)
        c, q = frame_for(train)
        x = rng.normal(loc + scale, 2 * scale, 10_000)  # a drifted window
        s = NumericSummary(EDGES, center=c, quantum=q)
        s.update(numeric_column(x))
        exact_mean = sum(map(Fraction, x)) / len(x)
        exact_var = sum((Fraction(v) - exact_mean) ** 2 for v in x) / (len(x) - 1)
        assert abs(Fraction(s.mean) - exact_mean) <= Fraction(scale) * 2 ** -24
        assert abs(Fraction(s.variance) / exact_var - 1) < 2e-7
        assert s.mean == pytest.approx(x.mean(), rel=1e-9, abs=scale * 1e-7)
        assert s.std == pytest.approx(x.std(ddof=1), rel=1e-7)


def test_numeric_matches_numpy(rng: np.random.Generator) -> None:
    x = rng.normal(0, 3, 10_000)
    s = NumericSummary(EDGES, center=0.0, quantum=2.0 ** -22)
    for part in np.array_split(x, 7):
        s.update(numeric_column(part))
    assert s.mean == pytest.approx(x.mean(), abs=1e-8)
    assert s.variance == pytest.approx(x.var(ddof=1), rel=1e-9)
    assert (s.min, s.max) == (x.min(), x.max())
    inner = np.histogram(x[(x >= EDGES[0]) & (x <= EDGES[-1])], bins=EDGES)[0]
    assert s.histogram[1:-1].tolist() == inner.tolist()
    assert s.below == (x < EDGES[0]).sum() and s.above == (x > EDGES[-1]).sum()
    # each value is within a half quantum (2**-23) of its quantised value
    assert s.below_sum == pytest.approx(x[x < EDGES[0]].sum(), abs=s.below * 2.0 ** -23)
    assert s.above_sum == pytest.approx(x[x > EDGES[-1]].sum(), abs=s.above * 2.0 ** -23)


def test_values_far_outside_the_frame_are_clipped_in_the_moments_only() -> None:
    s = NumericSummary(EDGES, center=0.0, quantum=2.0 ** -24)  # clips beyond 65,536
    s.update(numeric_column([1.0, 1e300, -1e308]))
    assert (s.count, s.clipped, s.max, s.min, s.above, s.below) == (3, 2, 1e300, -1e308, 1, 1)
    assert np.isfinite(s.mean) and np.isfinite(s.variance)


def test_numeric_counts_nulls_nonfinite_and_mismatches_apart() -> None:
    s = _numeric([1.0, None, float("nan"), float("inf"), "41", True, 2])
    assert (s.records, s.count, s.nulls, s.nonfinite, s.mismatches) == (7, 2, 1, 2, 2)


def test_numeric_round_trips_through_json(rng: np.random.Generator) -> None:
    import json

    s = _numeric(rng.normal(size=100).tolist() + [None, 1e12])
    again = summary_from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s and again.s2 == s.s2 > 2 ** 64  # big integers survive as strings


labels = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "0"]),
                   st.text(max_size=5), st.integers(0, 30), st.just("L" * 300))


@settings(max_examples=200, deadline=None)
@given(splits(st.lists(labels, max_size=80)), st.booleans(), st.integers(0, 6))
def test_categorical_any_split_merges_to_the_whole(data: tuple, complete: bool,
                                                   limit: int) -> None:
    def summarise(part: list) -> CategoricalSummary:
        s = CategoricalSummary(["a", "b", "c", "0"], complete=complete, unseen_limit=limit)
        for i in range(0, len(part), 5):
            s.update(label_column(part[i:i + 5]))
        return s

    values, parts = data
    whole = summarise(values)
    assert _merged([summarise(p) for p in parts]).to_dict() == whole.to_dict()
    assert len(whole.unseen) <= limit


def test_categorical_unseen_values_are_bounded_in_count_and_length() -> None:
    s = CategoricalSummary(["a"], complete=True, unseen_limit=50)
    s.update(label_column([f"v{i}" + "x" * 32_768 for i in range(1000)] + ["a"]))
    assert len(s.unseen) == 50 and s.unseen_overflow == 950 and s.clipped == 1000
    assert s.unseen_total == 1000 and s.counts.tolist() == [1]
    assert all(len(v) <= MAX_VALUE_CHARS + 20 and v.endswith(" chars)") for v in s.unseen)
    import json
    assert len(json.dumps(s.to_dict())) < 15_000


def test_categorical_vocabulary_values_are_clipped_like_window_values() -> None:
    long_value = "y" * 5000
    s = CategoricalSummary([long_value, "b"], complete=True)
    s.update(label_column([long_value, long_value, "b"]))
    assert s.counts.tolist() == [2, 1] and s.unseen_total == 0
    assert len(s.vocabulary[0]) < MAX_VALUE_CHARS + 20


def test_categorical_truncated_vocabulary_never_calls_values_novel() -> None:
    s = CategoricalSummary(["a"], complete=False)
    s.update(label_column(["a", "zz", "zz"]))
    assert s.other == 2 and s.unseen_total == 0


texts = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["same", "same text"]),
                  st.integers())
stamped = st.tuples(texts, st.sampled_from([0.0, 1.5, 1.7e9, 1.7e9 + 0.001]))


@settings(max_examples=200, deadline=None)
@given(splits(st.lists(stamped, max_size=60)), st.integers(0, 12))
def test_text_any_split_merges_to_the_whole(data: tuple, sample_size: int) -> None:
    def summarise(part: list) -> TextSummary:
        s = TextSummary([0, 5, 20], [0, 2, 8], sample_size=sample_size)
        for i in range(0, len(part), 4):
            chunk = part[i:i + 4]
            s.update(label_column([t for t, _ in chunk], numbers_as_labels=False),
                     np.array([ts for _, ts in chunk]))
        return s

    values, parts = data
    whole = summarise(values)
    assert _merged([summarise(p) for p in parts]).to_dict() == whole.to_dict()
    present = [t for t, _ in values if isinstance(t, str)]
    assert len(whole.sample) == min(sample_size, len(present))
    assert all(t in present for t in whole.sample)


def test_text_sample_is_bounded_and_uniform_over_records() -> None:
    s = TextSummary([0, 10], [0, 5], sample_size=200)
    for start in range(0, 20_000, 1000):
        ids = np.arange(start, start + 1000)
        s.update(label_column([str(i) for i in ids]), ids.astype(float))
    picked = np.array([int(t) for t in s.sample])
    assert len(picked) == 200
    # A uniform sample of 0..19999: its mean is near 10,000 (sd of the mean ~ 408).
    assert abs(picked.mean() - 10_000) < 2_000


def test_text_sample_keeps_a_frequent_text_at_its_share() -> None:
    """Keys mix the text with the record's timestamp: a text that is 60% of the records is
    about 60% of the sample (a key of the text alone would take all or none of its copies)."""
    rng = np.random.default_rng(5)
    s = TextSummary([0, 10], [0, 5], sample_size=500)
    for batch in range(10):
        texts = ["thanks" if u < 0.6 else f"review {batch}-{i}"
                 for i, u in enumerate(rng.random(1000))]
        s.update(label_column(texts), 1.7e9 + batch + np.arange(1000) / 1000)
    share = s.sample.count("thanks") / len(s.sample)
    assert 0.5 < share < 0.7


def test_text_sample_has_no_random_state_to_lose() -> None:
    """The same records give the same sample, restart (round trip) or not."""
    column = label_column([f"text {i}" for i in range(300)])
    ts = np.arange(300, dtype=float)
    a = TextSummary([0, 10], [0, 5], sample_size=20)
    a.update(label_column(column.values[:100]), ts[:100])
    b = TextSummary.from_dict(a.to_dict())
    for s in (a, b):
        s.update(label_column(column.values[100:]), ts[100:])
    assert a.to_dict() == b.to_dict()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(-(2 ** 40), 2 ** 40), min_size=3, max_size=3),
                min_size=1, max_size=600), st.integers(0, 40))
def test_exact_sums_equal_python_integer_sums(rows: list, shift: int) -> None:
    """Both paths of `exact.sums` (int64 squares in blocks, or 20-bit halves) are exact."""
    from monitor.summaries.exact import sums

    z = np.array(rows, dtype=np.int64).T >> shift  # 3 rows of quanta, magnitudes up to 2**40
    s1, s2 = sums(z)
    assert s1 == [sum(int(v) for v in r) for r in z]
    assert s2 == [sum(int(v) * int(v) for v in r) for r in z]
