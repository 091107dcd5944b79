"""Feature kinds and how a kind is inferred from a sample of values."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from monitor.errors import InputError, UsageError

PREDICTION = "prediction"


class Kind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    TEXT = "text"


# A string feature is text when its values are long and varied: on average at least this many
# characters or words, and mostly distinct; otherwise it is categorical.
TEXT_MIN_MEAN_CHARS = 25
TEXT_MIN_MEAN_WORDS = 4
TEXT_MIN_DISTINCT_SHARE = 0.3


def infer_kind(values: Sequence[Any]) -> Kind:
    """The kind of a feature from a sample of its raw values (None ignored).

    >>> infer_kind([1, 2.5, None]), infer_kind(["CA", "NY", "CA"]), infer_kind([True, False])
    (<Kind.NUMERIC: 'numeric'>, <Kind.CATEGORICAL: 'categorical'>, <Kind.CATEGORICAL: 'categorical'>)
    >>> infer_kind(["the delivery was late again and the box was damaged", "works great, thanks"])
    <Kind.TEXT: 'text'>
    """
    present = [v for v in values if v is not None and v == v]  # drop None and NaN
    if not present:
        return Kind.NUMERIC  # an all-null column: numeric until told otherwise (--schema)
    numbers = sum(1 for v in present if isinstance(v, int | float) and not isinstance(v, bool))
    if numbers >= 0.5 * len(present):
        return Kind.NUMERIC
    strings = [v for v in present if isinstance(v, str)]
    if not strings:
        return Kind.CATEGORICAL
    mean_chars = sum(map(len, strings)) / len(strings)
    mean_words = sum(len(s.split()) for s in strings) / len(strings)
    distinct = len(set(strings)) / len(strings)
    long_values = mean_chars >= TEXT_MIN_MEAN_CHARS or mean_words >= TEXT_MIN_MEAN_WORDS
    if long_values and (distinct >= TEXT_MIN_DISTINCT_SHARE or len(strings) < 10):
        return Kind.TEXT
    return Kind.CATEGORICAL


def parse_kind(name: str, value: Any) -> Kind:
    try:
        return Kind(str(value).strip().lower())
    except ValueError:
        raise UsageError(
            f"unknown kind for feature {name!r}: {value!r} (expected numeric, categorical or text)"
        ) from None


def load_schema_file(path: str | Path) -> dict[str, Kind]:
    """A feature -> kind mapping from a YAML or JSON file (JSON is YAML)."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"schema file not found ({p})") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read schema file {p}: {str(exc).splitlines()[0]}") from None
    if isinstance(data, dict) and isinstance(data.get("features"), dict):
        data = data["features"]
    if not isinstance(data, dict):
        raise InputError(f"schema file must map feature names to kinds ({p})")
    return {str(k): parse_kind(str(k), v) for k, v in data.items()}
