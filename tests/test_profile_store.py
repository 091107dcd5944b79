"""The directory of profiles the worker serves from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from monitor.ingest.schema import Kind
from monitor.profile.model import Profile
from monitor.profile.store import ProfileStore


def test_a_profile_being_copied_in_place_keeps_its_last_good_version(
        profile: Profile, tmp_path: Path) -> None:
    path = tmp_path / "churn-3.json"
    profile.save(path)
    store = ProfileStore(tmp_path)
    assert store("churn", "3") is not None
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # a copy half done
    store.refresh()
    assert store("churn", "3").profile_id == profile.profile_id
    assert path in store.errors
    path.write_bytes(raw)
    store.refresh()
    assert store("churn", "3").profile_id == profile.profile_id and path not in store.errors


def test_a_removed_profile_is_no_longer_served(profile: Profile, tmp_path: Path) -> None:
    path = tmp_path / "churn-3.json"
    profile.save(path)
    store = ProfileStore(tmp_path)
    path.unlink()
    store.refresh()
    assert store("churn", "3") is None
    assert store.by_id(profile.profile_id) is not None  # windows begun under it still evaluate


def test_the_language_model_is_wanted_only_for_a_profile_with_text(
        profile: Profile, tmp_path: Path) -> None:
    store = ProfileStore(tmp_path)
    assert not store.has_text()
    numeric = replace(profile, features={name: f for name, f in profile.features.items()
                                         if f.kind is not Kind.TEXT}, profile_id="")
    numeric.save(tmp_path / "churn-3.json")
    store.refresh()
    assert store("churn", "3") is not None and not store.has_text()
    profile.save(tmp_path / "churn-3.json")
    store.refresh()
    assert store.has_text()
