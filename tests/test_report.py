"""The HTML report: self-contained (plots inlined, nothing fetched), one section per feature."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from monitor.cli.main import main
from monitor.profile.build import BuildOptions, build_profile


def test_report_is_self_contained_html_with_plots(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(3)
    train = tmp_path / "train.csv"
    train.write_text("x,c\n" + "".join(f"{v:.4f},{'ab'[i % 2]}\n"
                                       for i, v in enumerate(rng.normal(0, 1, 3000))))
    profiles = tmp_path / "profiles"
    build_profile(train, BuildOptions(model="m", version="1", window_size=300,
                                      calibration_windows=40)).save(profiles / "m-1.json")
    logs = tmp_path / "logs.jsonl"
    with logs.open("w") as fh:
        for w in range(6):
            for i in range(300):
                x = float(rng.normal(2 if w >= 3 else 0, 1))
                fh.write(json.dumps({"model": "m", "version": "1", "ts": 60 * w + i / 10,
                                     "features": {"x": x, "c": "ab"[i % 2]}}) + "\n")
    out = tmp_path / "report.html"
    assert main(["report", str(logs), "--profiles", str(profiles), "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!doctype html>")
    assert len(re.findall(r"src='data:image/png;base64,[A-Za-z0-9+/=]{100,}'", page)) == 2
    assert not re.search(r"(src|href)=['\"]https?://", page)
    assert "x" in page and "mean_shift" in page  # the alert table names the drifted check


def _write_logs(path: Path, rng: np.random.Generator, *, drift_model: str) -> None:
    """Two models (`a` and `b`) of 6 windows, one of them drifting from window 3; plus an
    unprofiled model and two invalid lines."""
    with path.open("w") as fh:
        for w in range(6):
            for model in ("a", "b"):
                shift = 2 if model == drift_model and w >= 3 else 0
                for i in range(300):
                    fh.write(json.dumps({"model": model, "version": "1", "ts": 60 * w + i / 10,
                                         "features": {"x": float(rng.normal(shift, 1)),
                                                      "c": "ab"[i % 2]}}) + "\n")
            fh.write(json.dumps({"model": "ghost", "version": "9", "ts": 60 * w + 1,
                                 "features": {"x": 1.0}}) + "\n")
        fh.write("not json\n{\"model\": \"a\"}\n")


def _profiles(tmp_path: Path, rng: np.random.Generator) -> Path:
    train = tmp_path / "train.csv"
    train.write_text("x,c\n" + "".join(f"{v:.4f},{'ab'[i % 2]}\n"
                                       for i, v in enumerate(rng.normal(0, 1, 3000))))
    profiles = tmp_path / "profiles"
    for model in ("a", "b"):
        build_profile(train, BuildOptions(model=model, version="1", window_size=300,
                                          calibration_windows=40)).save(profiles / f"{model}-1.json")
    return profiles


def test_report_opens_with_an_overview_drifting_model_first_with_invalid_and_unprofiled(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(5)
    profiles = _profiles(tmp_path, rng)
    logs = tmp_path / "logs.jsonl"
    _write_logs(logs, rng, drift_model="b")  # `b` sorts after `a` by name, yet comes first
    out = tmp_path / "report.html"
    assert main(["report", str(logs), "--profiles", str(profiles), "-o", str(out)]) == 0
    page = out.read_text()
    overview = page.split("<h2>Overview</h2>")[1].split("<h2 ")[0]
    assert page.index("<h2>Overview</h2>") < page.index("<h2 id=")
    rows = re.findall(r"<tr class='(\w*)'><td><a href='#(\w+)-1'>", overview)
    assert [model for _, model in rows] == ["b", "a"]
    assert rows[0][0] in {"warning", "critical"} and rows[1][0] == ""
    assert "Invalid lines: 2</b>" in overview
    assert "records of models without a profile: 6</b> (ghost v9: 6)" in overview
    sections = re.findall(r"<h2 id='(\w+)-1'>", page)
    assert sections == ["b", "a"]


def test_an_episode_open_at_the_end_is_shaded_to_the_last_window() -> None:
    from datetime import UTC, datetime

    from monitor.outputs.html_report import _episodes
    from monitor.stream.alerts import Alert

    def event(status: str, alert_id: str, start: str, since: str) -> Alert:
        return Alert(alert_id, status, "warning", None, "m", "1", "x", "drift", "psi", 1.0, 0.5,
                     [], start, start, since, 1, "sha256:p", "x drifted")

    end = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    spans = _episodes([event("firing", "e1", "2026-01-01T00:10:00Z", "2026-01-01T00:09:00Z"),
                       event("resolved", "e1", "2026-01-01T00:20:00Z", "2026-01-01T00:09:00Z"),
                       event("firing", "e2", "2026-01-01T00:40:00Z", "2026-01-01T00:39:00Z")],
                      "x", end)
    assert [(a.minute, b.minute if b != end else "end") for a, b in spans] == [(9, 20), (39, "end")]
