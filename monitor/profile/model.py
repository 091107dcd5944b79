"""The training profile: per-feature training summaries, calibrated thresholds and provenance.

A profile is a versioned, deterministic JSON document. Its `profile_id` is a hash of its content,
so an alert or a metric that cites it names exactly one baseline.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.drift.nulls import NullCurve
from monitor.errors import ProfileError
from monitor.ingest.schema import Kind
from monitor.summaries import (
    NumericSummary,
    Summary,
    TextSummary,
    summary_from_dict,
)

FORMAT = "drift-monitor/profile"
FORMAT_VERSION = 3  # 3: null curves per check (were thresholds at one window size);
# 2: exact numeric moments (centre, quantum, integer sums); bounded values
TEXT_PROFILE_SAMPLE = 5_000  # training texts analysed for language and vocabulary


@dataclass
class FeatureProfile:
    """What training looked like for one feature, and the thresholds calibrated on it."""

    name: str
    kind: Kind
    summary: Summary
    # Check -> its calibrated null quantiles by effective size (monitor.drift.nulls).
    nulls: dict[str, NullCurve] = field(default_factory=dict)
    # Numeric and text length: start index (into the histogram) of each PSI/JS bin.
    psi_bins: list[int] = field(default_factory=list)
    # Text only: languages and top tokens of the training sample of texts.
    language_counts: dict[str, int] = field(default_factory=dict)
    vocabulary: dict[str, int] = field(default_factory=dict)
    vocabulary_other: int = 0  # training tokens outside `vocabulary`
    # Categorical only: Good-Turing estimate of the share of values unseen in training.
    unseen_mass: float = 0.0

    @property
    def text_sample(self) -> int:
        """Training texts analysed for language and vocabulary (TEXT_PROFILE_SAMPLE at most)."""
        return sum(self.language_counts.values())

    @property
    def languages(self) -> dict[str, float]:
        """Language shares of the training sample of texts."""
        total = self.text_sample
        return {k: v / total for k, v in self.language_counts.items()} if total else {}

    @property
    def language_singletons(self) -> int:
        """Languages seen once in the training sample (Good-Turing: their count over the
        sample estimates the share of texts in a language never seen)."""
        return sum(1 for v in self.language_counts.values() if v == 1)

    @property
    def far_bounds(self) -> tuple[float, float] | None:
        """Numeric values outside these bounds make an edge record: more than one training
        range (max - min) beyond the training min or max."""
        s = self.summary
        if not isinstance(s, NumericSummary) or s.count == 0:
            return None
        span = max(s.max - s.min, 1e-9 * max(1.0, abs(s.max)), 1e-12)
        return s.min - span, s.max + span

    def to_dict(self) -> dict[str, Any]:
        summary = (self.summary.to_dict(include_sample=False)
                   if isinstance(self.summary, TextSummary) else self.summary.to_dict())
        data: dict[str, Any] = {"kind": str(self.kind), "summary": summary,
                                "nulls": {k: c.to_dict() for k, c in sorted(self.nulls.items())}}
        if self.psi_bins:
            data["psi_bins"] = list(self.psi_bins)
        if self.kind is Kind.TEXT:
            data["language_counts"] = dict(sorted(self.language_counts.items()))
            data["vocabulary"] = dict(sorted(self.vocabulary.items()))
            data["vocabulary_other"] = self.vocabulary_other
        if self.kind is Kind.CATEGORICAL:
            data["unseen_mass"] = self.unseen_mass
        return data

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> FeatureProfile:
        try:
            kind = Kind(data["kind"])
            summary = summary_from_dict(data["summary"])
            return cls(
                name=name, kind=kind, summary=summary,
                nulls={str(k): NullCurve.from_dict(v) for k, v in data.get("nulls", {}).items()},
                psi_bins=[int(i) for i in data.get("psi_bins", [])],
                language_counts={str(k): int(v)
                                 for k, v in data.get("language_counts", {}).items()},
                vocabulary={str(k): int(v) for k, v in data.get("vocabulary", {}).items()},
                vocabulary_other=int(data.get("vocabulary_other", 0)),
                unseen_mass=float(data.get("unseen_mass", 0.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"malformed profile entry for feature {name!r}: {exc!r}") from None


@dataclass
class Profile:
    model: str
    version: str
    features: dict[str, FeatureProfile]
    source: dict[str, Any] = field(default_factory=dict)
    tool_version: str = ""
    window_size: int = 1000
    false_alarm_rate: float = 1e-3
    edge_record_rate: float = 0.0
    profile_id: str = ""

    @property
    def schema(self) -> dict[str, Kind]:
        return {name: f.kind for name, f in self.features.items()}

    @property
    def label(self) -> str:
        return f"{self.model}-{self.version}"

    def body(self) -> dict[str, Any]:
        """Everything but the id, in a canonical order."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "version": self.version,
            "tool_version": self.tool_version,
            "source": dict(sorted(self.source.items())),
            "schema": {n: str(k) for n, k in sorted(self.schema.items())},
            "window_size": self.window_size,
            "false_alarm_rate": self.false_alarm_rate,
            "edge_record_rate": self.edge_record_rate,
            "features": {n: f.to_dict() for n, f in sorted(self.features.items())},
        }

    def compute_id(self) -> str:
        return "sha256:" + hashlib.sha256(_canonical(self.body())).hexdigest()[:16]

    def to_json(self) -> bytes:
        body = self.body()
        body["profile_id"] = self.profile_id or self.compute_id()
        return json.dumps(body, indent=1, sort_keys=True, allow_nan=False).encode() + b"\n"

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_bytes(self.to_json())
        tmp.replace(p)  # readers (the worker) never see a half-written profile
        return p

    @classmethod
    def from_json(cls, raw: bytes | str, *, where: str = "profile") -> Profile:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{where} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ProfileError(f"{where} is not a drift-monitor profile (format {FORMAT!r} expected)")
        got = data.get("format_version")
        if got != FORMAT_VERSION:
            raise ProfileError(f"{where} has profile format version {got!r}; this drift-monitor "
                               f"reads version {FORMAT_VERSION}: rebuild the profile")
        try:
            features = {n: FeatureProfile.from_dict(n, f) for n, f in data["features"].items()}
            profile = cls(
                model=str(data["model"]), version=str(data["version"]), features=features,
                source=dict(data.get("source", {})), tool_version=str(data.get("tool_version", "")),
                window_size=int(data["window_size"]),
                false_alarm_rate=float(data["false_alarm_rate"]),
                edge_record_rate=float(data.get("edge_record_rate", 0.0)),
                profile_id=str(data.get("profile_id", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"{where} is malformed: {exc!r}") from None
        expected = profile.compute_id()
        if profile.profile_id and profile.profile_id != expected:
            raise ProfileError(f"{where} was edited after it was built: its profile_id "
                               f"{profile.profile_id} does not match its content ({expected})")
        profile.profile_id = expected
        return profile

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            raise ProfileError(f"profile not found ({p})") from None
        except OSError as exc:
            raise ProfileError(f"cannot read profile {p}: {exc.strerror}") from None
        return cls.from_json(raw, where=f"profile {p}")


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def empty_summary(feature: FeatureProfile) -> Summary:
    """A window summary for this feature: same edges, quantisation frame, vocabulary and
    bounds as the training one."""
    return feature.summary.empty_like()


def coarse(histogram: np.ndarray, starts: list[int]) -> np.ndarray:
    """Histogram counts regrouped into the PSI bins that begin at `starts`."""
    if not starts:
        return histogram
    return np.add.reduceat(histogram, starts)
