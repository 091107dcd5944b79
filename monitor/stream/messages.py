"""What stage one sends stage two (the internal partials topic): plain, versioned JSON (the
stdlib's, which keeps infinities: the watermark of a finished replay is +inf).

* `Partial`: one input partition's summary of one window of one model, sent once the
  partition's watermark for that model has passed the window's end. Stage two keeps one partial
  per (source partition, window), so a partial delivered twice is merged once.
* `Progress`: an input partition's event time, for every partials partition: the watermark of
  each model it holds (has records of), the watermark for every other model (`default`), and the
  running count of records of models without a profile. Sent after the partials it covers, on
  the same partition, so when stage two sees a watermark it has every partial below it.

>>> p = Progress(source=2, sources=4, stream="t", default=95.0, models={("m", "1"): 90.0},
...              unprofiled={("x", "9"): 3})
>>> decode(encode(p)) == p
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import MonitorError
from monitor.ingest.records import ModelKey

FORMAT = 1


class MessageError(MonitorError):
    """An internal message this version cannot read."""


@dataclass
class Partial:
    source: int  # input partition
    stream: str  # the input topic's id: a recreated topic is another stream
    model: str
    version: str
    window: dict[str, Any]  # WindowSummary.to_dict(): profile_id, start, end, counts, features

    @property
    def key(self) -> ModelKey:
        return (self.model, self.version)

    @property
    def start(self) -> float:
        return float(self.window["start"])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "partial", "format": FORMAT, "source": self.source,
                "stream": self.stream, "model": self.model, "version": self.version,
                "window": self.window}


@dataclass
class Progress:
    source: int
    sources: int  # input partitions in all: stage two waits for each of them
    stream: str
    default: float  # watermark for the models this partition holds no records of
    models: dict[ModelKey, float] = field(default_factory=dict)
    # Running counts since the partition's state began (never reset, so a repeat is harmless).
    unprofiled: dict[ModelKey, int] = field(default_factory=dict)  # records without a profile
    late: dict[ModelKey, int] = field(default_factory=dict)  # records too late for their window
    invalid: dict[str, int] = field(default_factory=dict)  # invalid records naming the model

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "progress", "format": FORMAT, "source": self.source,
                "sources": self.sources, "stream": self.stream, "default": self.default,
                "models": [[m, v, w] for (m, v), w in sorted(self.models.items())],
                "unprofiled": [[m, v, n] for (m, v), n in sorted(self.unprofiled.items())],
                "late": [[m, v, n] for (m, v), n in sorted(self.late.items())],
                "invalid": sorted(self.invalid.items())}


Message = Partial | Progress


def encode(message: Message) -> bytes:
    return json.dumps(message.to_dict(), separators=(",", ":")).encode()


def decode(raw: bytes) -> Message:
    try:
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise MessageError(f"internal message format {data.get('format')!r}, "
                               f"expected {FORMAT}")
        if data["kind"] == "partial":
            return Partial(int(data["source"]), str(data["stream"]), str(data["model"]),
                           str(data["version"]), dict(data["window"]))
        if data["kind"] == "progress":
            return Progress(int(data["source"]), int(data["sources"]), str(data["stream"]),
                            float(data["default"]),
                            {(str(m), str(v)): float(w) for m, v, w in data["models"]},
                            {(str(m), str(v)): int(n) for m, v, n in data["unprofiled"]},
                            {(str(m), str(v)): int(n) for m, v, n in data["late"]},
                            {str(m): int(n) for m, n in data["invalid"]})
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MessageError(f"malformed internal message: {exc!r}") from None
    raise MessageError(f"unknown internal message kind {data.get('kind')!r}")
