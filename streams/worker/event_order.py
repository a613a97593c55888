"""The order in which the ingest copies input events onto the re-keyed topic.

CONTRACT §3: on each join partition, a source's progress is the largest ``occurred_at``
seen from it, and windows close when both sources' progress has passed them. Input
topics have several partitions, and a consumer reads each partition in runs (one fetch
brings up to a megabyte of one partition): copied run after run, the events of one
input partition can get minutes of event time ahead of the events other partitions
hold for the same moment, and the join closes windows before those arrive. The
verdicts do not change (the late side resolves the alert), but every such alert fires
and resolves for nothing: the noise an operator pays for. It happens whenever a worker
catches up on a backlog (after a restart, a rebalance, an outage), at any speed; a
faster worker reads larger runs.

:class:`EventTimeOrder` does what Kafka Streams does for its input partitions
("timestamp synchronisation"), with event time: the routed events of all the partitions
taken together are merged by ``occurred_at`` (each partition's own order kept), and a
partition's events later than the point every other partition with data has reached
wait for the next round, unless nothing new came. Held events are not acknowledged
until they are sent, so a rebalance loses none (their partition's next owner reads
them again).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any, NamedTuple

from faust.types import TP

from streams.worker.batch_feed import Batch


class Routed(NamedTuple):
    """One input record and what the ingest made of it (a list of sends or a dead
    letter), with its event time in µs (-1 if it has none: a refused message)."""

    at_us: int
    result: Any
    record: Any


class _Held(NamedTuple):
    generation: int
    first_ack: int
    routed: list[Routed]


class EventTimeOrder:
    """Holds back, between rounds, the events of partitions that ran ahead."""

    def __init__(self) -> None:
        self._held: dict[TP, _Held] = {}

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def round(
        self, fresh: dict[TP, tuple[Batch, list[Routed]]], generation: int, flush: bool
    ) -> tuple[list[Routed], list[Batch]]:
        """Merge this round's routed records with those held from the last: what to send
        now, in order, and the batches (parts of batches) that covers, to acknowledge.

        ``fresh``: per partition, its batch of this round and the batch's records
        routed. ``flush``: send everything (nothing new is coming soon).
        """
        runs: dict[TP, _Held] = {}
        for tp, held in self._held.items():
            if held.generation == generation:  # else revoked since: read again by its owner
                runs[tp] = held
        self._held = {}
        for tp, (batch, routed) in fresh.items():
            before = runs.get(tp)
            if before is None:
                runs[tp] = _Held(batch.generation, batch.first_ack, routed)
            else:
                runs[tp] = before._replace(routed=before.routed + routed)
        if not runs:
            return [], []
        horizon = None if flush or len(runs) == 1 else _horizon(runs.values())
        out: list[Routed] = []
        taken = dict.fromkeys(runs, 0)
        heap = [(held.routed[0].at_us, index, tp) for index, (tp, held) in enumerate(runs.items())]
        heapq.heapify(heap)
        while heap:
            at_us, index, tp = heap[0]
            if horizon is not None and at_us > horizon:
                break
            routed = runs[tp].routed
            position = taken[tp]
            out.append(routed[position])
            position += 1
            taken[tp] = position
            if position < len(routed):
                heapq.heapreplace(heap, (routed[position].at_us, index, tp))
            else:
                heapq.heappop(heap)
        acknowledged: list[Batch] = []
        for tp, held in runs.items():
            count = taken[tp]
            if count:
                records = [routed.record for routed in held.routed[:count]]
                acknowledged.append(Batch(tp, records, held.generation, held.first_ack))
            if count < len(held.routed):
                rest = held.routed[count:]
                self._held[tp] = _Held(held.generation, rest[0].record.offset, rest)
        return out, acknowledged


def _horizon(runs: Sequence[_Held] | Any) -> int:
    """The event time every run has reached: the smallest over the runs of the largest
    event time in each."""
    return min(max(routed.at_us for routed in held.routed) for held in runs)
