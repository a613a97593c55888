"""The seek race of Faust's own fetcher loop, and the epoch that guards ours
(streams/worker/handoff.py), without Kafka.

A stand-in consumer with Faust's attribute names: what a loop does with read offsets is
the logic under test. Our loop with the epoch: tests/streams/worker/test_batch_feed.py;
the real consumer: tests/kafka (test_crash among them).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP

from streams.worker import handoff

TOPIC = "events-by-merchant"
P0 = TP(TOPIC, 0)


class _Message:
    def __init__(self, offset: int) -> None:
        self.topic = TOPIC
        self.offset = offset
        self.key = self.value = None  # Faust logs them when it drops a message


class _Diag:
    def set_flag(self, _flag: str) -> None: ...

    def unset_flag(self, _flag: str) -> None: ...


class _Log:
    def dev(self, *_args: Any) -> None: ...  # Faust's "DROPPED MESSAGE" note

    def info(self, *_args: Any) -> None: ...

    def exception(self, *_args: Any) -> None: ...


class _Topics:
    def acks_enabled_for(self, _topic: str) -> bool:
        return True


class _App:
    topics = _Topics()


class _Event:
    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:  # never set in these tests
        await asyncio.Event().wait()


class FakeConsumer:
    """Hands out scripted fetches; the callback may seek while a message is delivered."""

    def __init__(self, fetches: list[list[int]], committed: int) -> None:
        self.fetches = collections.deque(fetches)
        self.committed = committed
        self.delivered: list[int] = []
        self.seek_during: int | None = None  # seek while delivering this offset
        self._read_offset: dict[TP, int | None] = collections.defaultdict(lambda: None)
        self._commit_every = None
        self._n_acked = 0
        self.gaps: list[tuple[int, int]] = []
        self.app = _App()
        self.suspend_flow = _Event()
        self._stopped = _Event()
        self.diag = _Diag()
        self.log = _Log()
        self.should_stop = False
        self.consumer_stopped_errors: tuple[type[BaseException], ...] = ()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, _Message]]:
        if not self.fetches:
            self._stopped._set = True  # the loop ends once the script is played
            return
        for offset in self.fetches.popleft():
            yield P0, _Message(offset)

    async def callback(self, message: _Message) -> None:
        self.delivered.append(message.offset)
        if message.offset == self.seek_during:
            self.seek_during = None  # once
            await self.perform_seek()  # a full queue: the recovery seeks meanwhile

    async def perform_seek(self) -> None:
        self._read_offset[P0] = self.committed

    async def seek(self, tp: TP, offset: int) -> None:
        self._read_offset[tp] = offset

    async def _add_gap(self, tp: TP, first: int, last: int) -> None:
        self.gaps.append((first, last))

    async def wait_first(self, callback: Any, suspended: Any) -> None:
        suspended.close()  # Faust's loop only; the flow is never suspended here
        await callback

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def test_faust_s_own_loop_skips_records_read_again_after_a_seek() -> None:
    # faust-streaming's Consumer._drain_messages, a seek during one delivery: the offset of the
    # delivery that straddled the seek overwrites the seek's reset, the stale fetch goes
    # on, and 10-13, read again, are taken for read already. In a worker the first
    # deliveries were in a stream queue that the recovery then cleared, so 10-13 are never
    # acknowledged, and Faust never commits past an unacknowledged head.
    consumer = FakeConsumer([[10, 11, 12, 13, 14], [10, 11, 12, 13, 14, 15]], committed=10)
    consumer.seek_during = 12
    fetcher = type("Fetcher", (), {"_stopped": _Event()})()
    asyncio.run(FaustConsumer._drain_messages(consumer, fetcher))  # type: ignore[arg-type]
    assert consumer.delivered == [10, 11, 12, 13, 14, 14, 15]


def test_every_seek_moves_the_epoch_before_and_after() -> None:
    consumer = FakeConsumer([], committed=0)
    epoch = handoff.SeekEpoch(consumer)
    asyncio.run(consumer.perform_seek())
    asyncio.run(consumer.seek(P0, 3))
    assert epoch.value == 4


def test_no_rewind_with_auto_offset_reset_latest() -> None:
    """With ``latest`` a partition with nothing committed starts at its end: nothing to
    read again, so rewind_uncommitted leaves the seek alone (the real broker's case, with
    ``earliest``: tests/kafka/test_rewind_uncommitted.py)."""

    async def seek_to_committed() -> dict[Any, int]:
        return {}

    consumer = SimpleNamespace(
        app=SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset="latest")),
        seek_to_committed=seek_to_committed,
    )
    handoff.rewind_uncommitted(consumer)
    assert consumer.seek_to_committed is seek_to_committed
