"""The words of an alert: which of an episode's failing checks says most plainly what changed,
and the one line a phone notification shows (pure).

>>> from monitor.drift.checks import Severity
>>> from monitor.drift.evaluate import Finding
>>> found = [Finding("age", "psi", Severity.CRITICAL, 0.41, 0.1, ""),
...          Finding("age", "mean_shift", Severity.CRITICAL, 1.02, 0.3, ""),
...          Finding("age", "ks", Severity.WARNING, 0.26, 0.2, "")]
>>> [f.check for f in plain_order(found)]
['mean_shift', 'psi', 'ks']
>>> summary(plain_order(found), {"mean": 51.0, "training_mean": 41.0})
'mean up 1.0 std vs training (psi 0.41, ks 0.26)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitor.drift.evaluate import Finding

# Plainest first: what an on-call engineer understands without knowing the statistics.
PLAIN_ORDER = (
    "no_profile", "missing_feature", "edge_record_rate", "null_rate", "type_mismatch_rate",
    "mean_shift", "out_of_range_rate", "novelty_rate", "unseen_language_rate", "language_tvd",
    "length_psi", "oov_rate", "trend", "psi", "chi2_p", "js", "ks", "wasserstein", "vocab_js",
    "unexpected_features",
)  # fmt: skip
_RANK = {check: i for i, check in enumerate(PLAIN_ORDER)}
OTHERS_SHOWN = 4  # further failing checks named in brackets after the lead


def plain_order(findings: Sequence[Finding]) -> list[Finding]:
    """Worst severity first, then the plainest check: the first is what an alert leads with."""
    return sorted(findings, key=lambda f: (-f.severity, _RANK.get(f.check, len(_RANK)), f.check))


def short(x: float | None) -> str:
    """Two significant digits, as a person reads them.

    >>> short(1.0), short(0.4123), short(12.6), short(1234.5), short(3e-7)
    ('1.0', '0.41', '13', '1234', '3.0e-07')
    """
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:.0f}"
    text = f"{x:#.2g}"
    return text[:-1] if text.endswith(".") else text


def percent(x: float) -> str:
    """A rate as a percentage with enough digits to tell small rates apart.

    >>> percent(0.12), percent(0.0123), percent(0.0004)
    ('12%', '1.2%', '0.04%')
    """
    p = 100 * x
    if p >= 10 or p == 0:
        return f"{p:.0f}%"
    if p >= 1:
        return f"{p:.1f}%"
    return f"{p:.2g}%"


def plain(finding: Finding, metrics: Mapping[str, Any]) -> str:
    """One finding in words (without the feature name)."""
    check, v, details = finding.check, finding.value, finding.details
    training = details.get("training_rate")
    if check == "mean_shift":
        mean, base = metrics.get("mean"), metrics.get("training_mean")
        direction = "down" if mean is not None and base is not None and mean < base else "up"
        return f"mean {direction} {short(v)} std vs training"
    if check == "null_rate":
        return f"{percent(v)} nulls (training {percent(training or 0.0)})"
    if check == "type_mismatch_rate":
        return f"{percent(v)} values of the wrong type (training {percent(training or 0.0)})"
    if check == "out_of_range_rate":
        low, high = metrics.get("training_min"), metrics.get("training_max")
        where = f" [{short(low)}, {short(high)}]" if low is not None and high is not None else ""
        return f"{percent(v)} of values outside the training range{where}"
    if check == "novelty_rate":
        shown = ", ".join(f"{value!r} x{n}" for value, n in details.get("new_values", [])[:3])
        return f"{percent(v)} values never seen in training" + (f" ({shown})" if shown else "")
    if check == "unseen_language_rate":
        return f"{percent(v)} of texts in languages not seen in training"
    if check == "language_tvd":
        return f"language mix changed ({percent(v)} of texts moved between languages)"
    if check == "length_psi":
        length, base = metrics.get("length_mean"), metrics.get("training_length_mean")
        if length is not None and base is not None:
            return f"text length {short(length)} chars on average (training {short(base)})"
    if check == "oov_rate":
        return f"{percent(v)} of words never seen in training"
    if check == "edge_record_rate":
        return f"{percent(v)} edge records (training {percent(training or 0.0)})"
    if check == "missing_feature":
        return "absent from every record of the window"
    if check == "unexpected_features":
        return f"{v:.0f} features not in the profile"
    if check == "trend":
        what = details.get("input", "mean")
        direction = "rise" if details.get("rising", True) else "fall"
        return (f"gradual {direction} of the {what} (Page-Hinkley {short(v)} > "
                f"{short(finding.threshold)})")
    if check in ("psi", "js", "chi2_p") and "new_values" in metrics:
        return f"category shares changed ({check} {short(v)})"
    if check == "vocab_js":
        return f"vocabulary changed (vocab_js {short(v)})"
    return f"distribution changed ({check} {short(v)})"


def summary(ordered: Sequence[Finding], metrics: Mapping[str, Any]) -> str:
    """The first finding (see `plain_order`) in words, then the others with their values."""
    lead, others = ordered[0], ordered[1:]
    named = [f"{f.check} {short(f.value)}" for f in others[:OTHERS_SHOWN]]
    if len(others) > OTHERS_SHOWN:
        named.append(f"+{len(others) - OTHERS_SHOWN} more")
    return plain(lead, metrics) + (f" ({', '.join(named)})" if named else "")
