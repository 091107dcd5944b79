"""The metrics store down longer than the outbox holds, and a SIGKILL meanwhile (a
VictoriaMetrics of the test's own)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.kafka import Setup, history, produce, vm_export, wait_for_reports, wait_until
from support.servers import OwnServers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BUFFER = 8  # points; a window of this model has 4
ENV = {"DRIFT_MONITOR_WINDOW_SECONDS": "10", "DRIFT_MONITOR_IDLE_SECONDS": "2",
       "DRIFT_MONITOR_CHECKPOINT_INTERVAL_SECONDS": "1",
       "DRIFT_MONITOR_METRICS_BUFFER": str(BUFFER)}


def test_an_outbox_overflow_is_counted_and_what_it_kept_survives_a_kill(
        own_vm: OwnServers, make_setup: Callable[..., Setup],
        make_profile: Callable[[str, Path], Path]) -> None:
    """Five windows close with the store down and room for two windows' points: the outbox
    stays within DRIFT_MONITOR_METRICS_BUFFER, the rest is counted as dropped, /ready says why;
    after a SIGKILL, the next worker writes the points the outbox kept (the newest windows')."""
    setup = make_setup(1, vm=own_vm.vm)
    make_profile(setup.model, setup.profiles)
    own_vm.down("vm")
    worker = setup.worker("overflowing", **ENV)
    produce(setup.predictions, history(setup.model, windows=5, per_window=200, seed=3), key=None)
    wait_for_reports(setup, 5, timeout=60)
    m = wait_until(lambda: (m := worker.metrics())["metric_points_dropped"] >= 12 and m, 30,
                   "points dropped")
    assert m["metric_points_buffered"] == BUFFER
    assert m["metric_points_dropped"] + m["metric_points_buffered"] == 5 * 4
    assert (m["metrics_store_up"], m["ready"]) == (0, 0)
    status, body = worker.http("/ready")
    assert status == 503 and f"{BUFFER} points wait in the outbox" in body, body
    worker.kill()
    second = setup.worker("after-kill", **ENV)
    own_vm.up("vm")
    samples = wait_until(
        lambda: (s := vm_export("drift_window_records", setup.vm, model=setup.model)) and s, 60,
        "window points in the store")
    windows = sorted(t for x in samples for t in x["timestamps"])
    assert len(windows) == 2 and [v for x in samples for v in x["values"]] == [200, 200]
    wait_until(lambda: second.metrics()["metric_points_buffered"] == 0, 30, "an empty outbox")
