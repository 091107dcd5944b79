"""Thresholds from the right null: a window of n against a profile of N behaves the same at every
n (big batches stay quiet, small ones decide or say they cannot), effect-size floors, power."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from monitor.cli.main import main
from monitor.demo.synthetic import Scenario, generate_columns, score, write_csv
from monitor.drift.checks import Basis, Limit, Severity
from monitor.drift.evaluate import SAMPLE_SIZE, check_input, compare
from monitor.drift.nulls import effective_size, ks_critical
from monitor.drift.registry import check_alpha, checks_for
from monitor.ingest.schema import Kind
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.model import TEXT_PROFILE_SAMPLE, Profile
from monitor.summaries.text import DEFAULT_SAMPLE_SIZE
from monitor.summaries.window import WindowSummary


def _batch(path: Path, n: int, seed: int, scenario: Scenario | None = None) -> Path:
    cols = generate_columns(n, np.random.default_rng(seed), scenario)
    cols["prediction"] = score(cols)
    write_csv(str(path), cols)
    return path


def _window(profile: Profile, n: int, seed: int, scenario: Scenario | None = None,
            shift: dict[str, float] | None = None) -> WindowSummary:
    cols = generate_columns(n, np.random.default_rng(seed), scenario)
    for name, by in (shift or {}).items():
        cols[name] = (np.asarray(cols[name], dtype=float) + by).tolist()
    cols["prediction"] = score(cols)
    window = WindowSummary(profile)
    window.update_columns(cols, n)
    window.seen_features = set(cols)
    return window


def test_a_big_no_drift_batch_through_check_exits_0(profile: Profile, tmp_path: Path,
                                                     capsys) -> None:
    """6,000 training rows, 30,000 rows of the same distribution: nothing is drift (main
    flagged 18 warnings on 7 features: its thresholds shrank with n as if the profile were
    exact)."""
    prof = profile.save(tmp_path / "p.json")
    data = _batch(tmp_path / "big.csv", 30_000, seed=21)
    code = main(["check", str(data), "--profile", str(prof), "--prediction", "prediction",
                 "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, [f["message"] for f in report["findings"] if f["severity"] != "info"]
    assert report["records"] == 30_000


def test_thresholds_stop_falling_at_the_profiles_own_noise(profile: Profile) -> None:
    """A window far larger than the profile is compared at about the profile's size."""
    feature = profile.features["age"]
    n_training = feature.summary.count
    psi = feature.nulls["psi"]
    huge = _window(profile, 20_000, seed=3)
    report = compare(huge, profile)
    assert report.features["age"].thresholds["psi"] == pytest.approx(
        psi.at(effective_size(20_000, n_training)))
    assert psi.at(effective_size(20_000, n_training)) > psi.at(n_training)
    assert psi.at(effective_size(10**9, n_training)) == pytest.approx(psi.at(n_training), rel=1e-3)


def test_ks_threshold_is_never_above_the_exact_critical_value(profile: Profile) -> None:
    alpha = check_alpha(Kind.NUMERIC, profile.false_alarm_rate)
    n_training = profile.features["age"].summary.count
    for n in (12, 48, 500, 5000):
        report = compare(_window(profile, n, seed=n), profile)
        threshold = report.features["age"].thresholds["ks"]
        assert threshold <= ks_critical(n, n_training, alpha) <= 1.0


def test_calibration_measures_several_sizes_and_checks_the_fit(profile: Profile) -> None:
    """Quantiles fall with the size as the law says (1 for PSI, 1/2 for distances), within the
    noise of 120 resampled windows per size."""
    for name in ("age", "income_z", "state", "plan"):
        for check, curve in profile.features[name].nulls.items():
            assert len(curve.sizes) >= 5, (name, check)
            assert list(curve.quantiles) == sorted(curve.quantiles, reverse=True)
            assert curve.measured is not None
            assert abs(curve.measured - curve.law) < 0.3, (name, check, curve)
            assert curve.exponent <= curve.law


def _wine_like(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Like scikit-learn's wine data: a profile of classes 0 and 1 (59 + 71 rows), a batch of
    48 rows of class 2, which differs on 9 of 10 features (not on f0)."""
    rng = np.random.default_rng(42)
    m0 = np.array([1.0, -0.5, 0.3, -1.0, 0.8, 1.2, 1.0, -0.8, 0.9, 0.5])
    m1 = np.array([-1.0, -0.7, -0.4, 0.2, -0.6, 0.1, 0.0, 0.1, 0.2, -1.0])
    m2 = np.array([0.1, 1.5, 1.6, 1.2, 1.8, -1.4, -1.6, 1.4, -1.3, 1.5])
    train = np.vstack([m0 + rng.normal(0, 1, (59, 10)), m1 + rng.normal(0, 1, (71, 10))])
    batch = m2 + rng.normal(0, 1, (48, 10))
    names = [f"f{i}" for i in range(10)]
    write_csv(str(tmp_path / "train.csv"), {n: train[:, i].round(3).tolist()
                                            for i, n in enumerate(names)})
    write_csv(str(tmp_path / "batch.csv"), {n: batch[:, i].round(3).tolist()
                                            for i, n in enumerate(names)})
    return tmp_path / "train.csv", tmp_path / "batch.csv", train, batch


@pytest.mark.parametrize("window_size", [10, 130])
def test_a_small_batch_finds_what_the_exact_test_finds(tmp_path: Path, capsys,
                                                       window_size: int) -> None:
    """48 rows against 130: every feature that scipy's two-sample KS calls different
    (p < 1e-6) is flagged, the similar one is not, no KS threshold is above 1, and the verdict
    does not depend on --window-size (main, with the default 1000: KS threshold 1.026, and 4 of
    10 wine features found; a profile of fewer rows than the window is now refused, hence the
    sizes here)."""
    train_csv, batch_csv, train, batch = _wine_like(tmp_path)
    prof = build_profile(train_csv, BuildOptions("wine", "1", window_size=window_size,
                                                 calibration_windows=100))
    prof.save(tmp_path / "p.json")
    code = main(["check", str(batch_csv), "--profile", str(tmp_path / "p.json"),
                 "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    different = {f"f{i}" for i in range(10) if stats.ks_2samp(train[:, i], batch[:, i]).pvalue < 1e-6}
    flagged = {n for n, f in report["features"].items() if f["severity"] in ("warning", "critical")}
    assert different == {f"f{i}" for i in range(1, 10)}
    assert flagged == different
    assert all(f["thresholds"]["ks"] <= 1.0 for f in report["features"].values())


def test_a_window_too_small_to_decide_says_so_with_the_size_that_would(profile: Profile) -> None:
    report = compare(_window(profile, 6, seed=1), profile)
    age = report.features["age"]
    small = [f for f in age.findings if f.check == SAMPLE_SIZE]
    assert len(small) == 1 and small[0].severity is Severity.INFO
    needs = small[0].details["needs"]
    assert needs and all(v is None or v > 6 for v in needs.values())
    # The size it names does decide: every named check is decidable there.
    for check, size in needs.items():
        if size is None:
            continue
        bigger = _window(profile, size + 5, seed=2)
        inp = check_input(profile.features["age"], bigger.features["age"])
        limit = checks_for(Kind.NUMERIC)[check].limit(inp, check_alpha(Kind.NUMERIC, 1e-3))
        assert limit.decidable, (check, size)
    # and no threshold is above what its statistic can reach
    assert age.thresholds["ks"] <= 1.0 and age.thresholds["js"] <= 1.0


def test_a_significant_but_negligible_difference_is_info(profile: Profile, tmp_path: Path) -> None:
    """The effect-size floor (configurable per check) turns a real but small shift into info."""
    shifted = _window(profile, 5000, seed=8, shift={"age": 3.0})  # 0.3 std
    plain = compare(shifted, profile).features["age"]
    assert {f.check for f in plain.findings if f.severity >= Severity.WARNING} >= {"mean_shift"}
    floored = compare(shifted, profile, overrides={"age": {"mean_shift_floor": 0.5}})
    mean_shift = [f for f in floored.features["age"].findings if f.check == "mean_shift"]
    assert [f.severity for f in mean_shift] == [Severity.INFO]
    assert "effect-size floor" in mean_shift[0].message
    assert floored.features["age"].thresholds["mean_shift"] == 0.5


def test_ties_at_a_threshold_do_not_page() -> None:
    """3 of 500 texts against a threshold of 3/500 computed another way (the demo paged
    `language_tvd value=0.006 threshold=0.006`)."""
    check = checks_for(Kind.TEXT)["language_tvd"]
    limit = Limit.of(0.006, 0.0, reach=1.0)
    value = 0.1 + 0.2 - 0.3 + 0.006  # 0.006000000000000003
    assert value > 0.006
    assert check.assess(value, limit, None) is Severity.OK  # type: ignore[arg-type]
    assert check.assess(0.00601, limit, None) is Severity.WARNING  # type: ignore[arg-type]


def test_the_profile_keeps_5000_texts_and_its_seed_and_the_checks_see_them(
        training_csv: Path) -> None:
    a = build_profile(training_csv, BuildOptions("m", "1", calibration_windows=20, seed=1))
    b = build_profile(training_csv, BuildOptions("m", "1", calibration_windows=20, seed=2))
    comment = a.features["comment"]
    assert comment.text_sample == TEXT_PROFILE_SAMPLE  # 6,000 training texts
    assert comment.summary.sample_size == DEFAULT_SAMPLE_SIZE  # what a window keeps
    assert comment.vocabulary != b.features["comment"].vocabulary  # the seed picks the texts
    window = _window(a, 2000, seed=4)
    inp = check_input(comment, window.features["comment"])
    assert inp.sizes(Basis.TEXTS) == (DEFAULT_SAMPLE_SIZE, TEXT_PROFILE_SAMPLE)
    assert max(comment.nulls["language_tvd"].sizes) == DEFAULT_SAMPLE_SIZE


def test_check_reports_the_shift_it_can_detect(profile: Profile, tmp_path: Path,
                                               capsys) -> None:
    prof = profile.save(tmp_path / "p.json")
    found = {}
    for n in (100, 3000):
        data = _batch(tmp_path / f"b{n}.csv", n, seed=n)
        main(["check", str(data), "--profile", str(prof), "--prediction", "prediction",
              "--format", "json"])
        found[n] = json.loads(capsys.readouterr().out)["features"]["age"]["detectable"]
        assert main(["check", str(data), "--profile", str(prof), "--prediction",
                     "prediction"]) in (0, 1)
        assert "detects" in capsys.readouterr().out
    assert found[3000]["mean_shift"] < found[100]["mean_shift"]
    # 80% power: a shift of that size is found in most windows of that size
    shift = found[3000]["mean_shift"] * profile.features["age"].summary.std
    hits = sum(compare(_window(profile, 3000, seed=s, shift={"age": shift}), profile)
               .features["age"].severity >= Severity.WARNING for s in range(20))
    assert hits >= 12


def test_rate_bounds_carry_both_counts() -> None:
    """The same 1% training rate bounds a big window more loosely the fewer training records
    it rests on; and over many no-drift windows the bound is crossed about alpha of the time."""
    from monitor.drift.nulls import rate_bound

    loose, mid, tight = (rate_bound(k, n, 100_000, 1e-4) for k, n in
                         ((1, 100, ), (100, 10_000), (1000, 100_000)))
    assert loose > mid > tight > 0.01
    assert rate_bound(0, 100, 0, 1e-4) == 1.0
    rng = np.random.default_rng(5)
    crossed = 0
    for _ in range(4000):
        k = rng.binomial(2000, 0.02)
        crossed += rng.binomial(500, 0.02) / 500 > rate_bound(k, 2000, 500, 0.01)
    assert crossed / 4000 < 0.02
