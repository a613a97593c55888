"""Restore a table's changelog partitions into RocksDB in whole fetched batches.

Faust's recovery hands the changelog to the store one record at a time: the consumer,
the conductor, a queue and a :class:`faust.Event` per record, then
``Store.apply_changelog_batch`` per thousand. Measured with ``bench/recovery.py``: a
worker with an empty data directory read the 1,007,797 records of 1,000,000 open
transactions in 180.8 s (179 µs a record), against a 60 s goal (issue 7).

:class:`CatchUpStore` is Faust's RocksDB store with one addition: when partitions are
newly assigned to it as active, before Faust's recovery reads their persisted offsets,
it reads each changelog partition from its persisted offset to the end with a plain
consumer (``getmany``, no group) and hands every fetched batch to Faust's own
``apply_changelog_batch``, so a record is written exactly as Faust's recovery would
write it (tombstones delete, the persisted offset moves with the batch). Faust's
recovery then starts where this stopped and reads only what is left.

Two bounds keep it a shortcut and never a change of behaviour:

* It runs inside the consumer group's rebalance callback, where aiokafka sends no
  heartbeats. All catch-ups of one rebalance (every table of the app) stop a third of
  the session timeout after the first began, and Faust's recovery reads the rest, as it
  always did. A catch-up that fails (the broker unreachable, a timeout) is logged and
  leaves everything to Faust's recovery; a rebalance superseded by another is skipped,
  as Faust's recovery skips it.
* Standby partitions are left to Faust (they are read in the background anyway).
* The consumer connects as the worker's other plain consumers do (the alerts read-back
  in ``streams.worker.app``): bootstrap servers only, as debitwatch has no TLS or SASL
  settings yet.

The worker's store when ``DEBITWATCH_STORE`` is ``rocksdb`` (``streams.worker.app``): every
table of the app, the join's ``txns`` and the webhook sink's.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Final, NamedTuple, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores import STORES
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

log = logging.getLogger(__name__)
_T = TypeVar("_T")

STORE_URL: Final = "debitwatch-rocksdb://"
# A fetch per partition request large enough that one getmany brings thousands of
# records (a state is ~150 bytes); the bound on what one call returns keeps each
# write batch, and the time between two looks at the clock, small.
_FETCH_BYTES: Final = 16 * 1024**2
_MAX_RECORDS: Final = 20_000


class _Message(NamedTuple):
    """What ``Store.apply_changelog_batch`` reads of an event's message."""

    tp: TP
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _Change(NamedTuple):
    message: _Message


class CatchUpResult(NamedTuple):
    records: int
    seconds: float
    # Per partition: the offset reached (next to read) and the end seen at the start.
    reached: dict[int, tuple[int, int]]
    complete: bool


async def catch_up(
    store: Any,
    tps: Sequence[TP],
    bootstrap: str | list[str],
    budget: float,
) -> CatchUpResult:
    """Apply ``tps`` (changelog partitions of ``store``'s table) from each one's persisted
    offset to the end offset seen at the start, for at most about ``budget`` seconds
    (setting up the consumer included; a fetch under way may finish after it).

    Raises ``TimeoutError`` if the budget is spent before the first fetch.
    """
    started = time.monotonic()
    deadline = started + budget
    records = 0
    reached: dict[int, tuple[int, int]] = {}
    pending: dict[TopicPartition, int] = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=_FETCH_BYTES,
        fetch_max_bytes=_FETCH_BYTES,
    )
    try:
        by_kafka = {TopicPartition(tp.topic, tp.partition): tp for tp in tps}
        await _within(deadline, consumer.start())
        consumer.assign(list(by_kafka))
        ends = await _within(deadline, consumer.end_offsets(list(by_kafka)))
        beginnings = await _within(deadline, consumer.beginning_offsets(list(by_kafka)))
        for ktp, tp in by_kafka.items():
            persisted = store.persisted_offset(tp)
            start = beginnings[ktp] if persisted is None else max(persisted + 1, beginnings[ktp])
            reached[tp.partition] = (start, ends[ktp])
            if start < ends[ktp]:
                consumer.seek(ktp, start)
                pending[ktp] = ends[ktp]
        while pending and time.monotonic() < deadline:
            fetched = await consumer.getmany(*pending, timeout_ms=1000, max_records=_MAX_RECORDS)
            for ktp, batch in fetched.items():
                store.apply_changelog_batch(_changes(by_kafka[ktp], batch), None, None)
                records += len(batch)
            for ktp in list(pending):
                position = await consumer.position(ktp)
                if position > reached[ktp.partition][0]:
                    # Past the last record read, and past any offset that holds no
                    # record (compacted away at the end): Faust's recovery waits for
                    # the persisted offset to reach the end - 1, record or not.
                    store.set_persisted_offset(by_kafka[ktp], position - 1)
                reached[ktp.partition] = (position, pending[ktp])
                if position >= pending[ktp]:
                    del pending[ktp]
    finally:
        await consumer.stop()
    return CatchUpResult(
        records, time.monotonic() - started, reached, complete=bool(reached) and not pending
    )


async def _within(deadline: float, step: Awaitable[_T]) -> _T:
    return await asyncio.wait_for(step, max(0.0, deadline - time.monotonic()))


def _changes(tp: TP, batch: Iterable[Any]) -> list[_Change]:
    return [
        _Change(_Message(tp, tp.partition, record.offset, record.key, record.value))
        for record in batch
    ]


class CatchUpStore(RocksDBStore):
    """Faust's RocksDB store, caught up from the changelog in bulk on assignment."""

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        if generation_id != self.app.consumer_generation_id:
            return  # rebalanced again meanwhile: Faust's recovery skips it too
        standbys = self.app.assignor.assigned_standbys()
        topics = self.table.changelog_topic.topics
        active = sorted(tp for tp in newly_assigned if tp.topic in topics and tp not in standbys)
        if not active:
            return
        bootstrap = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
        # One budget per rebalance for every table of the app, not one per table.
        deadline = rebalance_deadline(self.app, generation_id)
        partitions = [tp.partition for tp in active]
        try:
            result = await catch_up(self, active, bootstrap, deadline - time.monotonic())
        except Exception as error:  # Faust's recovery reads it all, as it always did
            log.warning(
                "changelog catch-up of %s failed (%r): Faust's recovery reads the changelog",
                partitions,
                error,
            )
            return
        log.info(
            "changelog catch-up of %s: %d records in %.1f s%s",
            partitions,
            result.records,
            result.seconds,
            "" if result.complete else " (budget spent: Faust's recovery reads the rest)",
        )


_DEADLINES: weakref.WeakKeyDictionary[Any, tuple[int, float]] = weakref.WeakKeyDictionary()


def rebalance_deadline(app: Any, generation_id: int) -> float:
    """When the catch-ups of this rebalance must stop: a third of the session timeout
    after the first of them started (aiokafka sends no heartbeat until all are done)."""
    known = _DEADLINES.get(app)
    if known is None or known[0] != generation_id:
        known = (generation_id, time.monotonic() + app.conf.broker_session_timeout / 3)
        _DEADLINES[app] = known
    return known[1]


STORES.aliases[STORE_URL.split(":", 1)[0]] = f"{__name__}:CatchUpStore"
