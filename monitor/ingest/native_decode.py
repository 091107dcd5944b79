"""The compiled fast path: messages decoded straight into typed columns by `drift_native`.

`drift_native` (native/, a small Rust extension built by `make setup`) reads a batch of messages
of the profiled models into columns per model and version: numbers as doubles, strings coded
into the batch's distinct values, texts measured as the text summary measures them. Messages it
cannot vouch for are refused whole and go to the reference path in `records.py`, as with the
msgspec decoder (`fast_decode.py`), which stays the fast path where the extension is not
installed or `DRIFT_MONITOR_NATIVE=0`. tests/test_native_decode.py checks that both read random
and adversarial batches as the reference does, bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np

from monitor.ingest.native_group import NativeGroup, join
from monitor.ingest.schema import Kind

try:
    import drift_native
except ImportError:  # not built: the msgspec decoder serves
    drift_native = None

ENV = "DRIFT_MONITOR_NATIVE"
BLOCK_BYTES = 4 << 20  # JSONL read this much at a time
ModelKey = tuple[str, str]
_KIND_CODES = {Kind.NUMERIC: 0, Kind.CATEGORICAL: 1, Kind.TEXT: 2}


def available() -> bool:
    """Whether the compiled decoder is installed and not switched off (DRIFT_MONITOR_NATIVE=0)."""
    return drift_native is not None and os.environ.get(ENV, "1") != "0"


class NativeDecoder:
    """Decodes batches of messages of the models in `schemas` (model -> feature -> kind)."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Kind]], max_name_chars: int) -> None:
        if drift_native is None:
            raise RuntimeError("the compiled decoder (drift_native) is not installed: "
                               "run `make setup`")
        models = [(model, [(name, _KIND_CODES[kind]) for name, kind in kinds.items()])
                  for model, kinds in sorted(schemas.items())
                  if model and len(model) <= max_name_chars]
        self.models = [model for model, _ in models]
        self._decoder = drift_native.Decoder(models)

    def decode(self, messages: Sequence[Any], latest: float
               ) -> tuple[dict[ModelKey, Any], list[int]]:
        """Groups of the records it accepts, and the positions of the messages it leaves to
        the reference path (in order). `latest`: the newest acceptable `ts`."""
        if isinstance(messages, LineBatch):
            found, refused = self._decoder.decode_spans(messages.buffer, messages.spans.tobytes(),
                                                        latest)
        else:
            if not set(map(type, messages)) <= {bytes}:
                messages = [bytes(m) for m in messages]
            found, refused = self._decoder.decode(messages, latest)
        groups: dict[ModelKey, Any] = {}
        repeated = False
        for model, version, ts, index, columns in found:
            if type(version) is not str:
                version = str(version)  # version 1 and "1" are one key
            group = NativeGroup.of(model, version, ts, index, columns)
            key = (model, version)
            if key in groups:
                groups[key] = join([groups[key], group])
                repeated = True
            else:
                groups[key] = group
        if repeated:  # first appearance order, as the reference path
            groups = dict(sorted(groups.items(), key=lambda kv: int(kv[1].index[0])))
        return groups, refused


class LineBatch(Sequence[bytes]):
    """Lines of a JSONL file held in one buffer (`spans`: start and end of each): the compiled
    decoder reads them where they are; a line is made into bytes only when asked for (the few
    the reference path reads)."""

    __slots__ = ("buffer", "spans")

    def __init__(self, buffer: bytes, spans: np.ndarray) -> None:
        self.buffer = buffer
        self.spans = spans  # (n, 2) uint64

    def __len__(self) -> int:
        return int(self.spans.shape[0])

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        start, end = self.spans[i].tolist()
        return self.buffer[start:end]


def line_batches(fh: BinaryIO, lines: int) -> Iterator[LineBatch]:
    """Batches of `lines` non-blank lines (the last may hold fewer), each line with its newline,
    as `for line in fh` gives them."""
    split = drift_native.split_lines
    buffer = b""
    start = 0
    last = False
    while not last:
        block = fh.read(BLOCK_BYTES)
        last = not block
        buffer = buffer[start:] + block
        start = 0
        while True:
            spans, end = split(buffer, start, lines, last)
            found = np.frombuffer(spans, dtype=np.uint64).reshape(-1, 2)
            if len(found) == lines or (last and len(found)):
                yield LineBatch(buffer, found)
                start = end
            else:
                break  # the rest waits for the next block
