"""Thin kafka-python clients for the operator tools, the live simulator and the tests.

The stream workers have their own clients; these are for short-lived tools that create
topics, push a capture, or read a topic back. Two choices matter:

* every client gives up on an unreachable broker after :data:`CONNECT_TIMEOUT` seconds
  (kafka-python's default is 30 s of silent retries) and every failure surfaces as one
  :class:`BrokerError` with a sentence an operator can act on;
* no client creates topics by accident: a typo in a topic name must be an error, not
  a new single-partition topic with the broker's default retention.

:func:`read_topic` reads without a consumer group (nothing is committed, nothing shows
up in ``kafka-consumer-groups``), so tests and tools can read alerts or the dead-letter
topic as often as they like without disturbing anyone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from typing import Any, Final

from kafka import (
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.errors import KafkaError

from streams.settings import Settings

ConsumerRecord = Any
"""kafka-python's ``ConsumerRecord`` (a namedtuple: topic, partition, offset, key, value...)."""

CONNECT_TIMEOUT: Final = 10.0
"""Seconds to reach the broker before a tool reports it unreachable."""

_POLL_MS: Final = 200


class BrokerError(Exception):
    """The broker cannot be reached, or refused what was asked; the message says which."""


def _connect(settings: Settings, what: str, factory: Any, **config: Any) -> Any:
    try:
        return factory(
            bootstrap_servers=settings.bootstrap.split(","),
            bootstrap_timeout_ms=int(CONNECT_TIMEOUT * 1000),
            request_timeout_ms=30_000,
            **config,
        )
    except KafkaError as error:
        raise BrokerError(
            f"cannot reach Kafka at {settings.bootstrap} ({what}): {describe(error)}"
        ) from error


def describe(error: BaseException) -> str:
    """One line for an operator: the error's class and message, no traceback."""
    name, text = type(error).__name__, " ".join(str(error).split())
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"  # kafka-python's own prefix


def admin(settings: Settings) -> Any:
    """A ``KafkaAdminClient``; close it after use (it is a context manager)."""
    return _connect(settings, "admin", KafkaAdminClient, client_id="debitwatch-tools")


def producer(settings: Settings) -> Any:
    """An idempotent ``KafkaProducer`` taking ``bytes`` keys and values.

    ``acks=all`` and idempotence keep every partition in send order even when a batch is
    retried, which the watermarks rely on (a watermark must follow what it vouches for).
    A few milliseconds of linger let a capture go out in large batches.
    """
    return _connect(
        settings,
        "producer",
        KafkaProducer,
        client_id="debitwatch-producer",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        allow_auto_create_topics=False,
        max_block_ms=int(CONNECT_TIMEOUT * 1000),
    )


def consumer(settings: Settings) -> Any:
    """A ``KafkaConsumer`` outside any group: partitions are assigned by hand.

    It reads committed records only: a transactional producer writing to these topics
    (another tool; debitwatch's own workers use none) could abort, and aborted records
    must not show up in an export. Without transactions this changes nothing.
    """
    return _connect(
        settings,
        "consumer",
        KafkaConsumer,
        client_id="debitwatch-reader",
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )


def topic_partitions(client: Any, topic: str) -> list[Any]:
    """Every ``TopicPartition`` of ``topic`` (``client``: a consumer), in partition
    order; BrokerError if the topic does not exist."""
    try:
        found = client.partitions_for_topic(topic)
    except KafkaError as error:
        raise BrokerError(f"topic {topic!r} is not available: {describe(error)}") from error
    if not found:
        raise BrokerError(
            f"topic {topic!r} does not exist (create it with `debitwatch topics create`)"
        )
    return [TopicPartition(topic, partition) for partition in sorted(found)]


def partition_counts(settings: Settings, topics: Sequence[str]) -> dict[str, int]:
    """topic -> partition count, asked of the cluster's metadata (no waiting for a topic
    to appear); BrokerError naming the first topic that does not exist."""
    with admin(settings) as client:
        try:
            described = client.describe_topics(list(topics))
        except KafkaError as error:
            raise BrokerError(f"cannot describe topics: {describe(error)}") from error
    counts = {
        topic["name"]: len(topic["partitions"])
        for topic in described
        if topic.get("error_code", 0) == 0 and topic.get("partitions")
    }
    for topic in topics:
        if topic not in counts:
            raise BrokerError(
                f"topic {topic!r} does not exist (create it with `debitwatch topics create`)"
            )
    return counts


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """partition -> offset of the next record to be written (0 for an empty partition)."""
    reader = consumer(settings)
    try:
        partitions = topic_partitions(reader, topic)
        try:
            ends = reader.end_offsets(partitions)
        except KafkaError as error:
            raise BrokerError(f"cannot read offsets of {topic!r}: {describe(error)}") from error
        return {tp.partition: int(offset) for tp, offset in ends.items()}
    finally:
        reader.close()


def read_topic(
    settings: Settings, topic: str, *, until_idle: float, from_beginning: bool = True
) -> Generator[ConsumerRecord, None, None]:
    """Yield ``topic``'s records, each partition in offset order, then stop when done.

    Done means: every partition has been read up to the end offset it had when reading
    started, *and* no record has arrived for ``until_idle`` seconds. The first condition
    makes a read of a large topic complete however slow the broker is; the second lets
    records still in flight (a worker finishing a batch) arrive. ``until_idle=math.inf``
    never stops: a tail. Partitions are interleaved as the broker returns them.

    Raises BrokerError if the broker is unreachable or the topic does not exist.
    """
    reader = consumer(settings)
    try:
        partitions = topic_partitions(reader, topic)
        try:
            reader.assign(partitions)
            if from_beginning:
                reader.seek_to_beginning(*partitions)
            else:
                reader.seek_to_end(*partitions)
            targets = reader.end_offsets(partitions)
        except KafkaError as error:
            raise BrokerError(f"cannot read {topic!r}: {describe(error)}") from error
        pending = {tp for tp in partitions if targets[tp] > 0}
        last_record = time.monotonic()
        while True:
            try:
                batches = reader.poll(timeout_ms=_POLL_MS)
            except KafkaError as error:
                raise BrokerError(f"cannot read {topic!r}: {describe(error)}") from error
            for records in batches.values():
                yield from records
            if batches:
                last_record = time.monotonic()
            if pending:
                pending = {tp for tp in pending if reader.position(tp) < targets[tp]}
            idle = time.monotonic() - last_record
            if not pending and not math.isinf(until_idle) and idle >= until_idle:
                return
    finally:
        reader.close()
