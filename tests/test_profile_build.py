"""Profile building: provenance, determinism, kinds, thresholds, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import InputError, ProfileError, UsageError
from monitor.ingest.schema import Kind
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.model import Profile


def _opts(**kw) -> BuildOptions:
    base = dict(model="m", version="1", window_size=200, calibration_windows=40, sample_rows=2000)
    base.update(kw)
    return BuildOptions(**base)


def test_profile_records_provenance_and_kinds(profile: Profile, training_csv: Path) -> None:
    import hashlib

    assert profile.source["sha256"] == hashlib.sha256(training_csv.read_bytes()).hexdigest()
    assert profile.source["rows"] == 6000
    assert profile.profile_id == profile.compute_id() and profile.profile_id.startswith("sha256:")
    assert profile.schema["age"] is Kind.NUMERIC
    assert profile.schema["state"] is Kind.CATEGORICAL
    assert profile.schema["comment"] is Kind.TEXT
    assert profile.schema["prediction"] is Kind.NUMERIC
    assert set(profile.features["age"].nulls) == {"psi", "js", "ks", "wasserstein", "mean_shift"}
    assert profile.features["comment"].languages.get("en", 0) > 0.9


def test_building_twice_gives_byte_identical_files(training_csv: Path, tmp_path: Path) -> None:
    opts = _opts(predictions=("prediction",))
    a = build_profile(training_csv, opts).save(tmp_path / "a.json").read_bytes()
    b = build_profile(training_csv, opts).save(tmp_path / "b.json").read_bytes()
    assert a == b


def test_loaded_profile_equals_saved_and_detects_edits(profile: Profile, tmp_path: Path) -> None:
    path = profile.save(tmp_path / "p.json")
    loaded = Profile.load(path)
    assert loaded.to_json() == profile.to_json()
    data = json.loads(path.read_text())
    data["features"]["age"]["nulls"]["psi"]["quantiles"][0] = 99.0
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="edited after it was built"):
        Profile.load(path)
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="format version 99"):
        Profile.load(path)


def test_schema_file_overrides_inference(training_csv: Path, tmp_path: Path) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text("rating: categorical\ncomment: categorical\n")
    from monitor.ingest.schema import load_schema_file

    p = build_profile(training_csv, _opts(schema=load_schema_file(schema)))
    assert p.schema["rating"] is Kind.CATEGORICAL and p.schema["comment"] is Kind.CATEGORICAL


@pytest.mark.parametrize("content,fmt,message", [
    (None, "csv", "file not found"),
    (b"a,b\n1,2\n", "txt", "unknown data format"),
    (b"", "csv", "file is empty"),
    (b"\xff\xfe\xfa,b\n\xff,2\n", "csv", "not valid UTF-8"),
    (b"[1, 2]\n\"just a string\"\n", "jsonl", "no valid prediction-log record"),
])
def test_bad_inputs_are_one_clear_error(tmp_path: Path, content, fmt, message) -> None:
    path = tmp_path / f"data.{fmt}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        build_profile(path, _opts())


def test_edge_case_columns_build(tmp_path: Path) -> None:
    """All-null column, NaN/inf, a 1 MB string: all build."""
    rng = np.random.default_rng(0)
    rows = ["x,empty,flag,note"]
    for i in range(300):
        x = ["nan", "inf", "-inf"][i % 3] if i % 50 == 0 else f"{rng.normal():.3f}"
        note = "a" * 1_000_000 if i == 7 else f"note {i}"
        rows.append(f"{x},,{'yes' if i % 2 else 'no'},{note}")
    path = tmp_path / "edge.csv"
    path.write_text("\n".join(rows) + "\n")
    p = build_profile(path, _opts())
    x = p.features["x"].summary
    # CSV follows pandas/Arrow: "nan" (like "NA", "null", "") is a null; inf is non-finite.
    assert (x.nonfinite, x.nulls, x.count) == (4, 2, 294)
    assert p.features["empty"].summary.nulls == 300
    assert p.schema["flag"] is Kind.CATEGORICAL


@pytest.mark.parametrize("rows,window,hint", [
    (1, 200, "use at least 10 rows of training data"),
    (150, 200, "use more training data or --window-size 150 or less"),
])
def test_fewer_rows_than_a_calibration_window_are_refused(tmp_path: Path, rows: int, window: int,
                                                          hint: str) -> None:
    """A 1-row CSV made a profile that called every later batch critical."""
    path = tmp_path / "small.csv"
    path.write_text("x,s\n" + "".join(f"{i * 0.5},a\n" for i in range(rows)))
    with pytest.raises(InputError, match=f"small.csv has {rows} rows?, fewer than one calibration "
                                         f"window \\(--window-size {window}\\).*{hint}"):
        build_profile(path, _opts(window_size=window))
    if rows >= 10:
        assert build_profile(path, _opts(window_size=10)).source["rows"] == rows


def test_a_log_of_several_models_builds_the_named_model_only(tmp_path: Path) -> None:
    """Two models in one log were merged into one profile (features of both, 50% nulls)."""
    lines = []
    for i in range(600):
        lines.append({"model": "churn", "version": "3", "ts": i, "features": {"a": i % 7}})
        lines.append({"model": "fraud", "version": 1, "ts": i, "features": {"z": "x"}})
        if i % 3 == 0:
            lines.append({"model": "churn", "version": "2", "ts": i, "features": {"old": 1}})
    path = tmp_path / "logs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    p = build_profile(path, _opts(model="churn", version="3"))
    assert set(p.schema) == {"a"} and p.features["a"].summary.nulls == 0
    assert p.source["rows"] == 600 and p.source["other_model_records"] == 800
    with pytest.raises(InputError, match=r"no record of model 'churn' version '9' in logs.jsonl; "
                                         r"it holds (churn v3: 600|fraud v1: 600)"):
        build_profile(path, _opts(model="churn", version="9"))


def test_jsonl_logs_build_and_skip_bad_lines(tmp_path: Path) -> None:
    lines = [json.dumps({"model": "m", "version": "1", "ts": i, "features": {"a": i % 7, "b": "x"},
                         "prediction": {"score": i / 100, "label": "yes"}}) for i in range(400)]
    lines.insert(5, "not json")
    lines.insert(9, "[1, 2, 3]")
    path = tmp_path / "logs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    p = build_profile(path, _opts())
    assert p.source["rows"] == 400
    assert {"a", "b", "prediction.score", "prediction.label"} <= set(p.schema)
    assert p.schema["prediction.label"] is Kind.CATEGORICAL


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="window size must be >= 10"):
        _opts(window_size=3)
    with pytest.raises(UsageError, match="false alarm rate"):
        _opts(false_alarm_rate=2.0)
