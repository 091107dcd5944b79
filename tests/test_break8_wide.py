"""A model with thousands of features: its partial windows are larger than a topic with the
broker's default max.message.bytes (1 MB) takes."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from support.kafka import Setup, produce, wait_for_reports

from monitor.profile.build import BuildOptions, build_profile

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FEATURES = 2500  # about 490 bytes of partial summary each: 1.2 MB a model window


def test_a_model_with_thousands_of_features_gets_its_windows_evaluated(
        setup: Setup, tmp_path: Path) -> None:
    """Before, stage one's partial of such a model window was refused by the partials topic
    (MessageSizeTooLarge, created with the broker's default limit) and sent again for ever:
    no window of the model, nor of any model on that partition, was evaluated again."""
    rng = np.random.default_rng(4)
    names = [f"f{i}" for i in range(FEATURES)]
    # One feature's profile, built from data, copied under 2,500 names (building 2,500
    # features from data would take two minutes; the worker only needs the wide profile).
    csv = tmp_path / "one.csv"
    csv.write_text("f\n" + "\n".join(f"{v:.4f}" for v in rng.normal(size=600)))
    one = build_profile(csv, BuildOptions(model=setup.model, version="1", window_size=100,
                                          calibration_windows=20, sample_rows=600))
    template = one.features["f"]
    wide = dataclasses.replace(one, features={n: dataclasses.replace(template, name=n)
                                              for n in names}, profile_id="")
    wide.save(setup.profiles / f"{setup.model}-1.json")
    start = (int(time.time()) // 3600 - 2) * 3600.0  # within the retention
    messages = [json.dumps({"model": setup.model, "version": "1", "ts": start + i * 0.05,
                            "features": dict(zip(names, map(float, rng.normal(size=FEATURES)),
                                                 strict=True))}).encode()
                for i in range(120)]
    produce(setup.predictions, messages, key=None)
    worker = setup.worker("wide-model", DRIFT_MONITOR_WINDOW_SECONDS="10",
                          DRIFT_MONITOR_IDLE_SECONDS="2")
    [report] = wait_for_reports(setup, 1, timeout=90)
    assert report["records"] == 120
    m = worker.metrics()
    assert m["kafka_failures"] == 0 and m["windows_evaluated"] == 1
