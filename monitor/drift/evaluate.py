"""compare(window, profile): metrics per feature and the findings they raise (pure).

A finding is a check whose value crossed its threshold (warning, or critical when far over),
or a seed rule that always reports (values outside the training range, unseen categories).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor.drift.checks import (
    CALIBRATED,
    RATE_CHECKS,
    SAMPLE_CHECKS,
    Severity,
    check_alpha,
    rate_bound,
    rate_severity,
    scaled_threshold,
    statistic_severity,
)
from monitor.drift.metrics import categorical_metrics, numeric_metrics, oov_baseline, text_metrics
from monitor.ingest.schema import Kind
from monitor.profile.language import language_counts
from monitor.profile.model import TEXT_PROFILE_SAMPLE, FeatureProfile, Profile
from monitor.summaries import CategoricalSummary, NumericSummary, Summary, TextSummary
from monitor.summaries.window import WindowSummary

MODEL_LEVEL = ""  # the `feature` of a finding about the whole model
LanguageCounter = Callable[[Iterable[str]], Counter[str]]
# feature (or "*") -> check -> fixed threshold, overriding the calibrated one
Overrides = dict[str, dict[str, float]]


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
            "severity": str(self.severity),
            "features": {
                n: {"kind": str(r.kind), "severity": str(r.severity), "metrics": r.metrics,
                    "thresholds": r.thresholds}
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
    )


def _overrides_for(overrides: Overrides | None, name: str) -> dict[str, float]:
    if not overrides:
        return {}
    return {**overrides.get("*", {}), **overrides.get(name, {})}


def feature_metrics(feature: FeatureProfile, summary: Summary,
                    detect_languages: LanguageCounter = language_counts) -> dict[str, Any]:
    if isinstance(summary, NumericSummary):
        return numeric_metrics(feature, summary)
    if isinstance(summary, CategoricalSummary):
        return categorical_metrics(feature, summary)
    assert isinstance(summary, TextSummary)
    return text_metrics(feature, summary, detect_languages(summary.sample), summary.token_counts())


def sample_size_for(check: str, metrics: dict[str, Any]) -> int:
    """The number of values a check's statistic was computed on."""
    if check in SAMPLE_CHECKS:
        return int(metrics.get("sampled", 0))
    return int(metrics.get("count", 0))


def calibrated_size(check: str, feature: FeatureProfile, profile: Profile) -> int:
    if check in SAMPLE_CHECKS:
        summary = feature.summary
        sample = summary.sample_size if isinstance(summary, TextSummary) else profile.window_size
        return min(profile.window_size, sample)
    return profile.window_size


def compare_feature(profile: Profile, feature: FeatureProfile, summary: Summary, *,
                    distribution_checks: bool = True, overrides: dict[str, float] | None = None,
                    detect_languages: LanguageCounter = language_counts) -> FeatureReport:
    metrics = feature_metrics(feature, summary, detect_languages)
    findings: list[Finding] = []
    thresholds: dict[str, float] = {}
    overrides = overrides or {}
    alpha = check_alpha(feature.kind, profile.false_alarm_rate)
    name = feature.name
    for check, exponent in CALIBRATED[feature.kind].items():
        value = metrics.get(check)
        calibrated = feature.thresholds.get(check)
        if check in overrides:
            threshold = overrides[check]
        elif calibrated is None:
            continue
        else:
            baseline = oov_baseline(feature) if check == "oov_rate" else 0.0
            threshold = scaled_threshold(calibrated, exponent,
                                         calibrated_size(check, feature, profile),
                                         sample_size_for(check, metrics), baseline)
        thresholds[check] = threshold
        if not distribution_checks or value is None:
            continue
        severity = statistic_severity(check, value, threshold,
                                      oov_baseline(feature) if check == "oov_rate" else 0.0)
        if severity > Severity.OK:
            op = "<" if check == "chi2_p" else ">"
            findings.append(Finding(name, check, severity, float(value), threshold,
                                    f"{name}: {check} {value:.4g} {op} {threshold:.4g}"))
    for check in RATE_CHECKS[feature.kind]:
        finding = _rate_finding(profile, feature, summary, metrics, check, alpha,
                                overrides.get(check))
        thresholds[check] = finding[1]
        if finding[0] is not None:
            findings.append(finding[0])
    return FeatureReport(name, feature.kind, metrics, thresholds, findings)


def _training_rate(profile: Profile, feature: FeatureProfile, check: str) -> float:
    t = feature.summary
    # Never below one in the training count: a training set without nulls still does not
    # prove that a single null is drift.
    if check == "null_rate":
        return max(t.nulls / t.records, 1.0 / (t.records + 1)) if t.records else 0.0
    if check == "type_mismatch_rate":
        return max(t.mismatches / t.records, 1.0 / (t.records + 1)) if t.records else 0.0
    if check == "out_of_range_rate":
        # A new value falls outside the min and max of N training values with chance 2/(N+1).
        return 2.0 / (t.count + 1)
    # Unseen mass (Good-Turing), never below one value in the training count: a sample of N
    # shows nothing rarer than about 1/N.
    if check == "novelty_rate":
        return max(feature.unseen_mass, 1.0 / (t.count + 1))
    if check == "unseen_language_rate":
        return max(feature.language_singletons, 1.0 / (TEXT_PROFILE_SAMPLE + 1))
    raise KeyError(check)


def _rate_finding(profile: Profile, feature: FeatureProfile, summary: Summary,
                  metrics: dict[str, Any], check: str, alpha: float,
                  override: float | None) -> tuple[Finding | None, float]:
    rate = metrics.get(check)
    if check in ("null_rate", "type_mismatch_rate"):
        n = summary.records
    elif check == "unseen_language_rate":
        n = int(metrics.get("sampled", 0))
    else:
        n = int(metrics.get("count", 0))
    p0 = _training_rate(profile, feature, check)
    bound = override if override is not None else rate_bound(p0, n, alpha)
    if rate is None or n == 0:
        return None, bound
    count = round(rate * n)
    severity = rate_severity(check, rate, bound, p0, count)
    if severity is Severity.OK:
        return None, bound
    name = feature.name
    details: dict[str, Any] = {"count": count, "training_rate": p0}
    if check == "novelty_rate":
        details["new_values"] = metrics.get("new_values", [])
        shown = ", ".join(f"{v!r} x{n}" for v, n in details["new_values"])
        message = f"{name}: {count} values never seen in training ({rate:.2%}): {shown}"
    elif check == "out_of_range_rate":
        message = (f"{name}: {count} values outside the training range "
                   f"[{metrics['training_min']:.4g}, {metrics['training_max']:.4g}] ({rate:.2%}; "
                   f"window min {metrics['min']:.4g}, max {metrics['max']:.4g})")
    else:
        message = f"{name}: {check} {rate:.2%} > {bound:.2%} (training {p0:.2%})"
    return Finding(name, check, severity, float(rate), bound, message, details), bound


def model_findings(window: WindowSummary, profile: Profile) -> list[Finding]:
    findings: list[Finding] = []
    if window.records == 0:
        return findings
    alpha = profile.false_alarm_rate
    rate = window.edge_records / window.records
    p0 = profile.edge_record_rate
    bound = rate_bound(max(p0, 1.0 / 100_000), window.records, alpha)
    severity = rate_severity("edge_record_rate", rate, bound, p0, window.edge_records)
    if severity > Severity.OK:
        findings.append(Finding(
            MODEL_LEVEL, "edge_record_rate", severity, rate, bound,
            f"{rate:.2%} edge records (>= 95% of features null, or a value far outside the "
            f"training range) > {bound:.2%} (training {p0:.2%})",
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
