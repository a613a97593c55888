"""Faust's fetcher loop, with a cheaper hand-off and no stale read offsets after a seek.

Replaces ``Consumer._drain_messages`` (faust-streaming 0.15.3,
``faust/transport/consumer.py``) with the same loop and two changes:

**The hand-off.** Faust hands each message to the streams with
``await self.wait_first(callback(message), self.suspend_flow.wait())``. ``mode``'s
``wait_first`` wraps the callback, the suspend event and the service's stopped and
crashed events in four tasks, waits for the first, then cancels three: four task
creations and an ``asyncio.wait`` for every message, about a third of the worker's time
when profiled (docs/PERFORMANCE.md). While the flow is not suspended the callback is
simply awaited here. It only blocks when a stream's queue is full or Faust's flow control
is paused; a message it delivers late carries its old consumer generation, and Faust's
stream drops such messages (``Stream._c_aiter``), as it drops the ones the original path
abandons.

**No stale read offset after a seek.** Faust's recovery resumes the stream partitions,
then seeks them to their committed offsets (``Recovery.on_recovery_completed``) while
the fetcher is already delivering: the flow was resumed earlier to read the changelogs.
A delivery that started before the seek and ends after it (a full stream queue: after
a restart the join's queue fills while it restores its state) then wrote that message's
offset as the partition's read offset, over the seek's reset, and the rest of the
pre-seek fetch followed. The records between the committed offset and that offset were
then filtered out as already read when fetched again, never acknowledged, and Faust
never commits past an unacknowledged head: the partition's commit stopped for good
while the worker looked idle (``tests/kafka/test_crash.py`` hung about once in thirty
restarts; docs/faust-streaming-pr.md). Here every seek starts a new epoch, and a fetch
from an older epoch is abandoned, its read offsets untouched; the fetcher reads again
from where the seek put it. A message of it that was already delivered is processed
twice at most, which the join counts as a duplicate.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

# Faust's flag name for "the consumer is fetching" (faust.transport.consumer).
_CONSUMER_FETCHING = "C_FETCHING"
_YIELD_EVERY = 100  # messages between two yields to the event loop, as Faust does


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


def install(consumer: Any) -> SeekEpoch:
    """Give ``consumer`` (an app's ``app.consumer``) the loop described above."""
    epoch = SeekEpoch(consumer)
    consumer._drain_messages = functools.partial(_drain_messages, consumer, epoch)
    return epoch


async def _drain_messages(consumer: Any, epoch: SeekEpoch, fetcher: Any) -> None:
    """Faust's ``Consumer._drain_messages`` with the two changes of the module doc."""
    consumer_stopped = consumer._stopped.is_set
    fetcher_stopped = fetcher._stopped.is_set
    set_flag, unset_flag = consumer.diag.set_flag, consumer.diag.unset_flag
    try:
        while not (consumer_stopped() or fetcher_stopped()):
            set_flag(_CONSUMER_FETCHING)
            fetched_in = epoch.value
            messages = consumer.getmany(timeout=1.0)
            await asyncio.sleep(0)  # getmany may return at once, again and again
            if not consumer.should_stop:
                try:
                    await _deliver(consumer, epoch, fetched_in, messages)
                finally:
                    await messages.aclose()
            unset_flag(_CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            consumer.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            consumer.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        consumer.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(_CONSUMER_FETCHING)


async def _deliver(consumer: Any, epoch: SeekEpoch, fetched_in: int, messages: Any) -> None:
    """Hand one fetch's messages to the streams, until a seek makes the rest stale."""
    read_offset = consumer._read_offset
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    since_yield = 0
    async for tp, message in messages:
        if epoch.value != fetched_in:
            return
        since_yield += 1
        if since_yield > _YIELD_EVERY:
            await asyncio.sleep(0)
            since_yield = 0
        offset = message.offset
        previous = read_offset[tp]
        if previous is not None and offset < previous:
            continue  # read already (Faust logs these as dropped)
        if previous and offset - previous > 1 and acks_enabled_for(message.topic):
            await consumer._add_gap(tp, previous + 1, offset)  # compaction, markers
        commit_every = consumer._commit_every
        if commit_every is not None and consumer._n_acked >= commit_every:
            consumer._n_acked = 0
            await consumer.commit()
        await hand_over(consumer, message)
        if epoch.value != fetched_in:
            return  # seeked meanwhile: the seek's read offset stands
        read_offset[tp] = offset


async def hand_over(consumer: Any, message: Any) -> None:
    """One message to the streams: the callback awaited directly while the flow runs,
    Faust's ``wait_first`` (which gives up when the flow is suspended) otherwise."""
    if consumer.suspend_flow.is_set():
        await consumer.wait_first(consumer.callback(message), consumer.suspend_flow.wait())
    else:
        await consumer.callback(message)
