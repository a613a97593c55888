"""Write a join partition's state: to its changelog first, to the local store once acked.

The join's durable state is one Faust table, ``txns``: a record per transaction
(``Txn.to_bytes()``) and, under :data:`CHECKPOINT_PREFIX`, one checkpoint per
partition. Keeping the checkpoint in the *same* changelog partition as the
transactions it summarises means Kafka orders them: a restored checkpoint never
describes state the changelog does not hold.

Why not ``table[key] = value``: Faust queues each changelog record in a buffer drained
one ``publish_message`` at a time, and writes the local store at once. Here:

* records go straight to the producer as whole batches (``batch_send.py``; two thirds
  of the join's time, measured, was Faust's per-write path);
* the local store (RocksDB, or memory) is written only when Kafka has acknowledged the
  record, in order. A worker killed with SIGKILL therefore never restarts from a local
  state the changelog lacks (its replay would see every event as a duplicate and never
  write them again), and the store's persisted offset moves with it;
* a record Kafka refuses for good stops the worker (``on_failure``) before Faust can
  commit the input offsets that caused it. Faust flushes this producer before every
  commit, so a committed event's state is always in the changelog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Final

from faust.types import TP

from streams.worker.batch_send import NO_HEADERS, Delivery, send_records

CHECKPOINT_PREFIX: Final = b"~checkpoint/"


def checkpoint_key(partition: int) -> bytes:
    return CHECKPOINT_PREFIX + str(partition).encode()


class StateWriter:
    """Writes ``(key, value or None)`` batches of one table, partition by partition."""

    def __init__(self, app: Any, table: Any, on_failure: Callable[[BaseException], None]) -> None:
        self._app = app
        self._table = table
        self._topic = table.changelog_topic.get_topic_name()
        self._on_failure = on_failure
        self._last: dict[int, asyncio.Task[None]] = {}

    async def write(self, partition: int, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Send ``records`` to the changelog partition; apply them locally once acked."""
        if not records:
            return
        delivery = await send_records(
            self._app.producer._ensure_producer(),
            self._topic,
            partition,
            ((key, value, NO_HEADERS) for key, value in records),
        )
        previous = self._last.get(partition)
        self._last[partition] = asyncio.ensure_future(
            self._apply_when_acked(partition, records, delivery, previous)
        )

    async def _apply_when_acked(
        self,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        delivery: Delivery,
        previous: asyncio.Task[None] | None,
    ) -> None:
        try:
            if previous is not None:
                await previous  # batches of a partition reach the store in order
            next_offset = await delivery.next_offset()
        except BaseException as error:
            self._on_failure(error)
            return
        apply_locally(self._table.data, partition, records)
        assert next_offset is not None
        self._table.data.set_persisted_offset(TP(self._topic, partition), next_offset - 1)

    async def drain(self) -> None:
        """Wait until every write so far is acknowledged and applied locally."""
        pending = list(self._last.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def apply_locally(
    store: Any, partition: int, records: Sequence[tuple[bytes, bytes | None]]
) -> None:
    """Put acknowledged records into the table's local store for ``partition``.

    Faust's stores pick the RocksDB database from the event being processed; this runs
    outside any event, so it names the partition's database itself (the memory store
    keeps one dict for all partitions).
    """
    open_partition = getattr(store, "_db_for_partition", None)
    if open_partition is not None:
        db = open_partition(partition)
        for key, value in records:
            if value is None:
                db.delete(key)
            else:
                db.put(key, value)
        return
    data = store.data
    for key, value in records:
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
