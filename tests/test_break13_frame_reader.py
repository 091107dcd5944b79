"""Break13: `ChunkReader`'s other reads (which its docstring says still work) and a socket
chunk holding many small frames."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable

import pytest

from monitor.service.frame_reader import ChunkReader

Feed = list[bytes | None]  # None: the end of the stream


async def read_while_fed(make: type[asyncio.StreamReader], feed: Feed,
                         read: Callable[[asyncio.StreamReader], Awaitable[object]]) -> object:
    """What `read` returns while `feed` is fed one chunk per turn of the loop, after it began."""
    reader = make()

    async def feeding() -> None:
        for chunk in feed:
            await asyncio.sleep(0)
            if chunk is None:
                reader.feed_eof()
            else:
                reader.feed_data(chunk)

    fed = asyncio.ensure_future(feeding())
    try:
        return await asyncio.wait_for(read(reader), 2)
    except TimeoutError:
        return "hung"
    finally:
        await fed


async def read_then_readexactly(reader: asyncio.StreamReader) -> object:
    return await reader.read(2), await reader.readexactly(2)


@pytest.mark.parametrize(("feed", "read"), [
    ([b"hello", None], lambda r: r.read(10)),
    ([b"ab", b"cd", b"ef", None], lambda r: r.read()),
    ([b"ab", b"c\n"], lambda r: r.readline()),
    ([b"abcdef"], read_then_readexactly),
])
def test_the_other_reads_read_what_arrives_after_they_began_as_the_stock_reader(
        feed: Feed, read: Callable[[asyncio.StreamReader], Awaitable[object]]) -> None:
    stock = asyncio.run(read_while_fed(asyncio.StreamReader, feed, read))
    chunked = asyncio.run(read_while_fed(ChunkReader, feed, read))
    assert chunked == stock


def test_a_chunk_of_many_small_frames_is_not_copied_again_after_each() -> None:
    frame = struct.pack(">i", 60) + b"y" * 60
    chunk = frame * 8192  # 512 kB in one socket read, 8192 small responses

    async def cpu(make: type[asyncio.StreamReader]) -> float:
        reader = make(limit=1 << 16)
        started = time.process_time()
        reader.feed_data(chunk)
        for _ in range(8192):
            (n,) = struct.unpack(">i", await reader.readexactly(4))
            assert await reader.readexactly(n) == b"y" * 60
        return time.process_time() - started

    stock = asyncio.run(cpu(asyncio.StreamReader))
    chunked = asyncio.run(cpu(ChunkReader))
    assert chunked < 4 * stock + 0.05, (chunked, stock)
