"""The batch hand-off's pure parts: acknowledging ranges, the queue's bound and its
settling on a rebalance. (Against the real Faust consumer and
Kafka: the equivalence, crash and rebalance tests in tests/kafka.)"""

from __future__ import annotations

import asyncio
import collections
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.worker import batch_feed
from streams.worker.batch_feed import Batch, BatchFeed, _ack_range


def _records(tp: TP, offsets: range) -> list[Any]:
    return [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o) for o in offsets]


def _batch(tp: TP, offsets: range, generation: int = 1) -> Batch:
    return Batch(tp, _records(tp, offsets), generation, offsets.start)


A, B, C = TP("t", 0), TP("t", 1), TP("u", 0)


def _consumer(committed: int | None) -> Any:
    return SimpleNamespace(
        _committed_offset=collections.defaultdict(lambda: committed),
        _acked=collections.defaultdict(list),
        _acked_index=collections.defaultdict(set),
        _waiting_for_ack=None,
        _n_acked=0,
    )


def test_ack_range_covers_gaps_and_skips_what_is_committed() -> None:
    consumer = _consumer(committed=5)
    assert _ack_range(consumer, A, 3, 8) == 4  # 3 and 4 are committed already
    assert consumer._acked[A] == [5, 6, 7, 8]
    assert _ack_range(consumer, A, 1, 4) == 0
    fresh = _consumer(committed=None)
    assert _ack_range(fresh, B, 0, 2) == 3 and fresh._acked[B] == [0, 1, 2]


def test_ack_range_lists_an_offset_read_again_once() -> None:
    # Records processed before a seek and again after it: Faust commits the first run of
    # consecutive offsets, so a repeat would stop the commit in the middle.
    consumer = _consumer(committed=None)
    assert _ack_range(consumer, A, 10, 12) == 3
    assert _ack_range(consumer, A, 10, 14) == 2
    assert consumer._acked[A] == [10, 11, 12, 13, 14]
    assert consumer._acked_index[A] == {10, 11, 12, 13, 14}


class _Channel:
    """Stands for the agent's topic: iterating it is what registers it with Faust."""

    registered = 0

    def __aiter__(self) -> _Channel:
        self.registered += 1
        return self


def _app(generation: int = 1) -> Any:
    return SimpleNamespace(
        consumer=_consumer(committed=None),
        consumer_generation_id=generation,
        monitor=SimpleNamespace(stream_inbound_time={}),
    )


def test_feed_bounds_the_queue_drops_old_generations_and_settles() -> None:
    async def scenario() -> None:
        app = _app(generation=1)
        feed = BatchFeed(app, ["t"], max_records=4)
        stream = SimpleNamespace(channel=_Channel())
        assert await feed.put(_batch(A, range(0, 3), generation=1))
        app.consumer_generation_id = 2  # a rebalance: what is queued is stale now
        assert not await feed.put(_batch(A, range(0, 3), generation=1))  # refused
        assert await feed.put(_batch(A, range(3, 6), generation=2))
        blocked = asyncio.ensure_future(feed.put(_batch(B, range(0, 2), generation=2)))
        await asyncio.sleep(0.01)
        assert not blocked.done()  # 6 records queued, bound 4: the fetcher waits
        batches = feed.subscribe(stream)
        first = await anext(batches)
        assert [(b.tp, b.generation) for b in first] == [(A, 2)]  # generation 1 dropped
        assert stream.channel.registered == 1
        await asyncio.wait_for(blocked, 1)  # room again
        settling = asyncio.ensure_future(feed.settle())
        await asyncio.sleep(0.01)
        assert not settling.done()  # a batch is being processed
        feed.ack(first)
        await asyncio.wait_for(settling, 1)
        assert app.consumer._acked[A] == [3, 4, 5]  # only the processed batch
        assert app.consumer._acked[B] == []  # the queued one was dropped, not acked
        assert app.consumer._n_acked == 3

    asyncio.run(scenario())


def test_take_without_waiting() -> None:
    async def scenario() -> None:
        feed = BatchFeed(_app(), ["t"], max_records=100)
        assert await feed.take(wait=False) == []
        await feed.put(_batch(B, range(0, 2)))
        assert [b.tp for b in await feed.take(wait=False)] == [B]

    asyncio.run(scenario())


class _Flag:
    def __init__(self) -> None:
        self.value = False

    def is_set(self) -> bool:
        return self.value


class _FetchingConsumer:
    """Faust's consumer as the batch loop sees it, with scripted fetches."""

    def __init__(self, app: Any, fetches: list[dict[Any, list[Any]]], committed: int) -> None:
        self.app = app
        self.fetches = collections.deque(fetches)
        self.committed = committed
        self.seeks = 0
        self._stopped = _Flag()
        self.diag = SimpleNamespace(set_flag=lambda _f: None, unset_flag=lambda _f: None)
        self.flow_active = True
        self.should_stop = False
        self.consumer_stopped_errors: tuple[type[BaseException], ...] = ()
        self._read_offset: dict[TP, int | None] = collections.defaultdict(lambda: None)
        self._buffered_partitions: set[TP] = set()
        self._commit_every = None
        self._n_acked = 0

    async def _wait_next_records(self, timeout: float) -> tuple[Any, None]:
        if not self.fetches:
            self._stopped.value = True
            return {}, None
        return self.fetches.popleft(), None

    def highwater(self, tp: TP) -> int:
        return 100

    async def perform_seek(self) -> None:
        self.seeks += 1
        self._read_offset[A] = self.committed

    async def seek_to_committed(self) -> dict[TP, int]:  # wrapped by install(), unused here
        return {A: self.committed}

    async def seek(self, tp: TP, offset: int) -> None:
        self._read_offset[tp] = offset

    async def wait_empty(self) -> None: ...


def test_a_seek_while_the_feed_is_full_leaves_no_stale_read_offset() -> None:
    # The recovery's seek runs while the fetcher waits for room in a full feed: the
    # batch it then queues is stale, and the partition's read offset must stay where the
    # seek put it (10), or 10-19 would be skipped as read when fetched again.
    async def scenario() -> None:
        app = SimpleNamespace(
            consumer_generation_id=1,
            should_stop=False,
            monitor=SimpleNamespace(track_tp_end_offset=lambda tp, hw: None),
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
            conf=SimpleNamespace(consumer_auto_offset_reset="earliest"),
        )
        first, second = _records(A, range(10, 15)), _records(A, range(15, 20))
        consumer = _FetchingConsumer(app, [{A: first}, {A: second}], committed=10)
        feed = BatchFeed(app, ["t"], max_records=5)
        batch_feed.install(consumer, [feed])
        fetcher = SimpleNamespace(_stopped=_Flag())
        draining = asyncio.ensure_future(consumer._drain_messages(fetcher))  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
        assert consumer._read_offset[A] == 14  # the first fetch is queued: the feed is full
        await consumer.perform_seek()  # the recovery's seek, the second fetch waiting
        assert consumer.seeks == 1
        await feed.take()  # room: the stale second fetch goes in
        await asyncio.wait_for(draining, 1)
        assert consumer.seeks == 2  # the loop sought again rather than keep it
        assert consumer._read_offset[A] == 10

    asyncio.run(scenario())
