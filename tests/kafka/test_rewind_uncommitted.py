"""Reading again after an abandoned fetch must include never-committed partitions
(streams/worker/handoff.py ``rewind_uncommitted``), on the real broker.

aiokafka's ``seek_to_committed`` (under Faust's ``perform_seek``) only seeks partitions
whose committed offset is above 0: a partition the group never committed keeps its
fetch position, and records fetched there and then abandoned were never read again.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from streams.kafka_clients import admin, producer
from streams.settings import Settings
from streams.worker.handoff import rewind_uncommitted


class _FaustShape:
    """What rewind_uncommitted uses of Faust's aiokafka consumer, over a real one."""

    def __init__(self, consumer: AIOKafkaConsumer, reset: str = "earliest") -> None:
        self._consumer = consumer
        self._thread = self  # Faust's consumer thread: seek_to_beginning lives there
        self.app = SimpleNamespace(
            conf=SimpleNamespace(consumer_auto_offset_reset=reset),
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
        )

    async def seek_to_committed(self) -> Any:
        return await self._consumer.seek_to_committed()

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        await self._consumer.seek_to_beginning(*partitions)


def test_a_partition_never_committed_is_read_again_from_its_beginning(
    kafka_bootstrap: str,
) -> None:
    topic = f"rewind-{uuid.uuid4().hex[:10]}"
    settings = Settings(broker=f"kafka://{kafka_bootstrap}")
    with admin(settings) as client:
        client.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    with producer(settings) as client:
        for partition in (0, 1):
            for n in range(3):
                client.send(topic, value=f"{partition}-{n}".encode(), partition=partition)
        client.flush()
    never, committed = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def positions_after_reading_again(rewind: bool) -> dict[int, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=f"rewind-{uuid.uuid4().hex[:10]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            consumer.assign([never, committed])
            await consumer.commit({committed: 2})  # partition 1 committed up to 2
            await consumer.seek_to_beginning(never, committed)
            read = 0
            while read < 6:  # every record fetched: both positions at 3
                batches = await consumer.getmany(timeout_ms=5000)
                read += sum(len(records) for records in batches.values())
            shaped = _FaustShape(consumer)
            if rewind:
                rewind_uncommitted(shaped)
            await shaped.seek_to_committed()  # what Faust's perform_seek calls
            return {tp.partition: await consumer.position(tp) for tp in (never, committed)}
        finally:
            await consumer.stop()

    assert asyncio.run(positions_after_reading_again(rewind=False)) == {0: 3, 1: 2}  # the bug
    assert asyncio.run(positions_after_reading_again(rewind=True)) == {0: 0, 1: 2}
