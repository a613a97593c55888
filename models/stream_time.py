"""Stream time (CONTRACT §3): per-source progress, and the idle advance on a quiet feed.

Each source (terminal, issuer) has a *progress*: the largest ``occurred_at`` seen from
it, watermarks included (per input partition, then the smallest: :class:`Progress`).
Stream time is the *smaller* of the two. Why the smaller:
a verdict on a transaction needs both sides; if the bank's feed is five minutes behind,
judging with the terminal's clock would call every sale of the last five minutes
"unmatched". Waiting for the slower feed turns a lagging feed into delayed alerts
instead of a flood of false ones. (Kafka Streams takes the *largest* timestamp and
needs ``max.task.idle.ms`` to soften exactly this.)

Worked example, times in seconds::

    terminal events at 100, 130, 160    -> terminal progress 160
    issuer events at 101, 125           -> issuer progress 125
    stream time = min(160, 125) = 125   -> windows closing at or after 125 stay open

All times are integer microseconds since the Unix epoch (exact, cheap to compare).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Final

from models.events import Source
from models.instants import MICROS

NEVER: Final = -(2**63)  # progress of a source we have not heard from
FOREVER: Final = 2**63 - 1  # progress after the end of a capture


class Progress:
    """The two progresses of one partition of the join, and the stream time they give.

    A source read from several input partitions (the stream workers) has one *lane*
    per input partition it has been heard from: the largest ``occurred_at`` seen from
    that partition. The source's progress is then the smallest lane, never moving
    back: a run of input partition 0 read minutes ahead of partition 1 (a worker
    catching up, or two workers' ingests at different speeds) must not close the
    windows whose events partition 1 still holds. A partition that has sent nothing
    holds nothing back (a topic whose producer uses only some partitions is common).
    Watermarks are per input partition for the same reason (CONTRACT §1.3);
    docs/streaming.md. With one lane (the replay: a capture has no partitions) this is
    CONTRACT §3's "largest ``occurred_at`` seen" exactly.

    Worked example, two terminal lanes, times in seconds::

        lane 0 events at 100, 400          -> lane 0 at 400
        lane 1 events at 101, 130          -> lane 1 at 130
        terminal progress = min(400, 130) = 130
    """

    __slots__ = ("issuer", "lanes", "terminal")

    def __init__(
        self,
        terminal: int = NEVER,
        issuer: int = NEVER,
        lanes: dict[Source, dict[int, int]] | None = None,
    ) -> None:
        self.terminal = terminal
        self.issuer = issuer
        self.lanes: dict[Source, dict[int, int]] = lanes or {"terminal": {}, "issuer": {}}

    @property
    def stream_time(self) -> int:
        return min(self.terminal, self.issuer)

    def of(self, source: Source) -> int:
        return self.terminal if source == "terminal" else self.issuer

    def stream_time_after(self, moves: Iterable[tuple[Source, int, int]]) -> int:
        """The stream time once ``moves`` ((source, lane, at), as :meth:`IdleAdvance.due`
        gives them) were applied, without applying them."""
        lanes = {source: dict(each) for source, each in self.lanes.items()}
        for source, lane, at in moves:
            lanes[source][lane] = max(lanes[source].get(lane, NEVER), at)
        return min(
            max(self.of(source), min(each.values(), default=NEVER))
            for source, each in lanes.items()
        )

    def __repr__(self) -> str:
        return f"Progress(terminal={self.terminal}, issuer={self.issuer}, lanes={self.lanes})"


Lane = tuple[Source, int]  # (source, input partition)


class IdleAdvance:
    """Moves a silent lane's progress on by the wall-clock time it has been silent.

    CONTRACT §3: if a source sends nothing to a partition for ``idle_advance`` of wall
    time, its progress moves forward by the wall time elapsed since its last event, so
    windows close on a quiet fleet or a dead feed. Per lane (one input partition of a
    source, :class:`Progress`): one input partition gone quiet must not hold every
    window of the join partition open. Progress is never *set* from the wall clock: it
    is the last event time plus elapsed wall time, so replaying last week's traffic
    behaves like live traffic.

    A source never heard from on this partition is anchored (as its lane 0) to the
    first message of the other source (its event time, and the wall time it arrived):
    a bank feed that is dead from start-up still lets windows close.

    Used by the stream workers only; the replay has no wall clock. Pure: the caller
    passes wall-clock readings in.
    """

    __slots__ = ("_anchor_event", "_anchor_wall", "_idle_us")

    def __init__(self, idle_advance_seconds: float) -> None:
        self._idle_us = int(idle_advance_seconds * MICROS)
        self._anchor_event: dict[Lane, int] = {}
        self._anchor_wall: dict[Lane, int] = {}

    def heard(self, source: Source, progress: Progress, wall_us: int, lane: int = 0) -> None:
        """Call after every message (event or watermark) from ``lane`` of ``source``."""
        at = progress.lanes[source].get(lane, progress.of(source))
        self._anchor_event[(source, lane)] = at
        self._anchor_wall[(source, lane)] = wall_us
        other: Source = "issuer" if source == "terminal" else "terminal"
        if not progress.lanes[other] and (other, 0) not in self._anchor_wall:
            self._anchor_event[(other, 0)] = at
            self._anchor_wall[(other, 0)] = wall_us

    def due(self, progress: Progress, wall_us: int) -> list[tuple[Source, int, int]]:
        """The ``(source, lane, progress)`` moves due now: lanes silent for ``idle_advance``.

        The caller applies them with :meth:`models.reconciler.Reconciler.advance`, which
        also closes the windows they pass.
        """
        moves: list[tuple[Source, int, int]] = []
        for (source, lane), anchor_wall in self._anchor_wall.items():
            silent_for = wall_us - anchor_wall
            if silent_for >= self._idle_us:
                target = self._anchor_event[(source, lane)] + silent_for
                if target > progress.lanes[source].get(lane, NEVER):
                    moves.append((source, lane, target))
        return moves


class DueQueue:
    """Keys due at a time, popped in time order: the window-close (and expiry) schedule.

    Many transactions share a due second, so keys are bucketed by due time and only the
    distinct times go on a heap: closing windows is a pop from the oldest, never a scan
    of all open transactions, and a million open transactions cost one list slot each.
    """

    __slots__ = ("_buckets", "_heap", "_size")

    def __init__(self) -> None:
        self._buckets: dict[int, list[str]] = {}
        self._heap: list[int] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, due: int, key: str) -> None:
        bucket = self._buckets.get(due)
        if bucket is None:
            self._buckets[due] = [key]
            heapq.heappush(self._heap, due)
        else:
            bucket.append(key)
        self._size += 1

    def earliest(self) -> int | None:
        """The earliest due time queued, or None when empty."""
        return self._heap[0] if self._heap else None

    def next_due_before(self, now: int) -> bool:
        """True when something is due before ``now`` (cheap: no generator)."""
        return bool(self._heap) and self._heap[0] < now

    def pop_passed(self, now: int) -> Iterator[tuple[int, str]]:
        """Yield ``(due, key)`` for every entry with ``due < now``, oldest first.

        "Passed" is strict: a window closing at 12:00:00 is still open at stream time
        12:00:00 exactly (CONTRACT §3: closes when stream time *passes* it).
        """
        heap = self._heap
        while heap and heap[0] < now:
            due = heapq.heappop(heap)
            bucket = self._buckets.pop(due)
            self._size -= len(bucket)
            for key in bucket:
                yield due, key
