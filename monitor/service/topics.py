"""The worker's topics: names derived from the deployment, creation, and the input's identity.

Default names of the internal topics come from the consumer group and the predictions topic,
so two deployments on one cluster never share state by accident:
`<group>.<predictions>.state` (stage one checkpoints), `<group>.<predictions>.partials`
(partial windows and watermarks) and `<group>.<predictions>.windows` (stage two checkpoints).

>>> internal_topic("drift-monitor", "predictions", "state")
'drift-monitor.predictions.state'
>>> internal_topic("team a/b", "preds", "partials")
'team_a_b.preds.partials'
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka import errors as kafka_errors
from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from monitor.errors import ServiceError

log = logging.getLogger(__name__)

TOPIC_READY_SECONDS = 30.0  # how long a topic just created may take to be described
MAX_STATE_BYTES = 16 * 1024 * 1024  # state topics' max.message.bytes and the producer's limit
STATE_CONFIG = {
    "cleanup.policy": "compact",
    "max.message.bytes": str(MAX_STATE_BYTES),
    "min.cleanable.dirty.ratio": "0.1",
    "segment.ms": str(600_000),  # rolled every 10 minutes, so compaction can keep up
    "segment.bytes": str(64 * 1024 * 1024),
}


def internal_topic(group: str, predictions: str, role: str) -> str:
    return ".".join(re.sub(r"[^a-zA-Z0-9._-]", "_", part)
                    for part in (group, predictions, role))


class TopicMissing(ServiceError):
    """The predictions topic does not exist (yet): the worker waits for it."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    topic_id: str
    partitions: int


def describe(admin: KafkaAdminClient, topic: str) -> TopicInfo | None:
    for entry in admin.describe_topics([topic]):
        name = entry.get("name", entry.get("topic"))  # kafka-python 3 says "name", 2 "topic"
        if name == topic and not entry.get("error_code") and entry.get("partitions"):
            return TopicInfo(topic, str(entry.get("topic_id") or ""), len(entry["partitions"]))
    return None


def described_soon(admin: KafkaAdminClient, topic: str,
                   timeout: float = TOPIC_READY_SECONDS) -> TopicInfo | None:
    """`describe`, asked again until the brokers describe the topic or `timeout` passes: a
    topic just created is not described at once (its metadata is still reaching the broker
    that answers, on a loaded machine for up to seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        info = describe(admin, topic)
        if info is not None or time.monotonic() >= deadline:
            return info
        time.sleep(0.1)


def describe_topic(admin_config: dict[str, Any], topic: str) -> TopicInfo | None:
    """`topic` as the brokers know it now (None: it does not exist); one admin client's life."""
    admin = KafkaAdminClient(**admin_config)
    try:
        return describe(admin, topic)
    finally:
        admin.close()


@dataclass(frozen=True)
class Topics:
    predictions: TopicInfo
    partials: TopicInfo

    @property
    def partials_partitions(self) -> int:
        return self.partials.partitions


def _create(admin: KafkaAdminClient, topics: Sequence[NewTopic]) -> set[str]:
    """Create `topics` in one request (one created meanwhile by another worker is as good);
    their names."""
    if not topics:
        return set()
    asked = {t.name: t for t in topics}
    result = admin.create_topics(list(topics), raise_errors=False)
    for entry in result["topics"]:
        error = kafka_errors.for_code(entry["error_code"])
        if error is kafka_errors.NoError:
            log.info("created topic %s (%d partitions)", entry["name"],
                     asked[entry["name"]].num_partitions)
        elif error is not TopicAlreadyExistsError:
            raise error(f"cannot create topic {entry['name']}: {entry.get('error_message')}")
    return {t.name for t in topics}


def ensure_topics(admin_config: dict[str, Any], predictions: str, *,
                  state: Sequence[str], partials: str, others: Sequence[str] = ()) -> Topics:
    """Describe the predictions topic (TopicMissing when missing); create the compacted state
    topics (`state`: stage one's, then stage two's), the partials topic (as many partitions as
    the predictions topic when first created) and `others` when missing."""
    try:
        admin = KafkaAdminClient(**admin_config)
    except KafkaError as exc:
        raise ServiceError(f"cannot reach Kafka ({exc})") from None
    try:
        info = describe(admin, predictions)
        if info is None:
            raise TopicMissing(f"predictions topic not found ({predictions})")
        existing = set(admin.list_topics())
        # Stage two's state topic has the partials topic's count (fixed at creation).
        partials_before = described_soon(admin, partials) if partials in existing else None
        stage_two = partials_before.partitions if partials_before else info.partitions
        wanted = [NewTopic(t, info.partitions if i == 0 else stage_two, 1,
                           topic_configs=dict(STATE_CONFIG))
                  for i, t in enumerate(state) if t not in existing]
        if partials not in existing:
            # A model window's partial grows with the model's features (about 0.5 kB each):
            # above the broker's default 1 MB from about 2,000 features; refused, it would be
            # sent again for ever. The producer's limit is the same.
            wanted.append(NewTopic(partials, info.partitions, 1,
                                   topic_configs={"max.message.bytes": str(MAX_STATE_BYTES)}))
        # Window reports grow with the features too (a model of 2,500: above 1 MB).
        wanted += [NewTopic(t, info.partitions, 1,
                            topic_configs={"max.message.bytes": str(MAX_STATE_BYTES)})
                   for t in others if t not in existing]
        created = _create(admin, wanted)
        # Partitions added to the predictions topic: stage one's state topic grows with it
        # (partition p checkpoints to p). The partials topic keeps its count, so that every
        # model stays routed to the same stage-two partition, and so does its state topic.
        described = described_soon(admin, state[0]) if state[0] in created else describe(
            admin, state[0])
        if described is not None and described.partitions < info.partitions:
            admin.create_partitions({state[0]: NewPartitions(info.partitions)})
            log.warning("%s has %d partitions now (was %d): state topic %s grown to match",
                        predictions, info.partitions, described.partitions, state[0])
        partials_info = partials_before or described_soon(admin, partials)
        if partials_info is None:
            raise ServiceError(f"cannot describe the partials topic ({partials}) "
                               f"within {TOPIC_READY_SECONDS:.0f} s")
        return Topics(info, partials_info)
    except KafkaError as exc:
        raise ServiceError(f"Kafka admin request failed ({exc})") from None
    finally:
        admin.close()
