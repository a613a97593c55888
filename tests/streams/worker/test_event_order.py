"""The ingest's event-time order (streams/worker/event_order.py), as pure logic."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.worker.batch_feed import Batch
from streams.worker.event_order import EventTimeOrder, Routed

A, B = TP("terminal", 0), TP("terminal", 1)


def _fresh(tp: TP, first_offset: int, times: list[int], generation: int = 1) -> Any:
    records = [
        SimpleNamespace(partition=tp.partition, offset=first_offset + i) for i in range(len(times))
    ]
    routed = [
        Routed(at, f"{tp.partition}@{r.offset}", r) for at, r in zip(times, records, strict=True)
    ]
    return Batch(tp, records, generation, first_offset), routed


def _names(routed: list[Routed]) -> list[str]:
    return [r.result for r in routed]


def test_merges_by_event_time_and_holds_what_ran_ahead() -> None:
    order = EventTimeOrder()
    # Partition 0 has read far ahead (times 10..50); partition 1 only reached 25.
    out, done = order.round(
        {A: _fresh(A, 0, [10, 20, 30, 40, 50]), B: _fresh(B, 100, [12, 25])}, 1, flush=False
    )
    assert _names(out) == ["0@0", "1@100", "0@1", "1@101"]
    assert order.holding
    assert {b.tp: ([r.offset for r in b.records], b.first_ack) for b in done} == {
        A: ([0, 1], 0),
        B: ([100, 101], 100),
    }
    # The next round: partition 1 caught up to 45; the held 30, 40 go, 50 waits again.
    out, done = order.round({B: _fresh(B, 102, [35, 45])}, 1, flush=False)
    assert _names(out) == ["0@2", "1@102", "0@3", "1@103"]
    assert {b.tp: b.first_ack for b in done} == {A: 2, B: 102}
    # Nothing new: what is held goes.
    out, done = order.round({}, 1, flush=True)
    assert _names(out) == ["0@4"] and not order.holding
    assert [(b.tp, b.first_ack, [r.offset for r in b.records]) for b in done] == [(A, 4, [4])]


def test_keeps_each_partitions_order_even_when_its_times_go_back() -> None:
    order = EventTimeOrder()
    out, _ = order.round({A: _fresh(A, 0, [50, 5, 60]), B: _fresh(B, 0, [10, 70])}, 1, flush=True)
    names = _names(out)
    assert [n for n in names if n.startswith("0@")] == ["0@0", "0@1", "0@2"]
    assert [n for n in names if n.startswith("1@")] == ["1@0", "1@1"]
    assert names == ["1@0", "0@0", "0@1", "0@2", "1@1"]


def test_a_single_partition_is_never_held_and_old_generations_are_dropped() -> None:
    order = EventTimeOrder()
    out, _ = order.round({A: _fresh(A, 0, [10, 99])}, 1, flush=False)
    assert _names(out) == ["0@0", "0@1"] and not order.holding
    order.round({A: _fresh(A, 2, [100, 200]), B: _fresh(B, 0, [150])}, 1, flush=False)
    assert order.holding  # 200 waits for partition 1
    # A rebalance: generation 2. The held event is dropped (its next owner reads it).
    out, done = order.round({}, 2, flush=True)
    assert out == [] and done == [] and not order.holding
