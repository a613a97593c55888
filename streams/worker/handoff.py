"""Two pieces of Faust's fetcher loop (faust-streaming 0.15.3), used by the batch feed's
loop (batch_feed.py) that replaces ``Consumer._drain_messages``.

**A cheaper per-message hand-off** (:func:`hand_over`, for the topics no batch feed
takes: changelogs while restoring, the webhook sink's alerts). Faust hands each message
to the streams with ``await self.wait_first(callback(message), self.suspend_flow.wait())``;
``mode``'s ``wait_first`` wraps the callback, the suspend event and the service's stopped
and crashed events in four tasks, waits for the first, then cancels three: four task
creations and an ``asyncio.wait`` for every message, about a third of the worker's time
when profiled (docs/PERFORMANCE.md). While the flow is not suspended the callback is
simply awaited here. It only blocks when a stream's queue is full or Faust's flow control
is paused; a message it delivers late carries its old consumer generation, and Faust's
stream drops such messages (``Stream._c_aiter``), as it drops the ones the original path
abandons.

**A seek epoch** (:class:`SeekEpoch`), against stale read offsets after a seek. Faust's
recovery resumes the stream partitions, then seeks them to their committed offsets
(``Recovery.on_recovery_completed``) while the fetcher is already delivering: the flow
was resumed earlier to read the changelogs. A delivery that started before the seek and
ended after it (a full stream queue: after a restart the join's queue fills while it
restores its state) then wrote its offset as the partition's read offset, over the
seek's reset, and the rest of the pre-seek fetch followed. The records between the
committed offset and that offset were then filtered out as already read when fetched
again, never acknowledged, and Faust never commits past an unacknowledged head: the
partition's commit stopped for good while the worker looked idle
(``tests/kafka/test_crash.py`` hung about once in 75 restarts; docs/faust-streaming-pr.md).
A loop that notes the epoch before each fetch and abandons the fetch once it has moved
never writes such an offset; the fetcher reads again from where the seek put it.

**A rewind of never-committed partitions** (:func:`rewind_uncommitted`). "Read again
from the committed offsets" is Faust's ``perform_seek``, which calls aiokafka's
``seek_to_committed``, and that seeks only partitions whose committed offset is above 0
(``if offset and offset > 0``). A partition the group has never committed keeps its
fetch position, so the records of a fetch abandoned there (a rebalance, a seek, the flow
paused while they were in flight) are never read again: never processed, never
acknowledged. Seen in ``tests/kafka/test_api.py``'s two-worker start (about one run in
five, on main too): a worker's input partitions held one watermark each, none
committed yet, a fetch of them was abandoned around the group's second rebalance, and
the group's lag stayed at 4 for good. With
later input the next records would have been committed past the lost ones: an event
silently skipped, against at-least-once. The consumer's ``auto_offset_reset`` is
``earliest``, so a partition with nothing committed is read from its beginning, as on
a fresh assignment.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any


class SeekEpoch:
    """Counts the seeks of a consumer's partitions, before and after each one."""

    def __init__(self, consumer: Any) -> None:
        self.value = 0
        consumer.perform_seek = self._counted(consumer.perform_seek)
        consumer.seek = self._counted(consumer.seek)

    def _counted(self, seek: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(seek)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.value += 1  # a fetch in flight is stale from here on ...
            try:
                return await seek(*args, **kwargs)
            finally:
                self.value += 1  # ... and so is one made while the seek ran

        return counted


async def hand_over(consumer: Any, message: Any) -> None:
    """One message to the streams: the callback awaited directly while the flow runs,
    Faust's ``wait_first`` (which gives up when the flow is suspended) otherwise."""
    if consumer.suspend_flow.is_set():
        await consumer.wait_first(consumer.callback(message), consumer.suspend_flow.wait())
    else:
        await consumer.callback(message)


def rewind_uncommitted(consumer: Any) -> None:
    """Make ``consumer.seek_to_committed`` (under Faust's ``perform_seek``) also seek the
    stream partitions with no committed offset (None or 0) to their beginning (see the
    module doc). Changelog partitions (no acknowledgements) are left to Faust's recovery,
    which seeks them itself. Only for ``auto_offset_reset = earliest``."""
    if consumer.app.conf.consumer_auto_offset_reset != "earliest":
        return
    seek_to_committed = consumer.seek_to_committed
    acks_enabled_for = consumer.app.topics.acks_enabled_for

    @functools.wraps(seek_to_committed)
    async def seek_to_committed_or_beginning() -> Mapping[Any, int | None]:
        committed: Mapping[Any, int | None] = await seek_to_committed()
        never = [
            tp
            for tp, offset in committed.items()
            if not (offset and offset > 0) and acks_enabled_for(tp.topic)
        ]
        if never:
            await consumer._thread.seek_to_beginning(*never)
        return committed

    consumer.seek_to_committed = seek_to_committed_or_beginning
