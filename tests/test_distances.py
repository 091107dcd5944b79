"""Metrics against scipy on random data: the summary-based versions must agree with the exact ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor.drift.distances import chi2_p_value, js_distance, psi, tvd
from monitor.drift.metrics import numeric_metrics
from monitor.ingest.columns import numeric_column
from monitor.ingest.schema import Kind
from monitor.profile.build import numeric_edges, psi_bins
from monitor.profile.model import FeatureProfile
from monitor.summaries import NumericSummary


def _feature(train: np.ndarray) -> FeatureProfile:
    summary = NumericSummary(numeric_edges(train, train.min(), train.max(), 100))
    summary.update(numeric_column(train))
    return FeatureProfile("x", Kind.NUMERIC, summary, psi_bins=psi_bins(summary.histogram))


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


def test_chi2_p_matches_scipy_chisquare(rng: np.random.Generator) -> None:
    for _ in range(30):
        k = int(rng.integers(2, 12))
        expected = rng.integers(50, 500, k)
        observed = rng.multinomial(1000, expected / expected.sum())
        exp = expected / expected.sum() * observed.sum()
        want = stats.chisquare(observed, exp).pvalue
        assert chi2_p_value(expected, observed) == pytest.approx(want, rel=1e-6, abs=1e-12)


def test_tvd_is_half_l1() -> None:
    assert tvd(np.array([1, 1]), np.array([1, 0])) == pytest.approx(0.5)


def test_quantiles_without_scipy_stats_equal_scipy_stats() -> None:
    """checks.binom_quantile and distances' chi-square tail use scipy.special (scipy.stats costs
    a second at start); they give scipy.stats' numbers exactly."""
    import itertools

    from scipy import special, stats

    from monitor.drift.checks import binom_quantile

    for n, p, alpha in itertools.product([1, 7, 200, 1000, 123457], [1e-6, 0.01, 0.5, 1.0],
                                         [1e-2, 1e-4, 1e-6]):
        assert binom_quantile(1 - alpha, n, p) == float(stats.binom.ppf(1 - alpha, n, p))
    for x, k in itertools.product([0.0, 0.1, 5.5, 1e3], [1, 2, 99]):
        assert float(special.chdtrc(k, x)) == float(stats.chi2.sf(x, k))
