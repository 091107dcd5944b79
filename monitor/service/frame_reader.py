"""aiokafka's connections read each response as the chunks the socket gave, joined once.

aiokafka reads a connection with `asyncio.StreamReader.readexactly`: the 4-byte size of a
response, then the response. The stream reader appends every chunk the socket gives to one
`bytearray`, which, once its first 4 bytes are taken, is copied whole each time it grows, and
copied again when the response is taken out of it. A fetch response of 8 MB cost about 7 ms of
the event loop's time that way (0.41 s for 60 of them, against 0.08 s kept as chunks and joined
once: `python -m monitor.service.frame_reader`); a worker reading a million records spent a
fifth of its event loop's time there. `ChunkReader` keeps the chunks and joins exactly what
`readexactly` asks for, once. It pauses the socket only when more than twice its limit is
buffered beyond what a pending read still waits for (the stock reader paused every 128 kB of
a large response and resumed at the next wake-up of the read).

`install()` makes aiokafka's connections (made from then on, in this process) use it; every
other method of the stream reader still works (they see the chunks joined first).
tests/test_frame_reader.py reads random chunkings, EOFs and errors as the stock reader does.
"""

from __future__ import annotations

import asyncio
import types
from collections import deque
from typing import Any

from aiokafka import conn as _conn

__all__ = ["ChunkReader", "install"]


class ChunkReader(asyncio.StreamReader):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._chunks: deque[bytes] = deque()
        self._head = 0  # bytes of `_chunks[0]` already taken
        self._size = 0  # bytes in `_chunks` not yet taken
        self._wanted = 0  # bytes the pending `readexactly` needs

    def feed_data(self, data: bytes) -> None:
        assert not self._eof, "feed_data after feed_eof"
        if not data:
            return
        self._chunks.append(bytes(data))
        self._size += len(data)
        self._wakeup_waiter()
        if (self._transport is not None and not self._paused
                and self._size + len(self._buffer) - self._wanted > 2 * self._limit):
            try:
                self._transport.pause_reading()
            except NotImplementedError:
                self._transport = None  # (as the stock reader: it cannot pause)
            else:
                self._paused = True

    async def readexactly(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        if self._exception is not None:
            raise self._exception
        if n == 0:
            return b""
        if self._buffer:  # left by another read: it comes first
            self._buffer.extend(self._take(self._size))
            self._chunks.append(bytes(self._buffer))
            self._size = len(self._buffer)
            self._buffer.clear()
        self._wanted = n
        try:
            while self._size < n:
                if self._eof:
                    partial = self._take(self._size)
                    raise asyncio.IncompleteReadError(partial, n)
                await self._wait_for_data("readexactly")
        finally:
            self._wanted = 0
        return self._take(n)

    def _take(self, n: int) -> bytes:
        """The first `n` bytes buffered (there are at least `n`), each byte copied once: a
        chunk holding many small frames is not copied again after each (a slice of its rest
        would be)."""
        parts = []
        need = n
        while need:
            chunk = self._chunks[0]
            left = len(chunk) - self._head
            if left <= need:
                parts.append(memoryview(chunk)[self._head:] if self._head else chunk)
                self._chunks.popleft()
                self._head = 0
                need -= left
            else:
                parts.append(memoryview(chunk)[self._head:self._head + need])
                self._head += need
                need = 0
        self._size -= n
        self._maybe_resume_transport()
        if len(parts) == 1:
            return parts[0] if isinstance(parts[0], bytes) else bytes(parts[0])
        return b"".join(parts)

    def _maybe_resume_transport(self) -> None:
        if self._paused and self._size - self._wanted <= self._limit:
            self._paused = False
            self._transport.resume_reading()  # type: ignore[union-attr]

    # The other reads, which aiokafka does not use, read the chunks joined into the buffer,
    # before they start and each time they have waited for data.
    def _joined(self) -> None:
        if self._chunks:
            self._buffer.extend(self._take(self._size))

    async def _wait_for_data(self, func_name: str) -> None:
        await super()._wait_for_data(func_name)
        if func_name != "readexactly":
            self._joined()

    def at_eof(self) -> bool:
        return self._eof and not self._chunks and not self._buffer

    async def read(self, n: int = -1) -> bytes:
        self._joined()
        return await super().read(n)

    async def readline(self) -> bytes:
        self._joined()
        return await super().readline()

    async def readuntil(self, separator: bytes = b"\n") -> bytes:  # type: ignore[override]
        self._joined()
        return await super().readuntil(separator)


class _Asyncio(types.ModuleType):
    """The `asyncio` aiokafka's connection module sees: the same, but for its stream reader."""

    StreamReader = ChunkReader

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


def install() -> bool:
    """Make aiokafka's connections made from now on read through `ChunkReader`; False when
    this aiokafka does not make its stream reader where this expects."""
    if isinstance(_conn.asyncio, _Asyncio):
        return True
    if _conn.asyncio is not asyncio or not hasattr(_conn.AIOKafkaConnection, "_read"):
        return False
    _conn.asyncio = _Asyncio("asyncio")  # type: ignore[attr-defined]
    return True


def _measure(responses: int = 60, size: int = 8 << 20, chunk: int = 64 << 10) -> None:
    """CPU seconds of reading `responses` frames of `size` bytes fed in `chunk`s, stock reader
    against ChunkReader (the figure in the docstring above)."""
    import struct
    import time

    frame = struct.pack(">i", size) + bytes(size)
    chunks = [frame[i:i + chunk] for i in range(0, len(frame), chunk)]

    class Transport(asyncio.Transport):
        def pause_reading(self) -> None: ...
        def resume_reading(self) -> None: ...

    async def run(make: type[asyncio.StreamReader]) -> float:
        reader = make(limit=_conn.READER_LIMIT)
        reader.set_transport(Transport())

        async def feed() -> None:
            for _ in range(responses):
                for part in chunks:
                    reader.feed_data(part)
                    await asyncio.sleep(0)

        started = time.process_time()
        feeding = asyncio.ensure_future(feed())
        for _ in range(responses):
            (n,) = struct.unpack(">i", await reader.readexactly(4))
            await reader.readexactly(n)
        await feeding
        return time.process_time() - started

    for name, make in (("asyncio.StreamReader", asyncio.StreamReader),
                       ("ChunkReader", ChunkReader)):
        seconds = asyncio.run(run(make))
        print(f"{name}: {seconds:.2f} s CPU for {responses} responses of {size >> 20} MB")


if __name__ == "__main__":
    _measure()
