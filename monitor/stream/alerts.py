"""Alert episodes: one alert per drifting feature, however many of its checks fail.

An episode is keyed by (model, version, feature, kind). `kind` is `drift` for a feature's
distribution and rate checks together; `trend`, `edge_record_rate`, `missing_feature`,
`unexpected_features` and `no_profile` are episodes of their own. Events of an episode, all under
one `alert_id`:

* `firing` when it opens (`previous_severity` null), and again each time its severity rises
  (an escalation: `previous_severity` says from what);
* `persistent` once, when it is still open after `persistent_windows` windows: the inputs have
  moved for good and a retrain or a new profile is due;
* `resolved` when every check of the episode has been clean for `resolve_after` windows
  (ten times that for `trend`, whose detector speaks only in the window it detects).

Every event lists the failing checks (value, threshold, severity); its severity is the worst
severity the episode has reached; its message leads with the plainest evidence.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from monitor.drift.checks import Severity
from monitor.drift.evaluate import MODEL_LEVEL, Finding, WindowReport
from monitor.errors import StateError
from monitor.ingest.timestamps import iso
from monitor.stream.evidence import plain_order, summary
from monitor.stream.trend import PageHinkley

EpisodeKey = tuple[str, str, str, str]  # model, version, feature ("" for the model), kind
DRIFT = "drift"
MODEL_CHECKS = frozenset({"edge_record_rate", "missing_feature", "unexpected_features"})
STATE_FORMAT = 2  # format 1 pickled the trend detectors: refused


@dataclass
class Alert:
    alert_id: str  # one per episode
    status: str  # firing | persistent | resolved
    severity: str  # the worst the episode has reached
    previous_severity: str | None  # set on an escalation (a `firing` event of an open episode)
    model: str
    version: str
    feature: str  # "" for a model-level episode
    episode: str  # drift | trend | edge_record_rate | missing_feature | unexpected_features | no_profile
    check: str  # the check the message leads with
    value: float | None  # ... its value and threshold
    threshold: float | None
    checks: list[dict[str, Any]]  # every failing check: check, value, threshold, severity
    window_start: str
    window_end: str
    since: str  # start of the episode's first window
    windows: int  # windows evaluated since the episode opened
    profile_id: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Episode:
    alert_id: str
    since: float
    severity: int
    checks: list[dict[str, Any]] = field(default_factory=list)  # the last failing ones
    lead: str = ""  # words of the last failing window
    windows: int = 0
    clear_windows: int = 0
    persistent_sent: bool = False


def alert_id(key: EpisodeKey, since: float) -> str:
    raw = "|".join((*key, repr(since))).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def episode_kind(finding: Finding) -> str:
    if finding.check == "trend" or finding.check in MODEL_CHECKS or finding.feature == MODEL_LEVEL:
        return finding.check
    return DRIFT


def check_entry(finding: Finding) -> dict[str, Any]:
    entry = {"check": finding.check, "value": finding.value, "threshold": finding.threshold,
             "severity": str(finding.severity)}
    if finding.details:
        entry["details"] = dict(finding.details)
    return entry


# Trend detection: Page-Hinkley on the window's signed shift of the mean in standard errors
# (about N(0, 1) without drift). Parameters measured by bench/detection.py: no false alarm
# in 1,000 no-drift windows, a 0 -> 0.12 std ramp over 50 windows found at window 32 (median).
TREND_DELTA = 0.5
TREND_THRESHOLD = 10.0
TREND_MIN_WINDOWS = 5
TREND_INPUTS = {"mean_z": "mean", "length_z": "length"}
TREND_HOLD = 10  # a trend episode resolves after TREND_HOLD * resolve_after quiet windows


class AlertTracker:
    """Turns each window's findings into alert events for one model/version."""

    def __init__(self, *, min_severity: Severity = Severity.WARNING, resolve_after: int = 2,
                 trend: bool = True, persistent_windows: int = 30) -> None:
        if resolve_after < 1:
            raise ValueError(f'"resolve_after" must be >= 1: {resolve_after}')
        if persistent_windows < 1:
            raise ValueError(f'"persistent_windows" must be >= 1: {persistent_windows}')
        self.min_severity = min_severity
        self.resolve_after = resolve_after
        self.trend = trend
        self.persistent_windows = persistent_windows
        self._episodes: dict[EpisodeKey, Episode] = {}
        self._detectors: dict[str, PageHinkley] = {}

    # -- read-only views ------------------------------------------------------------------------
    def open_count(self, model: str | None = None, version: str | None = None) -> int:
        """Open episodes (of one model/version when given)."""
        return sum(1 for k in self._episodes
                   if (model is None or k[0] == model) and (version is None or k[1] == version))

    def open_features(self, kind: str = DRIFT) -> list[str]:
        """Features with an open episode of this kind."""
        return sorted(k[2] for k in self._episodes if k[3] == kind)

    # -- the lifecycle --------------------------------------------------------------------------
    def close_all(self, when: float, reason: str) -> list[Alert]:
        """End every open episode (the model's profile was removed: nothing will clear them)."""
        events = []
        for key, episode in sorted(self._episodes.items()):
            model, version, feature, kind = key
            head = episode.checks[0] if episode.checks else {}
            events.append(Alert(
                episode.alert_id, "resolved", str(Severity(episode.severity)), None, model,
                version, feature, kind, head.get("check", kind), head.get("value"),
                head.get("threshold"), [dict(c) for c in episode.checks], iso(when), iso(when),
                iso(episode.since), episode.windows, "",
                f"[{model} v{version}] {feature or 'model'}: resolved: {reason} (episode since "
                f"{iso(episode.since)}, worst {Severity(episode.severity)})"))
        self._episodes.clear()
        return events

    def observe(self, report: WindowReport) -> list[Alert]:
        findings = [f for f in report.findings if f.severity >= self.min_severity]
        if self.trend and report.distribution_checks:
            findings.extend(self._trend_findings(report))
        failing: dict[EpisodeKey, list[Finding]] = {}
        for f in findings:
            failing.setdefault((report.model, report.version, f.feature, episode_kind(f)),
                               []).append(f)
        events: list[Alert] = []
        for key, found in failing.items():
            found = plain_order(found)
            worst = int(found[0].severity)
            episode = self._episodes.get(key)
            opened, previous = episode is None, None
            if episode is None:
                episode = self._episodes[key] = Episode(alert_id(key, report.start),
                                                        report.start, worst)
            elif worst > episode.severity:
                previous, episode.severity = episode.severity, worst
            episode.windows += 1
            episode.clear_windows = 0
            episode.checks = [check_entry(f) for f in found]
            feature = report.features.get(key[2])
            episode.lead = summary(found, feature.metrics if feature else {})
            if opened or previous is not None:
                events.append(self._event(report, key, episode, "firing", previous))
        for key in [k for k in self._episodes if k not in failing]:
            episode = self._episodes[key]
            episode.windows += 1
            if report.distribution_checks or key[3] == "missing_feature":
                episode.clear_windows += 1
            needed = self.resolve_after * (TREND_HOLD if key[3] == "trend" else 1)
            if episode.clear_windows >= needed:
                del self._episodes[key]
                events.append(self._event(report, key, episode, "resolved"))
        for key, episode in self._episodes.items():
            if episode.windows >= self.persistent_windows and not episode.persistent_sent:
                episode.persistent_sent = True
                events.append(self._event(report, key, episode, "persistent"))
        return events

    def _event(self, report: WindowReport, key: EpisodeKey, episode: Episode, status: str,
               previous: int | None = None) -> Alert:
        model, version, feature, kind = key
        severity = Severity(episode.severity)
        head = episode.checks[0] if episode.checks else {}
        who = f"[{model} v{version}] {feature or 'model'}"
        if status == "firing" and previous is not None:
            message = f"{who}: now {severity} (was {Severity(previous)}): {episode.lead}"
        elif status == "firing":
            message = f"{who}: {episode.lead}, {severity}"
        elif status == "persistent":
            message = (f"{who}: still drifting after {episode.windows} windows (since "
                       f"{iso(episode.since)}): the inputs have moved for good, a retrain or a "
                       f"new profile is due; {episode.lead}, {severity}")
        else:
            clean = episode.clear_windows
            message = (f"{who}: resolved, {clean} clean windows in a row (episode since "
                       f"{iso(episode.since)}, worst {severity}; last: {episode.lead})")
        return Alert(episode.alert_id, status, str(severity),
                     str(Severity(previous)) if previous is not None else None,
                     model, version, feature, kind, head.get("check", kind), head.get("value"),
                     head.get("threshold"), [dict(c) for c in episode.checks],
                     iso(report.start), iso(report.end), iso(episode.since), episode.windows,
                     report.profile_id, message)

    def _trend_findings(self, report: WindowReport) -> list[Finding]:
        out: list[Finding] = []
        for name, feature in report.features.items():
            for metric, label in TREND_INPUTS.items():
                value = feature.metrics.get(metric)
                if value is None:
                    continue
                detector = self._detectors.get(f"{name}/{metric}")
                if detector is None:
                    detector = self._detectors[f"{name}/{metric}"] = PageHinkley(
                        min_instances=TREND_MIN_WINDOWS, delta=TREND_DELTA,
                        threshold=TREND_THRESHOLD, alpha=1.0, mode="both")
                detector.update(float(value))
                if detector.drift_detected:
                    # The value shown is the one that fired: the Page-Hinkley statistic.
                    out.append(Finding(
                        name, "trend", Severity.WARNING, detector.statistic, TREND_THRESHOLD,
                        f"{name}: gradual change of the {label} (Page-Hinkley statistic "
                        f"{detector.statistic:.3g} > {TREND_THRESHOLD:g}; this window "
                        f"{value:+.2f} standard errors)",
                        {"input": label, "rising": detector.rising,
                         "window_shift": float(value)}))
        return out

    # -- checkpointing: plain JSON, never code ----------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT,
                "episodes": [[list(k), asdict(e)] for k, e in self._episodes.items()],
                "detectors": {name: d.to_state() for name, d in self._detectors.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        """Load `to_state` output; an older or unknown format is refused (StateError), and
        nothing in it is run: the state is read as numbers and strings only."""
        if not state:
            return
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            found = state.get("format", 1) if isinstance(state, dict) else type(state).__name__
            raise StateError(f"alert tracker state format {found!r}, expected {STATE_FORMAT} "
                             f"(format 1 held pickled detectors and is not loaded)")
        try:
            episodes = {}
            for key, data in state["episodes"]:
                if len(key) != 4 or not all(isinstance(part, str) for part in key):
                    raise ValueError(f"bad episode key {key!r}")
                episodes[(key[0], key[1], key[2], key[3])] = Episode(**data)
            detectors = {str(name): PageHinkley.from_state(d)
                         for name, d in state["detectors"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"alert tracker state is malformed: {exc}") from None
        self._episodes, self._detectors = episodes, detectors
