"""Mergeable per-feature summaries: a training profile and a window of traffic are both these."""

from monitor.summaries.categorical import CategoricalSummary
from monitor.summaries.numeric import NumericSummary
from monitor.summaries.text import TextSummary

Summary = NumericSummary | CategoricalSummary | TextSummary

__all__ = ["CategoricalSummary", "NumericSummary", "Summary", "TextSummary", "summary_from_dict"]


def summary_from_dict(data: dict) -> Summary:
    """Load any summary from its `to_dict()` form, dispatching on its `kind`."""
    from monitor.errors import ProfileError

    kind = data.get("kind")
    for cls in (NumericSummary, CategoricalSummary, TextSummary):
        if cls.kind == kind:
            return cls.from_dict(data)
    raise ProfileError(f"unknown summary kind {kind!r}; expected numeric, categorical or text")
