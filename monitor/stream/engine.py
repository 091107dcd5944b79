"""The streaming engine in one process: stage one (one input partition) feeding stage two.

`replay`, `report` and the tests run this; the worker runs the same two stages with Kafka
between them (docs/architecture.md). Messages between the stages go through their wire codec
here too, so a replay computes exactly what the worker computes.

A window [start, start + window_seconds) closes when the watermark (the newest record time,
robust to a few outliers, minus the grace) passes its end. A record for an already-closed window
is *late*: counted, not folded in. A closing window with fewer than `min_records` records is
not evaluated but carried into the next window of the same model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.ingest.records import ParsedBatch
from monitor.profile.model import Profile
from monitor.stream.alerts import Alert
from monitor.stream.config import EngineConfig
from monitor.stream.folder import DeadLetter, PartitionFolder
from monitor.stream.merger import Evaluated, WindowMerger
from monitor.stream.messages import decode, encode

__all__ = ["Engine", "EngineConfig", "EngineStats", "Evaluated"]

ProfileLookup = Callable[[str, str], Profile | None]


@dataclass
class EngineStats:
    records: int = 0
    invalid: int = 0
    late: int = 0
    no_profile: int = 0
    windows: int = 0


class Engine:
    def __init__(self, profiles: ProfileLookup, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.folder = PartitionFolder(0, profiles, self.config)
        self.merger = WindowMerger(profiles, self.config)
        self.refused: list[DeadLetter] = []

    def ingest(self, batch: ParsedBatch) -> list[Evaluated | Alert]:
        """Fold a parsed batch into its windows; return what closed because time moved on."""
        self.refused += self.folder.fold(batch)
        return self._exchange()

    def flush(self) -> list[Evaluated | Alert]:
        """End of input: every open window is evaluated; a small last one gets the seed rules."""
        self.folder.flush()
        out = self._exchange()
        return out + self.merger.finish()

    def _exchange(self) -> list[Evaluated | Alert]:
        messages = [*self.folder.take_partials(), *self.folder.progress().values()]
        self.folder.sent()
        self.merger.receive(decode(encode(m)) for m in messages)
        return self.merger.evaluate_due()

    @property
    def stats(self) -> EngineStats:
        counts = self.folder.counts
        return EngineStats(
            records=self.folder.records,
            invalid=sum(counts.invalid.values()) + self.folder.invalid_unattributed
            + len(self.refused),
            late=sum(counts.late.values()),
            no_profile=sum(counts.unprofiled.values()) + counts.unprofiled_overflow,
            windows=self.merger.windows)

    def to_state(self) -> dict[str, Any]:
        """Both stages' state as plain data (what the worker's checkpoints hold)."""
        return {"folder": {"header": self.folder.header_state(),
                           "models": [[list(k), self.folder.model_state(k)]
                                      for k in self.folder.models]},
                "merger": {"header": self.merger.header_state(),
                           "models": [[list(k), self.merger.model_state(k)]
                                      for k in self.merger.models]}}

    def restore(self, state: dict[str, Any]) -> None:
        for stage, target in (("folder", self.folder), ("merger", self.merger)):
            target.restore(state[stage]["header"],  # type: ignore[attr-defined]
                           {(k[0], k[1]): m for k, m in state[stage]["models"]})
