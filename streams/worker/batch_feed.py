"""Hand the join and the ingest whole fetched batches instead of one message at a time.

Faust's fetcher (``Consumer._drain_messages``, faust-streaming 0.15.3) turns every
fetched record into a ``ConsumerMessage``, awaits the conductor's callback for it (flow
control, decode, an ``Event``, a queue put), and every stream then takes it out of the
queue again (generation check, ack tracking, sensors): ~200 µs of CPU per message here,
twice per input event (input topic, then the re-keyed topic), measured with
pyinstrument (docs/PERFORMANCE.md). The core needs ~25 µs per event.

:func:`install` replaces the fetcher's drain loop with one that, for the topics of a
:class:`BatchFeed`, puts the records aiokafka fetched for a partition into the feed as
one :class:`Batch`; the agent takes every queued batch at once and acknowledges the
batch's offsets to Faust's consumer when it has processed them, so Faust still commits
(only what was processed), rebalances, flushes the producer before each commit, and
runs the tables, the web server and the other agents unchanged. Records of any other
topic take Faust's own per-message path.

Rebalances keep Faust's guarantees: Faust's ``wait_empty`` (called on revocation, before
its commit) first waits until the batch an agent is processing is done and acknowledged,
and drops the queued ones (on stop it only drops them, as Faust does not wait for its
streams then either); a batch fetched in an older consumer generation is dropped rather
than processed, as Faust's streams drop such messages. Either way the partition's owner
reads them again from the committed offset.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, NamedTuple

from faust.types import TP

from streams.worker.handoff import SeekEpoch, hand_over, rewind_uncommitted

# Faust's flag name for "the consumer is fetching" (faust.transport.consumer).
_CONSUMER_FETCHING = "C_FETCHING"


class Batch(NamedTuple):
    """The records of one partition fetched together, oldest first."""

    tp: TP
    records: list[Any]  # aiokafka ConsumerRecord: .key .value .headers .offset
    generation: int
    first_ack: int  # the lowest offset this batch acknowledges (covers a gap before it)


class BatchFeed:
    """A bounded queue of fetched batches for one agent's topics.

    ``max_records`` bounds the records queued and not yet taken: when it is reached the
    fetcher waits, which is Faust's back-pressure (its stream buffers) by another name.
    """

    def __init__(self, app: Any, topics: Iterable[str], max_records: int) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.max_records = max_records
        self._queue: collections.deque[Batch] = collections.deque()
        self._queued_records = 0
        self._ready = asyncio.Event()  # something is queued
        self._room = asyncio.Event()  # below max_records
        self._room.set()
        self._idle = asyncio.Event()  # no batch taken and not yet acknowledged
        self._idle.set()

    # ------------------------------------------------------------------ fetcher side

    async def put(self, batch: Batch) -> bool:
        """Queue ``batch`` once there is room; False (not queued) if the consumer
        generation changed meanwhile (the fetcher then reads it again)."""
        while self._queued_records >= self.max_records:
            self._room.clear()
            await self._room.wait()
        if batch.generation != self.app.consumer_generation_id:
            return False
        self._queue.append(batch)
        self._queued_records += len(batch.records)
        self._ready.set()
        return True

    async def settle(self) -> None:
        """Drop what is queued; wait for the batches being processed to be acknowledged."""
        self.drop_queued()
        await self._idle.wait()

    def drop_queued(self) -> None:
        self._queue.clear()
        self._queued_records = 0
        self._ready.clear()
        self._room.set()

    # -------------------------------------------------------------------- agent side

    def register(self, stream: Any) -> None:
        """Subscribe Faust's consumer to the feed's topics through ``stream``, the agent's
        Faust stream: iterating its channel once registers the topics with the conductor
        (so the consumer subscribes to them and counts their acknowledgements)."""
        stream.channel.__aiter__()  # Topic.__aiter__: app.topics.add(...), reads nothing

    async def take(self, wait: bool = True) -> list[Batch]:
        """Every queued batch of the current consumer generation (waiting for one if
        ``wait``; else possibly none). Acknowledge them with :meth:`ack` before the next
        take: until then a rebalance waits for them."""
        while True:
            while wait and not self._queue:
                self._ready.clear()
                await self._ready.wait()
            taken = list(self._queue)
            self.drop_queued()
            generation = self.app.consumer_generation_id
            current = [batch for batch in taken if batch.generation == generation]
            if current or not wait:
                break
        self._idle.clear()
        inbound = getattr(self.app.monitor, "stream_inbound_time", None)
        if inbound is not None:  # Faust's livelock check reads when a stream last read
            now = time.monotonic()
            for batch in current:
                inbound[batch.tp] = now
        return current

    async def subscribe(self, stream: Any) -> AsyncIterator[list[Batch]]:
        """:meth:`register`, then :meth:`take` for ever."""
        self.register(stream)
        while True:
            yield await self.take()

    def ack(self, batches: Iterable[Batch]) -> None:
        """Tell Faust's consumer these batches are processed: their offsets can commit."""
        consumer = self.app.consumer
        generation = self.app.consumer_generation_id
        acked = 0
        for batch in batches:
            if batch.generation != generation:
                continue  # revoked meanwhile: its new owner reads it again
            acked += _ack_range(consumer, batch.tp, batch.first_ack, batch.records[-1].offset)
        consumer._n_acked += acked
        self._idle.set()


def _ack_range(consumer: Any, tp: TP, first: int, last: int) -> int:
    """``Consumer.ack`` for every offset first..last at once (Faust's commit then moves
    to last + 1 once nothing before it is missing). An offset acknowledged already (a
    record read again after a seek) is not listed twice: a repeat would split the run
    Faust commits."""
    committed = consumer._committed_offset[tp]
    if committed is not None:
        first = max(first, committed)
    if first > last:
        return 0
    index = consumer._acked_index[tp]
    fresh = range(first, last + 1)
    if not index.isdisjoint(fresh):
        fresh = [offset for offset in fresh if offset not in index]  # type: ignore[assignment]
    index.update(fresh)
    consumer._acked[tp].extend(fresh)
    waiting = consumer._waiting_for_ack
    if waiting is not None and not waiting.done():
        waiting.set_result(None)
    return len(fresh)


def install(consumer: Any, feeds: Iterable[BatchFeed]) -> None:
    """Route the fetched records of the feeds' topics to them (see the module doc)."""
    by_topic = {topic: feed for feed in feeds for topic in feed.topics}
    every_feed = list(set(by_topic.values()))
    original_wait_empty = consumer.wait_empty

    async def wait_empty() -> None:
        for feed in every_feed:
            if consumer.should_stop:
                # Stopping: Faust does not wait for its streams either (nor for an agent
                # that crashed mid-batch); what is not acknowledged is read again.
                feed.drop_queued()
            else:
                await feed.settle()
        await original_wait_empty()

    consumer.wait_empty = wait_empty
    rewind_uncommitted(consumer)
    consumer._drain_messages = _drainer(consumer, by_topic.get, SeekEpoch(consumer))


def _drainer(consumer: Any, feed_for: Callable[[str], BatchFeed | None], epoch: SeekEpoch) -> Any:
    """The replacement of ``Consumer._drain_messages``: its loop, with whole batches
    for the feeds' topics and Faust's own per-message hand-off for the rest.

    A fetch that is not handed over whole (the flow stopped, the consumer generation
    changed while it was fetched or while a feed was full: a rebalance; or a seek ran
    meanwhile: :class:`handoff.SeekEpoch`) makes the consumer seek back to its committed
    offsets, as Faust's ``getmany`` does when the flow stopped: the records it consumed
    from aiokafka are read again, never skipped, and no read offset of the stale fetch
    is kept.
    """
    app = consumer.app

    async def drain(fetcher: Any) -> None:
        consumer_stopped = consumer._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        set_flag, unset_flag = consumer.diag.set_flag, consumer.diag.unset_flag
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                set_flag(_CONSUMER_FETCHING)
                generation = app.consumer_generation_id
                fetched_in = epoch.value

                def current(generation: int = generation, fetched_in: int = fetched_in) -> bool:
                    """This fetch still stands: no rebalance, no seek since."""
                    return (
                        consumer.flow_active
                        and app.consumer_generation_id == generation
                        and epoch.value == fetched_in
                    )

                records, active = await consumer._wait_next_records(1.0)
                await asyncio.sleep(0)  # as Faust does: never starve the loop
                if records is None or consumer.should_stop:
                    unset_flag(_CONSUMER_FETCHING)
                    continue
                handed_over = current() and await _hand_over(records, active, generation, current)
                if records and not handed_over:
                    await _read_again(consumer)
                unset_flag(_CONSUMER_FETCHING)
        except consumer.consumer_stopped_errors:
            if app.should_stop:
                consumer.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if app.should_stop:
                consumer.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            consumer.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(_CONSUMER_FETCHING)

    async def _hand_over(
        records: Any, active: Any, generation: int, current: Callable[[], bool]
    ) -> bool:
        """Every partition's records to its feed (or Faust's path); False if stopped
        part-way by a rebalance."""
        read_offset = consumer._read_offset
        for aio_tp, records_of_tp in records.items():
            if not current():
                return False
            tp = TP(aio_tp.topic, aio_tp.partition)
            if active is not None and tp not in active and tp not in consumer._buffered_partitions:
                continue
            previous = read_offset.get(tp)
            fetched = records_of_tp
            if previous is not None and fetched[0].offset < previous:
                fetched = [r for r in fetched if r.offset >= previous]
            if not fetched:
                continue
            app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
            feed = feed_for(tp.topic)
            if feed is None:
                if not await _one_by_one(consumer, tp, fetched, current):
                    return False
                continue
            first = fetched[0].offset
            if previous and first - previous > 1 and app.topics.acks_enabled_for(tp.topic):
                first = previous + 1  # Faust's gap: acknowledged with the batch
            await _commit_if_due(consumer)
            # The feed may be full: a rebalance can come and go while this waits.
            if not await feed.put(Batch(tp, fetched, generation, first)):
                return False
            if not current():
                return False  # the batch is queued; its records are read again too
            read_offset[tp] = fetched[-1].offset
        return True

    return drain


async def _read_again(consumer: Any) -> None:
    try:
        await consumer.perform_seek()
    except Exception as error:  # Faust only warns here too (its getmany)
        consumer.log.warning("seek to the committed offsets failed: %r", error)


async def _commit_if_due(consumer: Any) -> None:
    commit_every = consumer._commit_every
    if commit_every is not None and consumer._n_acked >= commit_every:
        consumer._n_acked = 0
        await consumer.commit()


async def _one_by_one(
    consumer: Any, tp: TP, fetched: list[Any], current: Callable[[], bool]
) -> bool:
    """Faust's own path for a topic no feed takes: one ``ConsumerMessage`` each. False
    if a rebalance or a seek stopped it part-way."""
    read_offset = consumer._read_offset
    acks_enabled = consumer.app.topics.acks_enabled_for(tp.topic)
    for record in fetched:
        if not current():
            return False
        offset = record.offset
        previous = read_offset.get(tp)
        gap = offset - (previous or 0)
        if gap > 1 and previous and acks_enabled:
            await consumer._add_gap(tp, previous + 1, offset)
        await _commit_if_due(consumer)
        await hand_over(consumer, consumer._to_message(tp, record))
        # The callback may have waited (a full stream buffer) through a rebalance or a
        # seek that reset the read offset: do not overwrite it with a stale one.
        if not current():
            return False
        read_offset[tp] = offset
    return True
