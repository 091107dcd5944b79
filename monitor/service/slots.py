"""What a stage runner holds per input partition, and what its processors promise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.ingest.records import ModelKey
from monitor.service.state_store import Loaded


@dataclass
class Step:
    """What one batch or tick asks of the shell."""

    dead_letters: list[Any] = field(default_factory=list)
    urgent: bool = False  # the outbox has something: checkpoint and deliver now


class Processor(Protocol):
    partition: int

    @property
    def offset(self) -> int: ...
    # A processor may also have `prepare(records) -> Any`, which changes nothing in it and
    # runs ahead in another thread; `process` then takes what it returned instead of records.
    def process(self, records: list[Any], wall: float) -> Step: ...
    def tick(self, wall: float, caught_up: bool) -> Step: ...
    def take_dirty(self) -> set[ModelKey]: ...
    def header_state(self) -> dict[str, Any]: ...
    def model_state(self, key: ModelKey) -> dict[str, Any] | None: ...
    def has_outbox(self) -> bool: ...
    def stats(self) -> dict[str, int]: ...  # counters since this processor started
    def gauges(self) -> dict[str, int]: ...  # levels now
    def reset_stats(self) -> None: ...


@dataclass
class Slot:
    processor: Processor
    generation: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    checkpointed: int = -1  # input offset of the last checkpoint
    # Fetches numbered below this began before the slot's seek: their records may skip ahead
    # of the processor (aiokafka hands them out after the rebalance), so they are not used.
    valid_from: int = 0
    last_checkpoint: float = field(default_factory=time.monotonic)
    unsaved: bool = False  # records folded in since the last checkpoint
    owed: bool = False  # the outbox holds what no checkpoint covers yet: checkpoint first
    letters: list[Any] = field(default_factory=list)  # dead letters not acknowledged yet
    dirty: set[ModelKey] = field(default_factory=set)  # models taken, not saved yet
    log_start: int = 0  # first offset still in the input partition (for the lag)


NewProcessor = Callable[[int, Loaded | None], Processor]
Deliver = Callable[[Processor], Awaitable[None]]
SendDeadLetters = Callable[[list[Any]], Awaitable[None]]
