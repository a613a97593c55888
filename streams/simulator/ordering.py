"""Emit events in arrival order, streaming, with memory bounded by what is still in flight.

The generator produces transactions in order of their start time ``t0``, but each
transaction's events arrive over the following seconds to hours. Every event of a
transaction arrives at or after its ``t0`` (delays are never negative, and follow-up
sales start after the story that owns them), so once the generator has moved on to a
transaction starting at ``t0``, nothing it will ever produce can arrive before ``t0``:
everything buffered earlier than that is final and can be emitted.

Events wait in buckets keyed by arrival second, with a heap of bucket keys. Emitting
pops whole buckets older than the threshold and sorts each (about a hundred items) by
arrival time. The sort is stable and buckets fill in generation order, so ties keep a
deterministic order and the payload bytes are never compared. The whole capture is
never sorted, and the buffer holds only events still in flight (mostly dual-message
clearings due hours later).

>>> buffer = ArrivalBuffer()
>>> buffer.push_many([(2_500_000, "issuer", "b"), (1_200_000, "terminal", "a")])
>>> list(buffer.pop_before(2_000_000))
[[(1200000, 'terminal', 'a')]]
>>> list(buffer.drain())
[[(2500000, 'issuer', 'b')]]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Final

Arrival = tuple[int, str, bytes]
"""(arrival_time_us, source, event_json): one event of the capture, before framing."""

Line = tuple[int, str, str]
"""(arrival_time_us, source, line): a whole capture line, framed, with its newline.

The buffer holds text, not bytes: the writer encodes a whole batch at once, which is
cheaper than encoding every line (all of it is ASCII)."""

_US_PER_SECOND: Final = 1_000_000
_ARRIVAL_TIME: Final = itemgetter(0)


class OrderingError(RuntimeError):
    """An event was pushed earlier than what was already emitted: a generator bug."""


class ArrivalBuffer:
    """Buckets of pending arrivals by second; emits whole sorted buckets (batches).

    ``buckets``, ``heap`` and ``emitted_before_us`` are public for the emitter's
    inlined insert, which must keep the same invariants as :meth:`push_many`.
    """

    def __init__(self) -> None:
        self.buckets: dict[int, list[Line]] = {}
        self.heap: list[int] = []
        self.emitted_before_us = 0
        self.last_arrival_us: int | None = None  # of the last event emitted

    def push_many(self, arrivals: Iterable[Line]) -> None:
        """Buffer ``arrivals`` (any order). Raises OrderingError for one already due."""
        buckets = self.buckets
        heap = self.heap
        floor = self.emitted_before_us
        for item in arrivals:
            arrival_us = item[0]
            if arrival_us < floor:
                raise OrderingError(
                    f"event arriving at {arrival_us} us pushed after emitting up to {floor} us"
                )
            second = arrival_us // _US_PER_SECOND
            bucket = buckets.get(second)
            if bucket is None:
                buckets[second] = [item]
                heapq.heappush(heap, second)
            else:
                bucket.append(item)

    def check_not_before_emitted(self, t0_ms: int) -> None:
        """A transaction starting at ``t0_ms`` must not predate what was emitted: every
        event arrives at or after its t0, so it would break arrival order."""
        if t0_ms * 1_000 < self.emitted_before_us:
            raise OrderingError(f"transaction at {t0_ms} ms is older than what was emitted")

    def ready(self, before_us: int) -> bool:
        """True when some bucket lies wholly before ``before_us`` (cheap pre-check)."""
        return bool(self.heap) and self.heap[0] < before_us // _US_PER_SECOND

    def _pop(self) -> list[Line]:
        second = heapq.heappop(self.heap)
        bucket = self.buckets.pop(second)
        bucket.sort(key=_ARRIVAL_TIME)
        self.last_arrival_us = bucket[-1][0]
        return bucket

    def pop_before(self, before_us: int) -> Iterator[list[Line]]:
        """Emit, as sorted batches, every event of an arrival second before ``before_us``.

        The caller promises that nothing arriving before ``before_us`` will be pushed
        afterwards.
        """
        limit = before_us // _US_PER_SECOND
        self.emitted_before_us = max(self.emitted_before_us, limit * _US_PER_SECOND)
        heap = self.heap
        while heap and heap[0] < limit:
            yield self._pop()

    def drain(self) -> Iterator[list[Line]]:
        """Emit everything left, as sorted batches (the end of the run)."""
        heap = self.heap
        while heap:
            self.emitted_before_us = (heap[0] + 1) * _US_PER_SECOND
            yield self._pop()
