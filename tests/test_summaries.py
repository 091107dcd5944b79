"""Summaries: merging two halves equals summarising the whole, and matches numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest.columns import label_column, numeric_column
from monitor.summaries import CategoricalSummary, NumericSummary, TextSummary, summary_from_dict
from monitor.summaries.categorical import MAX_TRACKED_UNSEEN

EDGES = np.array([-10.0, -1.0, 0.0, 0.5, 1.0, 10.0])
numbers = st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6),
                    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
                    st.integers(-1000, 1000), st.just("oops"))


def _numeric(values: list) -> NumericSummary:
    s = NumericSummary(EDGES)
    s.update(numeric_column(values))
    return s


@settings(max_examples=150, deadline=None)
@given(st.lists(numbers, max_size=60), st.integers(0, 60))
def test_numeric_merge_of_halves_equals_whole(values: list, cut: int) -> None:
    cut = min(cut, len(values))
    whole = _numeric(values)
    merged = _numeric(values[:cut]) + _numeric(values[cut:])
    assert merged.records == whole.records == len(values)
    for attr in ("count", "nulls", "nonfinite", "mismatches", "min", "max"):
        assert getattr(merged, attr) == getattr(whole, attr)
    assert merged.histogram.tolist() == whole.histogram.tolist()
    assert merged.mean == pytest.approx(whole.mean, rel=1e-9, abs=1e-6)
    assert merged.m2 == pytest.approx(whole.m2, rel=1e-7, abs=1e-3)
    assert merged.below_sum == pytest.approx(whole.below_sum, abs=1e-6)


def test_numeric_matches_numpy(rng: np.random.Generator) -> None:
    x = rng.normal(0, 3, 10_000)
    s = NumericSummary(EDGES)
    for part in np.array_split(x, 7):
        s.update(numeric_column(part))
    assert s.mean == pytest.approx(x.mean())
    assert s.variance == pytest.approx(x.var(ddof=1))
    assert (s.min, s.max) == (x.min(), x.max())
    inner = np.histogram(x[(x >= EDGES[0]) & (x <= EDGES[-1])], bins=EDGES)[0]
    assert s.histogram[1:-1].tolist() == inner.tolist()
    assert s.below == (x < EDGES[0]).sum() and s.above == (x > EDGES[-1]).sum()
    assert s.below_sum == pytest.approx(x[x < EDGES[0]].sum())


def test_numeric_counts_nulls_nonfinite_and_mismatches_apart() -> None:
    s = _numeric([1.0, None, float("nan"), float("inf"), "41", True, 2])
    assert (s.records, s.count, s.nulls, s.nonfinite, s.mismatches) == (7, 2, 1, 2, 2)


def test_numeric_round_trips_through_dict(rng: np.random.Generator) -> None:
    s = _numeric(rng.normal(size=100).tolist() + [None])
    assert summary_from_dict(s.to_dict()) == s


labels = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "new1", "new2"]), st.integers(0, 3))


@settings(max_examples=150, deadline=None)
@given(st.lists(labels, max_size=60), st.integers(0, 60), st.booleans())
def test_categorical_merge_of_halves_equals_whole(values: list, cut: int, complete: bool) -> None:
    def summarise(part: list) -> CategoricalSummary:
        s = CategoricalSummary(["a", "b", "c", "0"], complete=complete)
        s.update(label_column(part))
        return s

    cut = min(cut, len(values))
    assert summarise(values[:cut]) + summarise(values[cut:]) == summarise(values)


def test_categorical_unseen_values_are_tracked_up_to_a_cap() -> None:
    s = CategoricalSummary(["a"], complete=True)
    s.update(label_column([f"v{i}" for i in range(MAX_TRACKED_UNSEEN + 10)] + ["a"]))
    assert len(s.unseen) == MAX_TRACKED_UNSEEN and s.unseen_overflow == 10
    assert s.unseen_total == MAX_TRACKED_UNSEEN + 10 and s.counts.tolist() == [1]


def test_categorical_truncated_vocabulary_never_calls_values_novel() -> None:
    s = CategoricalSummary(["a"], complete=False)
    s.update(label_column(["a", "zz", "zz"]))
    assert s.other == 2 and s.unseen_total == 0


texts = st.one_of(st.none(), st.text(max_size=40), st.integers())


@settings(max_examples=100, deadline=None)
@given(st.lists(texts, max_size=40), st.integers(0, 40))
def test_text_merge_of_halves_equals_whole_in_counts(values: list, cut: int) -> None:
    def summarise(part: list, seed: int) -> TextSummary:
        s = TextSummary([0, 5, 20], [0, 2, 8], sample_size=10, seed=seed)
        s.update(label_column(part, numbers_as_labels=False))
        return s

    cut = min(cut, len(values))
    whole, merged = summarise(values, 0), summarise(values[:cut], 1) + summarise(values[cut:], 2)
    assert (merged.records, merged.nulls, merged.mismatches) == (whole.records, whole.nulls, whole.mismatches)
    assert merged.length.histogram.tolist() == whole.length.histogram.tolist()
    assert merged.tokens.histogram.tolist() == whole.tokens.histogram.tolist()
    present = [v[:1000] for v in values if isinstance(v, str)]
    assert len(merged.sample) == min(10, len(present))
    assert all(t in present for t in merged.sample)


def test_text_sample_is_bounded_and_uniform(rng: np.random.Generator) -> None:
    s = TextSummary([0, 10], [0, 5], sample_size=200, seed=7)
    for start in range(0, 20_000, 1000):
        s.update(label_column([str(i) for i in range(start, start + 1000)]))
    picked = np.array([int(t) for t in s.sample])
    assert len(picked) == 200
    # A uniform sample of 0..19999: its mean is near 10,000 (sd of the mean ~ 408).
    assert abs(picked.mean() - 10_000) < 2_000
