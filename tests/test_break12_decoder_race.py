"""The profiles' decoder is asked for from stage one's parse thread (`FoldProcessor.prepare`)
and its CPU thread while the event loop reloads the profiles (`ProfileStore.refresh`). A decoder
whose building began before a reload and ended after it must not stay as the store's decoder:
it would leave every record of a model added by the reload to the slow reference path (and a
preparation made with it would pass `Prepared.still_valid`) until the profiles change again."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

import monitor.profile.store as store_module
from monitor.ingest.fast_decode import FastDecoder
from monitor.profile.model import Profile
from monitor.profile.store import ProfileStore
from tests.test_processors import T0


def test_a_reload_while_a_decoder_is_built_in_another_thread_is_not_undone(
        profile: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile.save(tmp_path / "churn-3.json")
    store = ProfileStore(tmp_path)
    added = dataclasses.replace(profile, model="fraud", profile_id="")

    class ReloadedMeanwhile(FastDecoder):
        """Building takes a while: the event loop reloads the profiles meanwhile (the GIL
        passes between threads every few milliseconds)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if not (tmp_path / "fraud-1.json").exists():
                added.save(tmp_path / "fraud-1.json")
                assert store.refresh()
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(store_module, "FastDecoder", ReloadedMeanwhile)
    store.decoder()  # the parse thread, as the reload happens
    monkeypatch.undo()
    record = {"model": "fraud", "version": profile.version, "ts": T0,
              "features": {"age": 40.0}}
    _, refused = store.decoder().decode([json.dumps(record).encode()], time.time() + 86_400)
    assert refused == [], "the fraud model's records are left to the slow path"
