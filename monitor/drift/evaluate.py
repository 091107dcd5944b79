"""compare(window, profile): metrics per feature and the findings they raise (pure).

A finding is a check whose value crossed its threshold (warning, or critical when far over), a
significant difference under its effect-size floor (info), a window too small for a check at the
false-alarm budget (info, with the size that would do), or a seed rule that always reports
(values outside the training range, unseen categories). The checks are those of
`monitor.drift.registry`; nothing here names one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor.drift.checks import CheckInput, Limit, Severity, over
from monitor.drift.metrics import feature_metrics
from monitor.drift.nulls import rate_bound
from monitor.drift.registry import check_alpha, checks_for
from monitor.ingest.schema import Kind
from monitor.profile.language import language_counts
from monitor.profile.model import FeatureProfile, Profile
from monitor.summaries import Summary, TextSummary
from monitor.summaries.window import WindowSummary

MODEL_LEVEL = ""  # the `feature` of a finding about the whole model
LanguageCounter = Callable[[Iterable[str]], Counter[str]]
# feature (or "*") -> check -> fixed threshold, overriding the calibrated one; the key
# "<check>_floor" sets that check's effect-size floor instead.
Overrides = dict[str, dict[str, float]]
FLOOR_SUFFIX = "_floor"
SAMPLE_SIZE = "sample_size"  # the info finding of a window too small for some checks
EDGE_FLOOR = 0.001  # edge records: an excess over the training rate smaller than this is info


@dataclass(frozen=True)
class Finding:
    feature: str
    check: str
    severity: Severity
    value: float
    threshold: float | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "check": self.check, "severity": str(self.severity),
                "value": self.value, "threshold": self.threshold, "message": self.message,
                **({"details": self.details} if self.details else {})}


@dataclass
class FeatureReport:
    name: str
    kind: Kind
    metrics: dict[str, Any]
    thresholds: dict[str, float]
    findings: list[Finding]
    # check -> smallest effect found with 80% power at this window's size (mean_shift: in std)
    detectable: dict[str, float] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.OK)

    @property
    def worst_check(self) -> str:
        worst = max(self.findings, key=lambda f: f.severity, default=None)
        return worst.check if worst else ""


@dataclass
class WindowReport:
    model: str
    version: str
    profile_id: str
    start: float
    end: float
    records: int
    invalid: int
    late: int
    edge_record_rate: float
    missing_features: list[str]
    unexpected_features: list[str]
    features: dict[str, FeatureReport]
    model_findings: list[Finding]
    distribution_checks: bool = True
    dropped_values: int = 0  # counted but not kept in the window's bounded state

    @property
    def findings(self) -> list[Finding]:
        out = list(self.model_findings)
        for report in self.features.values():
            out.extend(report.findings)
        return out

    @property
    def severity(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.OK)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "version": self.version, "profile_id": self.profile_id,
            "window_start": self.start, "window_end": self.end,
            "records": self.records, "invalid_records": self.invalid, "late_records": self.late,
            "edge_record_rate": self.edge_record_rate,
            "missing_features": self.missing_features,
            "unexpected_features": self.unexpected_features,
            "distribution_checks": self.distribution_checks,
            "dropped_values": self.dropped_values,
            "severity": str(self.severity),
            "features": {
                n: {"kind": str(r.kind), "severity": str(r.severity), "metrics": r.metrics,
                    "thresholds": r.thresholds,
                    **({"detectable": r.detectable} if r.detectable else {})}
                for n, r in self.features.items()},
            "findings": [f.to_dict() for f in self.findings],
        }


def compare(window: WindowSummary, profile: Profile, *, distribution_checks: bool = True,
            overrides: Overrides | None = None,
            detect_languages: LanguageCounter = language_counts) -> WindowReport:
    features = {
        name: compare_feature(profile, profile.features[name], summary,
                              distribution_checks=distribution_checks,
                              overrides=_overrides_for(overrides, name),
                              detect_languages=detect_languages)
        for name, summary in window.features.items()
    }
    return WindowReport(
        model=profile.model, version=profile.version, profile_id=profile.profile_id,
        start=window.start, end=window.end, records=window.records, invalid=window.invalid,
        late=window.late,
        edge_record_rate=window.edge_records / window.records if window.records else 0.0,
        missing_features=window.missing_features,
        unexpected_features=window.unexpected_features,
        features=features,
        model_findings=model_findings(window, profile),
        distribution_checks=distribution_checks,
        dropped_values=sum(window.dropped.values()),
    )


def _overrides_for(overrides: Overrides | None, name: str) -> dict[str, float]:
    if not overrides:
        return {}
    return {**overrides.get("*", {}), **overrides.get(name, {})}


def check_input(feature: FeatureProfile, summary: Summary,
                detect_languages: LanguageCounter = language_counts) -> CheckInput:
    """What the checks read; a text feature's sampled texts are analysed here, once."""
    if isinstance(summary, TextSummary):
        return CheckInput(feature, summary, detect_languages(summary.sample),
                          summary.token_counts())
    return CheckInput(feature, summary)


def compare_feature(profile: Profile, feature: FeatureProfile, summary: Summary, *,
                    distribution_checks: bool = True, overrides: dict[str, float] | None = None,
                    detect_languages: LanguageCounter = language_counts) -> FeatureReport:
    inp = check_input(feature, summary, detect_languages)
    metrics = feature_metrics(inp)
    findings: list[Finding] = []
    thresholds: dict[str, float] = {}
    detectable: dict[str, float] = {}
    too_small: dict[str, Limit] = {}
    overrides = overrides or {}
    alpha = check_alpha(feature.kind, profile.false_alarm_rate)
    name = feature.name
    for check_name, check in checks_for(feature.kind).items():
        fixed = overrides.get(check_name)
        limit = (Limit.override(fixed) if fixed is not None else
                 check.limit(inp, alpha, overrides.get(check_name + FLOOR_SUFFIX)))
        thresholds[check_name] = limit.threshold
        if check.distribution and not distribution_checks:
            continue
        value = metrics.get(check_name)
        if value is not None and not limit.decidable:
            too_small[check_name] = limit
            continue
        power = check.detectable(limit, inp)
        if power is not None:
            detectable[check_name] = power
        severity = check.assess(value, limit, inp)
        if severity > Severity.OK and value is not None:
            message, details = check.message(name, float(value), limit, severity, inp)
            findings.append(Finding(name, check_name, severity, float(value), limit.threshold,
                                    message, details))
    if too_small:
        findings.append(_too_small(name, too_small, inp))
    return FeatureReport(name, feature.kind, metrics, thresholds, findings, detectable)


def _too_small(feature: str, limits: dict[str, Limit], inp: CheckInput) -> Finding:
    """One info finding: these checks cannot decide at the false-alarm budget here."""
    check = checks_for(inp.feature.kind)[next(iter(limits))]
    n, N = inp.sizes(check.basis)
    needs = {c: lim.min_size for c, lim in limits.items()}
    sizes = [v for v in needs.values() if v is not None]
    if sizes:
        wants = ", ".join(f"{c} {v:,}" for c, v in needs.items() if v is not None)
        advice = f"the smallest windows that would do: {wants}"
    else:
        advice = ""
    never = [c for c, v in needs.items() if v is None]
    if never:
        advice += ("; " if advice else "") + (
            f"{', '.join(never)}: no window can, against a profile of {N:,}: rebuild it from "
            f"more training data")
    return Finding(feature, SAMPLE_SIZE, Severity.INFO, float(n),
                   float(min(sizes)) if sizes else None,
                   f"{feature}: {n:,} is too small a sample for {', '.join(limits)} at the "
                   f"false-alarm budget ({advice})", {"needs": needs})


def model_findings(window: WindowSummary, profile: Profile) -> list[Finding]:
    findings: list[Finding] = []
    if window.records == 0:
        return findings
    rate = window.edge_records / window.records
    p0 = profile.edge_record_rate
    rows = int(profile.source.get("rows", 0)) or 100_000
    bound = rate_bound(p0 * rows, rows, window.records, profile.false_alarm_rate)
    threshold = max(bound, p0 + EDGE_FLOOR)
    severity = Severity.OK
    if over(rate, threshold):
        severity = (Severity.CRITICAL if rate >= 2 * threshold and rate - p0 >= 0.05
                    else Severity.WARNING)
    if severity > Severity.OK:
        findings.append(Finding(
            MODEL_LEVEL, "edge_record_rate", severity, rate, threshold,
            f"{rate:.2%} edge records (>= 95% of features null, or a value far outside the "
            f"training range) > {threshold:.2%} (training {p0:.2%})",
            {"count": window.edge_records}))
    for name in window.missing_features:
        findings.append(Finding(name, "missing_feature", Severity.WARNING, 1.0, 0.0,
                                f"{name}: feature absent from every record of the window"))
    unexpected = window.unexpected_features
    if unexpected:
        shown = ", ".join(unexpected[:10]) + (" ..." if len(unexpected) > 10 else "")
        findings.append(Finding(MODEL_LEVEL, "unexpected_features", Severity.INFO,
                                float(len(unexpected)), 0.0,
                                f"{len(unexpected)} features not in the profile: {shown}",
                                {"features": unexpected[:50]}))
    return findings
