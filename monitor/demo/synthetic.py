"""Synthetic prediction traffic for the demo, the benchmarks and the tests: a model with numeric,
categorical and text features, and drift scenarios that can be switched on per window."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

STATES = ["CA", "NY", "TX", "WA", "FL", "IL", "PA", "OH", "GA", "NC"]
PLANS = ["basic", "plus", "premium"]
CHANNELS = ["web", "app", "store", "phone"]
DEVICES = ["ios", "android", "desktop"]
SEGMENTS = ["consumer", "smb", "enterprise"]

WORDS = {
    "en": ("the delivery was late and box damaged great product fast shipping customer support "
           "answered quickly solved my problem price is too high for what you get works well but "
           "battery could last longer would buy this again app keeps crashing when open account "
           "nice quality arrived on time thank you").split(),
    "fr": ("la livraison était en retard et boîte abîmée excellent produit rapide le service client "
           "a répondu vite à ma question prix est beaucoup trop élevé pour ce que c'est fonctionne "
           "bien mais batterie pourrait durer plus longtemps je rachèterais sans hésiter merci "
           "qualité arrivé à l'heure").split(),
}


def sentence(rng: np.random.Generator, language: str, words: int) -> str:
    vocabulary = WORDS[language]
    return " ".join(vocabulary[i] for i in rng.integers(0, len(vocabulary), words))


@dataclass
class Scenario:
    """Drift applied to generated records; all off by default."""

    mean_shift: float = 0.0  # in training standard deviations, on `age`
    variance_factor: float = 1.0  # on `income_z` (variance multiplied)
    new_category_rate: float = 0.0  # share of `state` values that are new ('Canada')
    category_mix: bool = False  # `plan` shifts to premium
    null_burst_rate: float = 0.0  # share of records with 95%+ of features null
    language_switch_rate: float = 0.0  # share of `comment` texts in French
    text_length_factor: int = 1  # `comment` texts repeated this many times
    extra: dict[str, Any] = field(default_factory=dict)


NUMERIC = ["age", "income_z", "tenure", "balance", "visits", "latency_ms", "discount",
           "items", "rating", "score_raw"]
CATEGORICAL = ["state", "plan", "channel", "device", "segment"]
TEXT = ["comment"]


def generate_columns(n: int, rng: np.random.Generator, scenario: Scenario | None = None
                     ) -> dict[str, list[Any]]:
    """`n` records as columns: 10 numeric, 5 categorical and 1 text feature."""
    s = scenario or Scenario()
    cols: dict[str, Any] = {
        "age": rng.normal(40 + 10 * s.mean_shift, 10, n),
        "income_z": rng.normal(0, np.sqrt(s.variance_factor), n),
        "tenure": rng.integers(0, 73, n).astype(float),
        "balance": rng.lognormal(7, 1, n),
        "visits": rng.poisson(4, n).astype(float),
        "latency_ms": rng.gamma(2.0, 50.0, n),
        "discount": rng.uniform(0, 0.3, n),
        "items": rng.geometric(0.3, n).astype(float),
        "rating": rng.integers(1, 6, n).astype(float),
        "score_raw": rng.normal(0, 1, n),
    }
    state = np.array(STATES)[rng.integers(0, len(STATES), n)].astype(object)
    if s.new_category_rate:
        state[rng.random(n) < s.new_category_rate] = "Canada"
    plan_p = [0.2, 0.3, 0.5] if s.category_mix else [0.5, 0.3, 0.2]
    cols["state"] = state
    cols["plan"] = np.array(PLANS)[rng.choice(3, n, p=plan_p)].astype(object)
    cols["channel"] = np.array(CHANNELS)[rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])].astype(object)
    cols["device"] = np.array(DEVICES)[rng.integers(0, 3, n)].astype(object)
    cols["segment"] = np.array(SEGMENTS)[rng.choice(3, n, p=[0.7, 0.2, 0.1])].astype(object)
    lang = np.where(rng.random(n) < s.language_switch_rate, "fr", "en")
    lengths = rng.integers(5, 16, n) * s.text_length_factor
    comments = [sentence(rng, str(language), int(k)) for language, k in zip(lang, lengths, strict=True)]
    cols["comment"] = np.array(comments, dtype=object)
    out = {k: (v.tolist()) for k, v in cols.items()}
    if s.null_burst_rate:
        burst = np.flatnonzero(rng.random(n) < s.null_burst_rate)
        for name in out:
            for i in burst:
                out[name][i] = None
    return out


def score(columns: dict[str, list[Any]]) -> list[float | None]:
    """The demo model's churn probability, a function of a few features."""
    age = np.array([np.nan if v is None else v for v in columns["age"]], dtype=float)
    visits = np.array([np.nan if v is None else v for v in columns["visits"]], dtype=float)
    z = -0.03 * (age - 40) - 0.2 * (visits - 4)
    p = 1 / (1 + np.exp(-z))
    return [None if not np.isfinite(x) else round(float(x), 4) for x in p]


def records(columns: dict[str, list[Any]], *, model: str, version: str, ts: np.ndarray,
            start_id: int = 0) -> list[dict[str, Any]]:
    """Prediction-log records (the format in README.md, "Message formats") from columns and per-record timestamps."""
    names = list(columns)
    preds = score(columns)
    n = len(ts)
    return [{"model": model, "version": version, "ts": float(ts[i]), "id": f"req-{start_id + i}",
             "features": {name: columns[name][i] for name in names}, "prediction": preds[i]}
            for i in range(n)]


def training_table(n: int, seed: int = 0) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    cols = generate_columns(n, rng)
    cols["prediction"] = score(cols)
    return cols


def write_csv(path: str, columns: dict[str, list[Any]]) -> None:
    import csv

    names = list(columns)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for row in zip(*(columns[n] for n in names), strict=True):
            w.writerow(["" if v is None else v for v in row])
