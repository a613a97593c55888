"""Writes to the ``webhooks`` table: to its changelog first, to the local store once acked.

The same discipline as the join's state (streams/worker/state_writer.py, which says
why), plus four things:

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
* Kafka refusing one record for good stops every later send and local apply of that
  partition (:class:`ChangelogWriteError`), and the worker (``on_failure``, once). Without
  that, a later record could land after the refused one: an ``~offset`` checkpoint past
  a queue record the changelog does not hold would make the next owner skip the state.
  Faust's commit does not help: its ``producer.flush()`` waits for failed records
  without raising. :meth:`ChangelogWriter.acked` is how the agent learns of it in time.
* Writes for a partition the worker no longer owns (``owns``) are dropped: after a
  rebalance its new owner writes that partition, and a late record from here would
  overwrite the newer queue records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from faust.types import TP

from streams.worker.state_writer import apply_locally

log = logging.getLogger("debitwatch.webhooks")


class ChangelogWriteError(Exception):
    """A record of this partition was refused: nothing more is written to it."""

    def __init__(self, partition: int) -> None:
        super().__init__(f"an earlier write to the webhooks changelog partition {partition} failed")
        self.partition = partition


class ChangelogWriter:
    """Writes ``(key, value or None)`` records of one table, partition by partition."""

    def __init__(
        self,
        app: Any,
        table: Any,
        on_failure: Callable[[BaseException], None],
        local: Callable[[], bool],
        owns: Callable[[int], bool],
    ) -> None:
        self._app = app
        self._table = table
        self._on_failure = on_failure
        self._local = local
        self._owns = owns
        self._failed: dict[int, BaseException] = {}
        self._last: dict[int, asyncio.Task[None]] = {}
        # asyncio.Lock wakes its waiters first-come first-served and lets no newcomer
        # barge in while some wait: the order of calls is the order of sends.
        self._locks: dict[int, asyncio.Lock] = {}

    @property
    def topic(self) -> str:
        return str(self._table.changelog_topic.get_topic_name())

    async def write(self, partition: int, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Hand ``records`` to the producer after every earlier call's (same partition);
        returns once they are in the producer, and applies them to the local store once
        acknowledged (:meth:`acked` waits for that).

        Raises :class:`ChangelogWriteError` once a record of the partition was refused. Does
        nothing for a partition the worker no longer owns.
        """
        if not records:
            return
        lock = self._locks.setdefault(partition, asyncio.Lock())
        async with lock:
            self._check(partition)
            if not self._owns(partition):
                log.debug("webhooks: partition %d is no longer ours: write dropped", partition)
                return
            send = self._app.producer.send
            topic = self.topic
            futures = []
            try:
                for key, value in records:
                    futures.append(await send(topic, key, value, partition, None, None))
            except Exception as error:
                # Some records of this call may be on their way: what follows them in
                # the partition must not be sent.
                self._fail(partition, error)
                raise ChangelogWriteError(partition) from error
            previous = self._last.get(partition)
            self._last[partition] = asyncio.ensure_future(
                self._apply_when_acked(partition, records, futures, previous)
            )

    async def acked(self, partition: int) -> None:
        """Wait until every write to ``partition`` so far is acknowledged; raises
        :class:`ChangelogWriteError` if one was refused."""
        last = self._last.get(partition)
        if last is not None:
            # Shielded: a cancelled caller must not cancel the apply (its records are
            # sent whatever happens to the caller).
            await asyncio.shield(last)
        self._check(partition)

    def _check(self, partition: int) -> None:
        if partition in self._failed:
            raise ChangelogWriteError(partition)

    def _fail(self, partition: int, error: BaseException) -> None:
        first = not self._failed
        self._failed.setdefault(partition, error)
        if first:
            self._on_failure(error)

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
            self._fail(partition, error)
            return
        if partition in self._failed or not self._local():
            return  # nothing after a refused record: the store must not run ahead of it
        apply_locally(self._table.data, partition, records)
        self._table.data.set_persisted_offset(TP(self.topic, partition), delivered[-1].offset)

    async def drain(self) -> None:
        """Wait until every write so far is acknowledged (and applied, unless stopping)."""
        pending = list(self._last.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
