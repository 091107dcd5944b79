"""`ChunkReader` reads what asyncio's stream reader reads, whatever the chunks the socket gives,
and aiokafka's connections use it once installed."""

from __future__ import annotations

import asyncio
import struct
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from support.kafka import BOOTSTRAP

from monitor.service.frame_reader import ChunkReader, install


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


async def read_frames(make: type[asyncio.StreamReader], chunks: list[bytes], error: bool,
                      limit: int) -> tuple[list[bytes], str]:
    """Frames (4-byte size, then that many bytes) read while `chunks` are fed one per turn of
    the loop, then the end of the stream or an error; and what ended the reading."""
    reader = make(limit=limit)
    transport = Transport()
    reader.set_transport(transport)

    async def feed() -> None:
        for chunk in chunks:
            reader.feed_data(chunk)
            await asyncio.sleep(0)
            assert not (transport.paused and reader._waiter is not None), "paused while waiting"
        if error:
            reader.set_exception(ConnectionResetError("reset"))
        else:
            reader.feed_eof()

    feeding = asyncio.ensure_future(feed())
    frames: list[bytes] = []
    try:
        while True:
            (n,) = struct.unpack(">i", await reader.readexactly(4))
            frames.append(await reader.readexactly(n))
    except asyncio.IncompleteReadError as exc:
        end = f"incomplete {exc.partial!r} of {exc.expected}"
    except ConnectionResetError:
        end = "reset"
    await feeding
    return frames, end


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(st.binary(max_size=300), max_size=8),
       cuts=st.lists(st.integers(1, 97), min_size=1, max_size=20),
       trim=st.integers(0, 5), error=st.booleans(),
       limit=st.sampled_from([8, 64, 1 << 16]))
def test_any_chunking_reads_as_the_stock_stream_reader(
        payloads: list[bytes], cuts: list[int], trim: int, error: bool, limit: int) -> None:
    data = b"".join(struct.pack(">i", len(p)) + p for p in payloads)
    data = data[:len(data) - trim] if trim <= len(data) else b""  # maybe cut mid-frame
    chunks, at, i = [], 0, 0
    while at < len(data):
        chunks.append(data[at:at + cuts[i % len(cuts)]])
        at += cuts[i % len(cuts)]
        i += 1
    stock = asyncio.run(read_frames(asyncio.StreamReader, chunks, error, limit))
    chunked = asyncio.run(read_frames(ChunkReader, chunks, error, limit))
    assert chunked == stock
    assert chunked[0] == payloads[:len(chunked[0])]


def test_a_reader_that_is_not_read_pauses_its_socket_and_resumes_it_when_read() -> None:
    async def run() -> tuple[bool, bool, bytes]:
        reader = ChunkReader(limit=10)
        transport = Transport()
        reader.set_transport(transport)
        for _ in range(5):
            reader.feed_data(b"x" * 10)
        paused = transport.paused  # 50 bytes buffered, more than twice the limit
        data = await reader.readexactly(45)
        return paused, transport.paused, data

    paused, still, data = asyncio.run(run())
    assert paused and not still and data == b"x" * 45


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_an_aiokafka_consumer_reads_the_broker_through_it(services: None) -> None:
    topic = f"it-{uuid.uuid4().hex[:10]}-frames"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, batch_size=1 << 20, linger_ms=50)
    sent = [bytes([i % 251]) * (i * 37 % 20_000) for i in range(400)]  # ~4 MB in all
    for value in sent:
        producer.send(topic, value)
    producer.flush()
    producer.close()
    assert install()

    async def consume() -> tuple[list[bytes], set[type]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < len(sent):
                batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                got += [r.value for records in batches.values() for r in records]
            readers = {type(c._reader) for c in consumer._client._conns.values()}
        finally:
            await consumer.stop()
        return got, readers

    got, readers = asyncio.run(consume())
    assert got == sent
    assert readers == {ChunkReader}
