"""Our Page-Hinkley detector decides exactly as river's, and its state is plain JSON numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from river.drift import PageHinkley as RiverPageHinkley

from monitor.errors import StateError
from monitor.stream.trend import PageHinkley

PARAMS = [dict(min_instances=5, delta=0.5, threshold=10.0, alpha=1.0, mode="both"),
          dict(min_instances=30, delta=0.005, threshold=50.0, alpha=0.9999, mode="up"),
          dict(min_instances=3, delta=0.1, threshold=4.0, alpha=0.99, mode="down")]


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("seed", range(5))
def test_detections_match_rivers_page_hinkley(params: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sign = {"up": 1, "down": -1}.get(params["mode"], (-1) ** seed)
    stream = np.concatenate([rng.normal(0, 1, 400),
                             rng.normal(0, 1, 400) + np.linspace(0, 3 * sign, 400)])
    ours, theirs = PageHinkley(**params), RiverPageHinkley(**params)
    detections = []
    for i, x in enumerate(stream):
        ours.update(float(x))
        theirs.update(float(x))
        assert ours.drift_detected == theirs.drift_detected, i
        detections += [i] if ours.drift_detected else []
    assert detections, "the stream should drift"


def test_a_detector_restored_from_json_continues_identically() -> None:
    rng = np.random.default_rng(9)
    stream = np.concatenate([rng.normal(0, 1, 100), rng.normal(2, 1, 100)])
    whole = PageHinkley(min_instances=5, delta=0.5, threshold=10.0, alpha=1.0)
    first = PageHinkley(min_instances=5, delta=0.5, threshold=10.0, alpha=1.0)
    for x in stream[:120]:
        whole.update(float(x))
        first.update(float(x))
    second = PageHinkley.from_state(json.loads(json.dumps(first.to_state(), allow_nan=False)))
    for x in stream[120:]:
        whole.update(float(x))
        second.update(float(x))
        assert (second.drift_detected, second.statistic) == (whole.drift_detected, whole.statistic)


@pytest.mark.parametrize(("state", "message"), [
    ([1, 2], "must be a JSON object, not list"),
    ({"format": 1, "params": {}}, "malformed: 'min_instances'"),
    ({**PageHinkley().to_state(), "n": "5"}, "malformed: not an integer: '5'"),
    ({**PageHinkley().to_state(), "drift_detected": 1}, "malformed: not a boolean: 1"),
])
def test_malformed_detector_state_is_refused(state: object, message: str) -> None:
    with pytest.raises(StateError, match=message):
        PageHinkley.from_state(state)


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match='"mode" must be one of up, down, both: \'sideways\''):
        PageHinkley(mode="sideways")
    with pytest.raises(ValueError, match='"threshold" must be > 0: 0'):
        PageHinkley(threshold=0)
