"""Build a training profile from a data file, in two streaming passes with bounded memory.

Pass 1 counts rows, finds each numeric column's exact min and max, counts label values (capped),
and keeps a uniform sample of rows (bottom-k on seeded random keys). The sample fixes the kinds,
the histogram edges and, later, the calibration windows. Pass 2 folds every row into the same
summaries that live windows use. Same data and options give a byte-identical profile.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor import __version__
from monitor.errors import InputError, UsageError
from monitor.ingest.columns import NumericColumn, label_column, numeric_column
from monitor.ingest.readers import ReadStats, check_readable, file_sha256, read_chunks
from monitor.ingest.schema import Kind, infer_kind
from monitor.profile.calibrate import OTHER_TOKEN, TextSample, calibrate
from monitor.profile.language import detect
from monitor.profile.model import TEXT_PROFILE_SAMPLE, FeatureProfile, Profile
from monitor.summaries import CategoricalSummary, NumericSummary, TextSummary
from monitor.summaries.bounds import tally_clipped
from monitor.summaries.categorical import unseen_limit_for
from monitor.summaries.exact import frame_for
from monitor.summaries.text import DEFAULT_SAMPLE_SIZE, tokens
from monitor.summaries.window import WindowSummary

LABEL_COUNT_CAP = 200_000  # distinct values counted per column before it is called high-cardinality
TEXT_VOCABULARY = 1_000  # top tokens kept per text feature
TEXT_BINS = 20
MIN_WINDOW = 10  # smallest calibration window, and so the fewest training rows


@dataclass
class BuildOptions:
    model: str
    version: str
    predictions: tuple[str, ...] = ()
    schema: dict[str, Kind] = field(default_factory=dict)
    window_size: int = 1000
    false_alarm_rate: float = 1e-3
    max_categories: int = 1000
    bins: int = 100
    sample_rows: int = 50_000
    calibration_windows: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.model:
            raise UsageError("--model must not be empty")
        if not self.version:
            raise UsageError("--version must not be empty")
        for name, value, low in (("window size", self.window_size, MIN_WINDOW),
                                 ("max categories", self.max_categories, 1),
                                 ("bins", self.bins, 2), ("sample rows", self.sample_rows, 100),
                                 ("calibration windows", self.calibration_windows, 20)):
            if value < low:
                raise UsageError(f"{name} must be >= {low} ({value})")
        if not 0 < self.false_alarm_rate < 1:
            raise UsageError(f"false alarm rate must be in (0, 1) ({self.false_alarm_rate})")


Progress = Callable[[str, int], None]


class _FirstPass:
    def __init__(self, sample_rows: int, seed: int) -> None:
        self.rows = 0
        self.columns: list[str] = []
        self.minmax: dict[str, tuple[float, float]] = {}
        self.labels: dict[str, Counter[str]] = {}
        self.high_cardinality: set[str] = set()
        self.k = sample_rows
        self.rng = np.random.default_rng(seed)
        self.keys = np.zeros(0)
        self.sample: dict[str, list[Any]] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        n = _chunk_rows(chunk)
        for name in chunk:
            if name not in self.sample:
                self.columns.append(name)
                self.sample[name] = [None] * len(self.keys)
        for name in self.columns:
            raw = chunk.get(name)
            if raw is None:
                continue
            self._minmax(name, raw)
            self._count_labels(name, raw)
        self._sample(chunk, n)
        self.rows += n

    def _minmax(self, name: str, raw: Any) -> None:
        if isinstance(raw, list) and not ({int, float} & set(map(type, raw))):
            return
        values = numeric_column(raw).values
        finite = values[np.isfinite(values)]
        if finite.size:
            lo, hi = self.minmax.get(name, (np.inf, -np.inf))
            self.minmax[name] = (min(lo, float(finite.min())), max(hi, float(finite.max())))

    def _count_labels(self, name: str, raw: Any) -> None:
        if name in self.high_cardinality or isinstance(raw, NumericColumn | np.ndarray):
            return
        counter = self.labels.setdefault(name, Counter())
        tally, _ = tally_clipped(v for v in label_column(raw).values if v is not None)
        counter.update(tally)  # clipped values: a summary keeps nothing longer
        if len(counter) > LABEL_COUNT_CAP:
            self.high_cardinality.add(name)

    def _sample(self, chunk: dict[str, Any], n: int) -> None:
        keys = self.rng.random(n)
        limit = np.partition(self.keys, self.k - 1)[self.k - 1] if len(self.keys) >= self.k else 1.0
        chosen = np.flatnonzero(keys < limit)
        if chosen.size == 0:
            return
        self.keys = np.concatenate((self.keys, keys[chosen]))
        for name in self.columns:
            self.sample[name].extend(_pick(chunk.get(name), chosen))
        if len(self.keys) > 2 * self.k:
            self._compact()

    def _compact(self) -> None:
        order = np.argsort(self.keys, kind="stable")[: self.k]
        order.sort()
        self.keys = self.keys[order]
        for name in self.columns:
            column = self.sample[name]
            self.sample[name] = [column[i] for i in order]


def _chunk_rows(chunk: dict[str, Any]) -> int:
    for raw in chunk.values():
        return raw.size if isinstance(raw, NumericColumn) else len(raw)
    return 0


def _pick(raw: Any, index: np.ndarray) -> list[Any]:
    if raw is None:
        return [None] * len(index)
    if isinstance(raw, NumericColumn):
        values = raw.values[index].tolist()
        return [None if null else v for v, null in zip(values, raw.null[index].tolist(), strict=True)]
    if isinstance(raw, np.ndarray):
        return raw[index].tolist()
    return [raw[i] for i in index]


def numeric_edges(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Histogram edges: one bin per value for discrete data, else `bins` quantile bins; the first
    and last edges are the exact training min and max.

    >>> numeric_edges(np.array([0., 1., 1., 2.]), 0., 2., 10).tolist()
    [0.0, 0.5, 1.5, 2.0]
    """
    distinct = np.unique(values)
    if distinct.size == 0:
        return np.array([lo, hi])
    if distinct.size <= bins:
        edges = np.concatenate(([lo], (distinct[:-1] + distinct[1:]) / 2, [hi]))
    else:
        edges = np.quantile(values, np.linspace(0, 1, bins + 1))
        edges[0], edges[-1] = lo, hi
    return np.unique(edges) if distinct.size > 1 else np.array([lo, hi])


def psi_bins(histogram: np.ndarray, groups: int = 10) -> list[int]:
    """Start indices of about `groups` bins of equal training mass. Values below the training min
    count in the first, values above the max in the last: a new extreme value is not a bin of its
    own (whose training share would be zero), so PSI and JS have the same null for a window as
    for the training sample; far-off values are the out-of-range and edge-record checks' job.

    >>> psi_bins(np.array([0, 1, 1, 1, 1, 0]), groups=2)
    [0, 3]
    """
    interior = histogram[1:-1].astype(float)
    total = interior.sum()
    if total == 0 or len(interior) <= groups:
        return [0, *range(2, len(histogram) - 1)]
    before = (np.cumsum(interior) - interior) / total
    group = np.minimum((before * groups).astype(int), groups - 1)
    starts = 1 + np.flatnonzero(np.diff(group, prepend=-1))
    return [0, *starts.tolist()[1:]]


def _empty_feature(name: str, kind: Kind, first: _FirstPass, opts: BuildOptions,
                   unseen_limit: int) -> FeatureProfile:
    values = first.sample[name]
    lo, hi = first.minmax.get(name, (0.0, 0.0))
    if kind is Kind.NUMERIC:
        finite = numeric_column(values).values
        finite = finite[np.isfinite(finite)]
        center, quantum = frame_for(finite)
        return FeatureProfile(name, kind, NumericSummary(
            numeric_edges(finite, lo, hi, opts.bins), center=center, quantum=quantum))
    if kind is Kind.CATEGORICAL:
        counts = first.labels.get(name, Counter())
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        vocabulary = [v for v, _ in ranked[: opts.max_categories]]
        complete = name not in first.high_cardinality and len(ranked) <= opts.max_categories
        return FeatureProfile(name, kind, CategoricalSummary(
            vocabulary, complete=complete, unseen_limit=unseen_limit))
    texts = [v for v in label_column(values, numbers_as_labels=False).values if v is not None]
    lengths = np.array([len(t) for t in texts], dtype=float)
    words = np.array([len(t.split()) for t in texts], dtype=float)
    return FeatureProfile(name, kind, TextSummary(
        _quantile_edges(lengths, TEXT_BINS), _quantile_edges(words, TEXT_BINS),
        sample_size=TEXT_PROFILE_SAMPLE, seed=opts.seed))


def _quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    if values.size == 0:
        return np.array([0.0, 0.0])
    return numeric_edges(values, float(values.min()), float(values.max()), bins)


def _finish_text(feature: FeatureProfile) -> TextSample:
    summary = feature.summary
    assert isinstance(summary, TextSummary)
    languages = [detect(t) for t in summary.sample]
    per_text = [Counter(tokens(t)) for t in summary.sample]
    total: Counter[str] = Counter()
    for c in per_text:
        total.update(c)
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:TEXT_VOCABULARY]
    feature.vocabulary = dict(ranked)
    feature.vocabulary_other = sum(total.values()) - sum(feature.vocabulary.values())
    feature.language_counts = dict(sorted(Counter(languages).items()))
    vocab = feature.vocabulary
    compact = []
    for c in per_text:
        kept = Counter({w: k for w, k in c.items() if w in vocab})
        other = sum(c.values()) - sum(kept.values())
        if other:
            kept[OTHER_TOKEN] = other
        compact.append(kept)
    # The stored summary describes windows: they sample DEFAULT_SAMPLE_SIZE texts.
    summary.sample_size = DEFAULT_SAMPLE_SIZE
    return TextSample(languages, compact)


def build_profile(path: str | Path, opts: BuildOptions, progress: Progress | None = None) -> Profile:
    p = check_readable(path)
    first = _FirstPass(opts.sample_rows, opts.seed)
    key = (opts.model, opts.version)  # a prediction log is filtered to this model and version
    read = ReadStats()
    for chunk in read_chunks(p, predictions=opts.predictions, model=key, stats=read):
        first.add(chunk)
        if progress:
            progress("pass 1/2", first.rows)
    if first.rows == 0 or not first.columns:
        raise InputError(f"no rows in {p.name}")
    _refuse_too_few_rows(p, first.rows, opts.window_size)
    first._compact()
    unknown = sorted(set(opts.schema) - set(first.columns))
    if unknown:
        raise UsageError(f"--schema names features that are not in the data: {', '.join(unknown)}")
    kinds = {name: opts.schema.get(name) or infer_kind(first.sample[name])
             for name in first.columns}
    unseen_limit = unseen_limit_for(sum(k is Kind.CATEGORICAL for k in kinds.values()))
    features = {name: _empty_feature(name, kind, first, opts, unseen_limit)
                for name, kind in kinds.items()}
    profile = Profile(opts.model, opts.version, features, window_size=opts.window_size,
                      false_alarm_rate=opts.false_alarm_rate, tool_version=__version__)
    # The training summary keeps TEXT_PROFILE_SAMPLE texts per text feature, sampled with the
    # build's seed (empty_like keeps both); windows keep DEFAULT_SAMPLE_SIZE (_finish_text).
    training = WindowSummary(profile)
    for chunk in read_chunks(p, predictions=opts.predictions, model=key):
        training.update_columns(chunk, _chunk_rows(chunk))
        if progress:
            progress("pass 2/2", training.records)
    text_samples: dict[str, TextSample] = {}
    for name, feature in features.items():
        feature.summary = training.features[name]
        if isinstance(feature.summary, NumericSummary):
            feature.psi_bins = psi_bins(feature.summary.histogram)
        elif isinstance(feature.summary, TextSummary):
            feature.psi_bins = psi_bins(feature.summary.length.histogram)
            text_samples[name] = _finish_text(feature)
        elif isinstance(feature.summary, CategoricalSummary) and feature.summary.complete:
            counts = feature.summary.counts
            feature.unseen_mass = float((counts == 1).sum()) / max(1, int(counts.sum()))
    profile.edge_record_rate = round(training.edge_records / training.records, 9)
    profile.source = {"file": p.name, "sha256": file_sha256(p), "rows": first.rows}
    if read.other_models:  # a log of several models: say what was left out
        profile.source["other_model_records"] = sum(read.other_models.values())
    if progress:
        progress("calibrating", 0)
    sample = _calibration_columns(first, kinds)
    nulls = calibrate(profile, sample, len(first.keys), text_samples,
                      windows=opts.calibration_windows, seed=opts.seed)
    for name, feature in features.items():
        feature.nulls = nulls[name]
    profile.profile_id = profile.compute_id()
    return profile


def _refuse_too_few_rows(path: Path, rows: int, window_size: int) -> None:
    """Thresholds are calibrated on resampled windows of `window_size` training rows; from fewer
    rows than one window, every window would resample the same few rows and the profile would
    call any real traffic drift (a 1-row profile flags every check)."""
    if rows < window_size:
        fix = (f"more training data or --window-size {rows:,} or less" if rows >= MIN_WINDOW
               else f"at least {MIN_WINDOW} rows of training data")
        raise InputError(f"{path.name} has {rows:,} row{'s' if rows != 1 else ''}, fewer than one "
                         f"calibration window (--window-size {window_size:,}): too few to tell "
                         f"drift from noise; use {fix}")


def _calibration_columns(first: _FirstPass, kinds: dict[str, Kind]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        values = first.sample[name]
        if kind is Kind.NUMERIC:
            out[name] = numeric_column(values)
        else:
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            out[name] = arr
    return out


def stderr_progress(delay_seconds: float = 2.0) -> Progress | None:
    """A one-line progress display on stderr, only when stderr is a terminal, and only once the
    build has run for `delay_seconds` (small inputs finish silently)."""
    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def show(stage: str, rows: int) -> None:
        if time.monotonic() - started >= delay_seconds:
            sys.stderr.write(f"\rprofile build: {stage}: {rows:,} rows   ")
            sys.stderr.flush()

    return show
