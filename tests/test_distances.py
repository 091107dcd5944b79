"""Metrics against scipy on random data: the summary-based versions must agree with the exact ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor.drift.checks import CheckInput
from monitor.drift.distances import contingency_p_value, js_distance, psi, tvd
from monitor.drift.metrics import feature_metrics
from monitor.ingest.columns import numeric_column
from monitor.ingest.schema import Kind
from monitor.profile.build import numeric_edges, psi_bins
from monitor.profile.model import FeatureProfile
from monitor.summaries import NumericSummary


def _feature(train: np.ndarray) -> FeatureProfile:
    summary = NumericSummary(numeric_edges(train, train.min(), train.max(), 100))
    summary.update(numeric_column(train))
    return FeatureProfile("x", Kind.NUMERIC, summary, psi_bins=psi_bins(summary.histogram))


def numeric_metrics(feature: FeatureProfile, window: NumericSummary) -> dict:
    return feature_metrics(CheckInput(feature, window))


def _window(feature: FeatureProfile, values: np.ndarray) -> NumericSummary:
    assert isinstance(feature.summary, NumericSummary)
    w = NumericSummary(feature.summary.edges)
    w.update(numeric_column(values))
    return w


DISTRIBUTIONS = [
    ("same normal", lambda r, n: r.normal(0, 1, n)),
    ("shifted", lambda r, n: r.normal(0.5, 1, n)),
    ("wider", lambda r, n: r.normal(0, 1.5, n)),
    ("far outside", lambda r, n: r.normal(6, 1, n)),
    ("skewed", lambda r, n: r.lognormal(0, 1, n) - 1.5),
]


@pytest.mark.parametrize("name,draw", DISTRIBUTIONS)
def test_ks_within_002_of_scipy_ks_2samp(name: str, draw, rng: np.random.Generator) -> None:
    train = rng.normal(0, 1, 20_000)
    window = draw(rng, 1000)
    m = numeric_metrics(_feature(train), _window(_feature(train), window))
    assert m["ks"] == pytest.approx(stats.ks_2samp(train, window).statistic, abs=0.02)


@pytest.mark.parametrize("name,draw", DISTRIBUTIONS)
def test_wasserstein_matches_scipy_over_training_std(name: str, draw, rng: np.random.Generator) -> None:
    train = rng.normal(0, 1, 20_000)
    window = draw(rng, 1000)
    m = numeric_metrics(_feature(train), _window(_feature(train), window))
    exact = stats.wasserstein_distance(train, window) / train.std(ddof=1)
    assert m["wasserstein"] == pytest.approx(exact, rel=0.08, abs=0.01)


def test_mean_shift_and_out_of_range(rng: np.random.Generator) -> None:
    train = rng.normal(10, 2, 5000)
    window = np.concatenate((rng.normal(11, 2, 990), [100.0] * 10))
    feature = _feature(train)
    m = numeric_metrics(feature, _window(feature, window))
    assert m["mean_shift"] == pytest.approx(abs(window.mean() - train.mean()) / train.std(ddof=1))
    outside = ((window < train.min()) | (window > train.max())).mean()
    assert m["out_of_range_rate"] == pytest.approx(outside)


def test_js_distance_matches_scipy(rng: np.random.Generator) -> None:
    for _ in range(50):
        k = rng.integers(2, 30)
        p, q = rng.integers(0, 100, k), rng.integers(0, 100, k)
        p[0] += 1
        q[0] += 1
        assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-9)


def test_psi_matches_its_formula_with_floor(rng: np.random.Generator) -> None:
    p = np.array([100, 0, 50, 10])
    q = np.array([80, 5, 0, 30])
    pp = np.maximum(p / p.sum(), 1e-4)
    qq = np.maximum(q / q.sum(), 1e-4)
    assert psi(p, q) == pytest.approx(float(((qq - pp) * np.log(qq / pp)).sum()))
    assert psi(p, p) == 0.0


def test_chi2_p_is_scipys_two_sample_contingency_test(rng: np.random.Generator) -> None:
    for _ in range(30):
        k = int(rng.integers(2, 12))
        training = rng.integers(50, 500, k)
        window = rng.multinomial(1000, training / training.sum())
        want = stats.chi2_contingency(np.vstack((training, window))).pvalue
        assert contingency_p_value(training, window) == pytest.approx(want, rel=1e-9)


def test_chi2_p_small_counts_use_fishers_exact_test() -> None:
    training, window = np.array([40, 3]), np.array([2, 4])
    want = stats.fisher_exact(np.vstack((training, window))).pvalue
    assert contingency_p_value(training, window) == pytest.approx(want)


def test_chi2_p_is_uniform_without_drift_even_when_training_is_small(
        rng: np.random.Generator) -> None:
    """Both samples are noisy: with 300 training values and windows of 3,000 from the same
    distribution, p < 0.05 about 5% of the time (a goodness-of-fit test against the training
    shares rejects far more often: it takes them as exact)."""
    shares = np.array([0.4, 0.3, 0.2, 0.1])
    rejected = gof = 0
    for _ in range(400):
        training = rng.multinomial(300, shares)
        window = rng.multinomial(3000, shares)
        rejected += contingency_p_value(training, window) < 0.05
        gof += stats.chisquare(window, training / training.sum() * 3000).pvalue < 0.05
    assert rejected / 400 == pytest.approx(0.05, abs=0.03)
    assert gof / 400 > 0.3


def test_tvd_is_half_l1() -> None:
    assert tvd(np.array([1, 1]), np.array([1, 0])) == pytest.approx(0.5)

