"""Writes to the ``webhooks`` table: to its changelog first, to the local store once acked.

The same discipline as the join's state (streams/worker/state_writer.py, which says
why), plus two things:

* Two writers share a partition here (the agent enqueuing, the dispatcher recording
  attempts), and each record is the whole queue as it is when written. So records
  reach the producer in the order :meth:`ChangelogWriter.write` was called (a FIFO
  lock per partition), and callers compute a record right before the call, with no
  ``await`` in between: the changelog's last record for a key is then always its
  latest state, never a snapshot overtaken by a newer one.
* Once the worker is stopping, Faust has already closed the table's stores, so records
  still written then (the results of the last in-flight attempts) go to the changelog
  only. The next owner of the partition restores them from there, as it restores
  everything past the local store's persisted offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from faust.types import TP

from streams.worker.state_writer import apply_locally


class ChangelogWriter:
    """Writes ``(key, value or None)`` records of one table, partition by partition."""

    def __init__(
        self,
        app: Any,
        table: Any,
        on_failure: Callable[[BaseException], None],
        local: Callable[[], bool],
    ) -> None:
        self._app = app
        self._table = table
        self._on_failure = on_failure
        self._local = local
        self._last: dict[int, asyncio.Task[None]] = {}
        # asyncio.Lock wakes its waiters first-come first-served and lets no newcomer
        # barge in while some wait: the order of calls is the order of sends.
        self._locks: dict[int, asyncio.Lock] = {}

    @property
    def topic(self) -> str:
        return str(self._table.changelog_topic.get_topic_name())

    async def write(self, partition: int, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Hand ``records`` to the producer after every earlier call's (same partition);
        returns once they are in the producer (Faust flushes it before committing), and
        applies them to the local store once acknowledged."""
        if not records:
            return
        lock = self._locks.setdefault(partition, asyncio.Lock())
        async with lock:
            send = self._app.producer.send
            topic = self.topic
            futures = [
                await send(topic, key, value, partition, None, None) for key, value in records
            ]
            previous = self._last.get(partition)
            self._last[partition] = asyncio.ensure_future(
                self._apply_when_acked(partition, records, futures, previous)
            )

    async def _apply_when_acked(
        self,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        futures: list[Any],
        previous: asyncio.Task[None] | None,
    ) -> None:
        try:
            if previous is not None:
                await previous  # a partition's batches reach the store in order
            delivered = await asyncio.gather(*futures)
        except BaseException as error:
            self._on_failure(error)
            return
        if not self._local():
            return
        apply_locally(self._table.data, partition, records)
        self._table.data.set_persisted_offset(TP(self.topic, partition), delivered[-1].offset)

    async def drain(self) -> None:
        """Wait until every write so far is acknowledged (and applied, unless stopping)."""
        pending = list(self._last.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
