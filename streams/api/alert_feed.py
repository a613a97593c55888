"""Keep an :class:`~streams.api.alert_index.AlertIndex` up to date from the alerts topic.

A plain aiokafka consumer with no group: it is assigned every partition, reads from
the beginning (or, after a reconnect, from where the index stopped) and keeps tailing.
No group means no offsets committed and no rebalance: every worker reads everything,
independently of the partitions its Faust consumer owns, so any worker answers
``GET /alerts`` for all of them. The worker runs :func:`follow_alerts` as a Faust task;
a broker error is logged and retried, never fatal to the stream processing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.api.alert_index import AlertIndex
from streams.settings import Settings

log = logging.getLogger("debitwatch.api")
RETRY_SECONDS: Final = 5.0
# Records decoded per await: the index is built on the worker's event loop, so a large
# topic is read in slices that let the join and the web server run in between.
BATCH: Final = 2_000


async def follow_alerts(settings: Settings, index: AlertIndex, *, poll_ms: int = 500) -> None:
    """Read the alerts topic into ``index`` forever (until cancelled)."""
    while True:
        try:
            await _follow(settings, index, poll_ms)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the broker or the topic is not there yet: try again
            log.warning(
                "alert index: reading %s failed (%s); retrying in %.0f s",
                settings.alerts_topic,
                error,
                RETRY_SECONDS,
            )
            await asyncio.sleep(RETRY_SECONDS)


async def _follow(settings: Settings, index: AlertIndex, poll_ms: int) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # The workers publish outside transactions; read_committed is what a consumer
        # of a transactional producer would need, and costs nothing otherwise.
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        await _exists(consumer, settings.alerts_topic)
        # Join partition p publishes to partition p of the alerts topic (docs/streaming.md),
        # so these are the partitions that can hold alerts, whatever the topic's count.
        tps = [TopicPartition(settings.alerts_topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        for tp in tps:
            position = index.positions.get(tp.partition)
            if position is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, position)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        # Complete once every partition is read up to its end as it was at the start (the
        # position, not the last record: an expired or compacted head holds no records).
        behind = set(tps)
        while True:
            for tp in list(behind):
                if await consumer.position(tp) >= ends[tp]:
                    behind.discard(tp)
            if not behind and not index.complete:
                index.complete = True
                log.info(
                    "alert index: read %s to its end: %d alerts (%d records)",
                    settings.alerts_topic,
                    len(index),
                    index.records,
                )
            batch = await consumer.getmany(timeout_ms=poll_ms, max_records=BATCH)
            for tp, records in batch.items():
                for record in records:
                    index.add(
                        record.key, record.value, partition=tp.partition, offset=record.offset
                    )
    finally:
        await consumer.stop()


async def _exists(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Return once ``topic`` exists (a fresh deployment creates it with its first worker)."""
    while topic not in await consumer.topics():
        log.info("alert index: topic %s does not exist yet; waiting", topic)
        await asyncio.sleep(RETRY_SECONDS)
