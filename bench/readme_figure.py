"""Render docs/report-age.png, the README's example of the drill-down plots (`report`)."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

import numpy as np

from monitor.demo.synthetic import Scenario, generate_columns, records
from monitor.outputs.html_report import feature_png
from monitor.profile.build import BuildOptions, build_profile
from monitor.stream.alerts import Alert
from monitor.stream.engine import Evaluated
from monitor.stream.replay import open_engine, replay_events

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        profiles = Path(tmp) / "profiles"
        build_profile(ROOT / "monitor" / "demo" / "data" / "churn_train.csv", BuildOptions(
            model="churn", version="3", predictions=("prediction",))).save(profiles / "churn-3.json")
        logs = Path(tmp) / "logs.jsonl"
        rng = np.random.default_rng(1)
        with logs.open("w") as fh:
            for w in range(40):
                drift = Scenario(mean_shift=0.6) if 15 <= w < 25 else None
                ts = 1_764_158_400 + 60 * w + np.sort(rng.uniform(0, 60, 1000))
                for r in records(generate_columns(1000, rng, drift), model="churn", version="3", ts=ts):
                    fh.write(json.dumps(r) + "\n")
        path, engine = open_engine(logs, profiles)
        reports, alerts = [], []
        for item in replay_events(path, engine):
            if isinstance(item, Evaluated):
                reports.append(item.report)
                alerts += item.alerts
            elif isinstance(item, Alert):
                alerts.append(item)
        out = ROOT / "docs" / "report-age.png"
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(base64.b64decode(feature_png(reports, "age", alerts)))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
