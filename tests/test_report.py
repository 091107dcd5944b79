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
