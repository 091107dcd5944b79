"""The worker's topic set-up on the real broker: topics just created, and workers starting
together (a CI run once stopped a worker on "cannot describe the partials topic" right after
creating it)."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from support.kafka import BOOTSTRAP

from monitor.errors import ServiceError
from monitor.service.topics import Topics, described_soon, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ADMIN = {"bootstrap_servers": BOOTSTRAP}


def names(tag: str) -> dict[str, str]:
    return {role: f"it-{tag}-{role}" for role in
            ("predictions", "state", "windows", "partials", "reports")}


def test_a_topic_created_while_it_is_awaited_is_described_once_it_exists(services: None) -> None:
    topic = f"it-{uuid.uuid4().hex[:10]}-late"
    admin = KafkaAdminClient(**ADMIN)

    def create() -> None:
        other = KafkaAdminClient(**ADMIN)
        try:
            other.create_topics([NewTopic(topic, 3, 1)])
        finally:
            other.close()

    creator = threading.Timer(1.0, create)
    try:
        started = time.monotonic()
        creator.start()
        info = described_soon(admin, topic, timeout=60)
        assert info is not None and info.partitions == 3 and info.topic_id
        assert time.monotonic() - started >= 1.0  # it waited for the creation
        assert described_soon(admin, f"{topic}-never", timeout=0.3) is None
    finally:
        creator.join()
        admin.close()


def test_workers_starting_together_create_the_topics_once_and_agree_on_them(
        services: None) -> None:
    topics = names(uuid.uuid4().hex[:10])
    admin = KafkaAdminClient(**ADMIN)
    try:
        admin.create_topics([NewTopic(topics["predictions"], 6, 1)])
        assert described_soon(admin, topics["predictions"], timeout=60) is not None

        def start() -> Topics:
            return ensure_topics(ADMIN, topics["predictions"],
                                 state=[topics["state"], topics["windows"]],
                                 partials=topics["partials"], others=[topics["reports"]])

        with ThreadPoolExecutor(4) as pool:
            seen = list(pool.map(lambda _: start(), range(4)))
        assert len(set(seen)) == 1
        assert seen[0].predictions.partitions == seen[0].partials_partitions == 6
        for topic in topics.values():
            info = described_soon(admin, topic, timeout=60)
            assert info is not None and info.partitions == 6, topic
    finally:
        existing = set(admin.list_topics())
        admin.delete_topics([t for t in topics.values() if t in existing])
        admin.close()


def test_a_topic_the_broker_refuses_to_create_is_one_readable_error(services: None) -> None:
    """The topics are created in one request; one refused there fails the start with its
    name and the broker's reason (the others, created, are as good as before)."""
    topics = names(uuid.uuid4().hex[:10])
    refused = f"it-{uuid.uuid4().hex[:10]}-{'x' * 250}"  # longer than a topic name may be
    admin = KafkaAdminClient(**ADMIN)
    try:
        admin.create_topics([NewTopic(topics["predictions"], 2, 1)])
        assert described_soon(admin, topics["predictions"], timeout=60) is not None
        with pytest.raises(ServiceError, match=f"cannot create topic {refused}"):
            ensure_topics(ADMIN, topics["predictions"], state=[topics["state"], topics["windows"]],
                          partials=topics["partials"], others=[refused])
        assert described_soon(admin, topics["state"], timeout=60) is not None
    finally:
        existing = set(admin.list_topics())
        admin.delete_topics([t for t in topics.values() if t in existing])
        admin.close()
