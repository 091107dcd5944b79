"""Adversarial checks of the internal topics made in one CreateTopics request
(monitor/service/topics.py `_create`) on the real broker: a topic the broker refuses is one
readable error naming it and saying why, and the request's other topics are still made."""

from __future__ import annotations

import uuid

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from support.kafka import BOOTSTRAP

from monitor.errors import ServiceError
from monitor.service.topics import described_soon, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ADMIN = {"bootstrap_servers": BOOTSTRAP}


def test_a_refused_topic_is_one_readable_error_and_the_others_are_made(services: None) -> None:
    tag = uuid.uuid4().hex[:10]
    predictions, partials = f"it-{tag}-predictions", f"it-{tag}-partials"
    bad = f"it-{tag}-state!"  # '!' is not allowed in a topic name
    admin = KafkaAdminClient(**ADMIN)
    try:
        admin.create_topics([NewTopic(predictions, 3, 1)])
        assert described_soon(admin, predictions, timeout=60) is not None
        with pytest.raises(ServiceError) as caught:
            ensure_topics(ADMIN, predictions, state=[bad, f"it-{tag}-windows"], partials=partials)
        message = str(caught.value)
        assert bad in message and "\n" not in message, message
        assert "Traceback" not in message
        made = described_soon(admin, partials, timeout=30)
        assert made is not None and made.partitions == 3
        assert described_soon(admin, f"it-{tag}-windows", timeout=30) is not None
    finally:
        existing = set(admin.list_topics())
        admin.delete_topics([t for t in existing if t.startswith(f"it-{tag}-")])
        admin.close()
