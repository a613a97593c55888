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
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
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
