"""A directory of profiles, looked up by model and version, reloaded when files change."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from monitor.errors import ProfileError, UsageError
from monitor.ingest.fast_decode import FastDecoder
from monitor.ingest.schema import Kind
from monitor.profile.model import Profile

log = logging.getLogger(__name__)


class ProfileStore:
    """Every `*.json` profile under `directory`; `refresh()` picks up new, changed and removed
    files (a file that fails to load is logged and skipped, the others still serve; a file that
    loaded before keeps its last good profile while it fails). Replace profiles by renaming a
    finished file into the directory."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise UsageError(f"profiles directory not found ({self.directory})")
        self._files: dict[Path, tuple[float, int]] = {}
        self._by_file: dict[Path, Profile] = {}
        self._by_key: dict[tuple[str, str], Profile] = {}
        # Every profile served since start, by id: windows begun under a profile that has been
        # replaced since are still evaluated against it (bounded: a few per model and version).
        self._by_id: dict[str, Profile] = {}
        self.errors: dict[Path, str] = {}
        # The decoder of the profiles in `_by_key`, with that dict: other threads ask for it
        # while `refresh` runs, and one built from profiles replaced meanwhile is not used.
        self._decoder: tuple[dict[tuple[str, str], Profile], FastDecoder] | None = None
        self.refresh()

    def refresh(self) -> list[Profile]:
        """Reload what changed; return the profiles that are new or changed."""
        changed: list[Profile] = []
        seen: set[Path] = set()
        for path in sorted(self.directory.glob("*.json")):
            seen.add(path)
            try:
                st = path.stat()
            except OSError:
                continue
            stamp = (st.st_mtime, st.st_size)
            if self._files.get(path) == stamp:
                continue
            self._files[path] = stamp
            try:
                profile = Profile.load(path)
            except ProfileError as exc:
                # A file being copied in place reads as broken for a moment: the profile it held
                # before (if any) keeps serving until the file loads again.
                kept = path in self._by_file
                if self.errors.get(path) != str(exc):
                    log.error("skipping profile: %s%s", exc,
                              "; the last good version keeps serving" if kept else "")
                self.errors[path] = str(exc)
                continue
            self.errors.pop(path, None)
            self._by_file[path] = profile
            changed.append(profile)
        for path in set(self._files) - seen:
            del self._files[path]
            self._by_file.pop(path, None)
            self.errors.pop(path, None)
        by_key = {(p.model, p.version): p for _, p in sorted(self._by_file.items())}
        if by_key.keys() != self._by_key.keys() or any(
                p is not self._by_key[k] for k, p in by_key.items()):
            self._by_key = by_key  # a new dict: the decoder is built again for it
        for profile in changed:
            self._by_id[profile.profile_id] = profile
        self._forget_old()
        return changed

    def _forget_old(self, keep: int = 3) -> None:
        per_key: dict[tuple[str, str], list[str]] = {}
        for profile_id, profile in self._by_id.items():  # insertion order: oldest first
            per_key.setdefault((profile.model, profile.version), []).append(profile_id)
        for ids in per_key.values():
            for profile_id in ids[:-keep]:
                del self._by_id[profile_id]

    def by_id(self, profile_id: str) -> Profile | None:
        """A profile served since start (current or replaced), by its id."""
        return self._by_id.get(profile_id)

    def decoder(self) -> FastDecoder:
        """The fast decoder of the current profiles' records (rebuilt when they change; any
        thread may ask while another refreshes)."""
        built, by_key = self._decoder, self._by_key
        if built is None or built[0] is not by_key:
            built = self._decoder = (by_key, FastDecoder(schemas(by_key.values())))
        return built[1]

    def get(self, model: str, version: str) -> Profile | None:
        return self._by_key.get((model, version))

    def keys(self) -> list[tuple[str, str]]:
        """(model, version) of every current profile."""
        return list(self._by_key)

    def has_text(self) -> bool:
        """Whether a current profile has a text feature (what the language model is for)."""
        return any(f.kind is Kind.TEXT for p in self._by_key.values() for f in p.features.values())

    def __call__(self, model: str, version: str) -> Profile | None:
        return self.get(model, version)

    def __len__(self) -> int:
        return len(self._by_key)


def schemas(profiles: Iterable[Profile]) -> dict[str, dict[str, Kind]]:
    """Model -> feature -> kind over every version; a name whose kind differs between versions
    is categorical here (read as any scalar, never typed as a number).

    >>> from monitor.profile.model import FeatureProfile
    >>> from monitor.summaries import NumericSummary
    >>> f = FeatureProfile("x", Kind.NUMERIC, NumericSummary())
    >>> schemas([Profile("m", "1", {"x": f})])
    {'m': {'x': <Kind.NUMERIC: 'numeric'>}}
    """
    out: dict[str, dict[str, Kind]] = {}
    for profile in profiles:
        kinds = out.setdefault(profile.model, {})
        for name, feature in profile.features.items():
            kinds[name] = feature.kind if kinds.get(name, feature.kind) is feature.kind \
                else Kind.CATEGORICAL
    return out
