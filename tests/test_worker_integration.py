"""The Faust worker against the real local servers (Kafka 4 KRaft, VictoriaMetrics)."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.kafka import (
    Setup,
    alerts_in,
    last_checkpoint,
    produce,
    read_topic,
    record_messages,
    vm_export,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


# -- tests ------------------------------------------------------------------------------------
def test_drift_in_one_feature_fires_an_alert_for_that_feature_only(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    make_profile(setup.model, setup.profiles)
    worker = setup.worker()
    produce(setup.predictions, record_messages(setup.model, 300, time.time(), seed=1,
                                               x_mean=2.5), key=setup.model.encode())
    worker.wait_for(re.compile(rf"window closed: .* model {setup.model} "), 20)
    alerts = [a for a in alerts_in(setup.alerts) if a["model"] == setup.model]
    firing = {(a["feature"], a["check"]) for a in alerts if a["status"] == "firing"}
    assert {"x"} == {feature for feature, _ in firing if feature}, firing
    assert ("x", "mean_shift") in firing
    x_alert = next(a for a in alerts if a["feature"] == "x" and a["check"] == "mean_shift")
    assert x_alert["alert_id"] and x_alert["profile_id"].startswith("sha256:")
    assert x_alert["value"] > x_alert["threshold"]


def test_window_feature_alert_and_service_metrics_reach_victoria_metrics(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    make_profile(setup.model, setup.profiles)
    worker = setup.worker()
    produce(setup.predictions, record_messages(setup.model, 120, time.time(), seed=2,
                                               x_mean=2.5), key=setup.model.encode())
    model = setup.model
    rows = wait_until(lambda: vm_export("drift_window_records", model=model), 30,
                      "drift_window_records in VictoriaMetrics")
    assert rows[0]["values"] == [120]
    psi = wait_until(lambda: vm_export("drift_feature_psi", model=model, feature="x"), 10,
                     "drift_feature_psi")
    assert psi[0]["metric"]["kind"] == "numeric" and psi[0]["metric"]["profile"]
    assert psi[0]["values"][0] > 0.5
    severity = vm_export("drift_feature_severity", model=model, feature="x")
    assert severity[0]["values"] == [3]  # critical
    assert vm_export("drift_feature_threshold_psi", model=model, feature="color")
    alert = wait_until(lambda: vm_export("drift_alert_value", model=model, feature="x",
                                         check="mean_shift"), 10, "drift_alert_value")
    assert alert[0]["metric"]["status"] == "firing"
    service = wait_until(lambda: [s for s in vm_export("drift_service_records_processed")
                                  if 120 in s["values"]
                                  and s["metric"]["worker"].endswith(f"-{worker.proc.pid}")],
                         20, "drift_service_records_processed from this worker")
    assert service
    # SIGTERM: a clean shutdown.
    assert worker.stop() == 0
    assert "metrics writer closed" in worker.log()


def test_malformed_messages_go_to_the_dead_letter_topic_with_reasons(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    make_profile(setup.model, setup.profiles)
    worker = setup.worker()
    model = setup.model
    now = time.time()
    good = record_messages(model, 100, now, seed=3)
    missing_ts = {"model": model, "version": "1", "features": {"x": 1.0}}
    bad = [
        b'{"model": "oops", "version": ',
        b'{"model": "\xff\xfe", "version": "1", "ts": 0}',
        json.dumps([json.loads(good[0]), missing_ts]).encode(),
        json.dumps({"version": "1", "ts": now, "features": {"x": 1.0}}).encode(),
    ]
    produce(setup.predictions, good[1:50] + bad + good[50:], key=model.encode())
    letters = wait_until(lambda: len(read_topic(setup.dlq)) >= 4 and read_topic(setup.dlq), 20,
                         "four dead letters")
    assert len(letters) == 4
    by_reason = {}
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers["source_topic"] == setup.predictions
        assert headers["source_partition"] == "0"
        by_reason[headers["reason"]] = (letter.value, int(headers["source_offset"]))
    def reason(prefix: str) -> tuple[bytes, int]:
        found = [v for r, v in by_reason.items() if r.startswith(prefix)]
        assert len(found) == 1, (prefix, sorted(by_reason))
        return found[0]

    # Whole bad messages keep their bytes and offsets; a bad array element goes alone.
    assert reason("not valid JSON") == (bad[0], 49)
    assert reason("message is not valid UTF-8") == (bad[1], 50)
    assert json.loads(reason("missing 'ts'")[0]) == missing_ts
    assert reason("missing 'ts'")[1] == 51
    assert reason("missing or empty 'model'")[1] == 52
    # Good records keep being counted: 99 plain ones and the good element of the array.
    worker.wait_for(re.compile(rf"window closed: .* model {model} "), 20)
    assert [(records, invalid) for _, _, records, invalid in worker.windows(model)] == [(100, 1)]


def test_sigkill_mid_window_then_restart_counts_every_record_exactly_once(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """Records folded in and checkpointed before the kill are not read again (offsets are not
    committed: the position comes from the checkpoint); records produced while the worker is
    down are counted."""
    make_profile(setup.model, setup.profiles)
    model, window = setup.model, 10.0
    # Faust commits rarely here, so the restarted worker is sure to see the first records again.
    overrides = {"DRIFT_MONITOR_WINDOW_SECONDS": str(window),
                 "DRIFT_MONITOR_COMMIT_INTERVAL_SECONDS": "600"}
    worker = setup.worker("before-kill", **overrides)
    # A window that starts after now, so that it stays open through the kill and the restart.
    start = math.ceil(time.time() / window) * window + window
    first, second = 300, 180
    produce(setup.predictions, record_messages(model, first, start + 1, seed=4),
            key=model.encode())
    wait_until(lambda: (cp := last_checkpoint(setup.state, 0)) and cp["offset"] == first - 1,
               20, "the checkpoint of the first records")
    worker.kill()
    assert not worker.windows(model)
    produce(setup.predictions, record_messages(model, second, start + 2, seed=5),
            key=model.encode())
    restarted = setup.worker("after-kill", **overrides)
    restarted.wait_for(f"restored checkpoint at offset {first - 1}", 30)
    # Records beyond the window's end plus the grace move the watermark past it.
    produce(setup.predictions, record_messages(model, 3, start + window + 2, seed=6),
            key=model.encode())
    restarted.wait_for(re.compile(rf"window closed: .* model {model} "), 30)
    assert restarted.windows(model) == [(start, start + window, first + second, 0)]
    samples = wait_until(lambda: vm_export("drift_window_records", model=model), 20,
                         "drift_window_records in VictoriaMetrics")
    points = [(t, v) for s in samples for t, v in zip(s["timestamps"], s["values"], strict=True)]
    end_ms = int((start + window) * 1000)
    assert [v for t, v in points if t == end_ms] == [first + second]
    assert all(t > end_ms for t, _ in points if t != end_ms)  # later windows only


def test_a_profile_added_while_running_is_picked_up(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    worker = setup.worker()
    model = setup.model
    produce(setup.predictions, record_messages(model, 60, time.time(), seed=7),
            key=model.encode())
    no_profile = wait_until(
        lambda: [a for a in alerts_in(setup.alerts)
                 if a["model"] == model and a["check"] == "no_profile"],
        20, "a no_profile alert")
    assert len(no_profile) == 1 and no_profile[0]["status"] == "firing"
    make_profile(model, setup.profiles)
    worker.wait_for(f"profile loaded: {model} version 1", 20)
    produce(setup.predictions, record_messages(model, 150, time.time(), seed=8),
            key=model.encode())
    worker.wait_for(re.compile(rf"window closed: .* model {model} "), 20)
    assert [records for _, _, records, _ in worker.windows(model)] == [150]
    psi = wait_until(lambda: vm_export("drift_feature_psi", model=model, feature="x"), 20,
                     "drift_feature_psi for the newly profiled model")
    assert psi
    # One episode: fired for the first records, resolved when the profile's records came.
    episode = [(a["status"], a["alert_id"]) for a in alerts_in(setup.alerts)
               if a["check"] == "no_profile"]
    assert [status for status, _ in episode] == ["firing", "resolved"]
    assert episode[0][1] == episode[1][1]


def test_one_feature_drifting_on_five_checks_is_one_episode_fired_escalated_resolved(
        setup: Setup, make_profile: Callable[[str, Path], Path]) -> None:
    """Issue 9's promise on the real broker: `x` fails psi, js, ks, wasserstein and mean_shift
    at warning (one firing event), then at critical (one escalation), then is clean for two
    windows (one resolution); nothing else pages."""
    make_profile(setup.model, setup.profiles)
    worker = setup.worker()
    model, window = setup.model, 2.0
    # Windows a minute in the past: their records close them (the last ones once the model is
    # idle), not the other partitions' wall-clock progress.
    base = math.floor(time.time() / window) * window - 60
    plan = [(0.3, 11), (1.0, 12), (0.0, 14), (0.0, 15)]  # (x mean shift in std, seed)
    messages = [m for i, (shift, seed) in enumerate(plan)
                for m in record_messages(model, 300, base + i * window + 0.5, seed=seed,
                                         x_mean=shift)]
    messages += record_messages(model, 1, base + (len(plan) + 1) * window + 1.5, seed=16)
    produce(setup.predictions, messages, key=model.encode())

    def events() -> list[dict[str, Any]]:
        return [a for a in alerts_in(setup.alerts) if a["model"] == model]

    wait_until(lambda: any(a["status"] == "resolved" for a in events()), 40,
               "the episode's resolution")
    alerts = events()
    assert [(a["status"], a["severity"], a["previous_severity"], a["feature"], a["episode"])
            for a in alerts] == [("firing", "warning", None, "x", "drift"),
                                 ("firing", "critical", "warning", "x", "drift"),
                                 ("resolved", "critical", None, "x", "drift")], alerts
    assert len({a["alert_id"] for a in alerts}) == 1
    fired = alerts[0]
    assert sorted(c["check"] for c in fired["checks"]) == [
        "js", "ks", "mean_shift", "psi", "wasserstein"]
    assert all(c["value"] > c["threshold"] and c["severity"] == "warning"
               for c in fired["checks"])
    assert fired["check"] == "mean_shift" and fired["message"].startswith(
        f"[{model} v1] x: mean up 0.")
    assert all(c["severity"] == "critical" for c in alerts[1]["checks"])
    assert [records for _, _, records, _ in worker.windows(model)] == [300] * len(plan)
