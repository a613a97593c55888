"""One join partition without Kafka: watermarks, durable state, crash de-duplication."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from models.config import DetectionConfig
from models.stream_time import NEVER
from streams.worker.ingest import route
from streams.worker.partition_state import Checkpoint, Incoming, PartitionState, published_since
from streams.worker.wire import TickControl, WatermarkControl, encode_control
from tests.factories import BASE_SECOND, encode, event, far_future_watermark

CONFIG = DetectionConfig()


def line(source: str, ev: dict[str, object]) -> Incoming:
    prefix = b'{"source":"' + source.encode() + b'","event":'
    return Incoming(prefix + encode(ev) + b"}")


def ghost_debit(terminal: str = "T-0001") -> list[Incoming]:
    """A debit the terminal reported as a timeout: unmatched_debit at window close."""
    return [
        line("terminal", event("request", 0.1, terminal=terminal)),
        line("issuer", event("debit", 1.0, terminal=terminal)),
        line("terminal", event("outcome", 31.0, terminal=terminal, outcome="timeout")),
    ]


def mark(source: str, at_us: int, input_partition: int, of: int) -> Incoming:
    return Incoming(
        encode_control(
            WatermarkControl(
                source=source,  # type: ignore[arg-type]
                input_partition=input_partition,
                input_partitions=of,
                at_us=at_us,
                event_id=f"wm-{source}-{input_partition}",
            )
        )
    )


FAR = (BASE_SECOND + 10_000) * 1_000_000


def test_a_watermark_counts_once_every_input_partition_sent_one() -> None:
    state = PartitionState(0, CONFIG)
    state.feed(ghost_debit(), wall_us=0)
    state.feed([mark("terminal", FAR, 0, 2), mark("issuer", FAR, 0, 1)], wall_us=0)
    assert state.take_alerts() == []  # terminal partition 1 has not spoken yet
    assert state.reconciler.progress.terminal < FAR
    state.feed([mark("terminal", FAR, 1, 2)], wall_us=0)
    assert [alert.kind for alert in state.take_alerts()] == ["unmatched_debit"]


def test_the_smallest_input_watermark_is_the_progress() -> None:
    state = PartitionState(0, CONFIG)
    state.feed([mark("issuer", 500, 0, 2), mark("issuer", 900, 1, 2)], wall_us=0)
    assert state.reconciler.progress.issuer == 500
    state.feed([mark("issuer", 700, 0, 2)], wall_us=0)
    assert state.reconciler.progress.issuer == 700


def test_ticks_come_when_idle_advance_would_close_a_window() -> None:
    config = DetectionConfig(idle_advance=5.0)
    state = PartitionState(0, config)
    state.feed(ghost_debit(), wall_us=0)
    assert state.due_ticks(wall_us=1_000_000) == []  # not idle long enough
    assert state.due_ticks(wall_us=60_000_000) == []  # idle, but closes nothing yet
    ticks = state.due_ticks(wall_us=400_000_000)  # 400 s of silence passes 0 s + 360 s
    assert {tick.source for tick in ticks} == {"terminal", "issuer"}
    assert all(isinstance(tick, TickControl) for tick in ticks)
    state.feed([Incoming(encode_control(tick)) for tick in ticks], wall_us=400_000_000)
    assert [alert.kind for alert in state.take_alerts()] == ["unmatched_debit"]


def test_ticks_are_not_heard_as_traffic() -> None:
    state = PartitionState(0, DetectionConfig(idle_advance=5.0))
    state.feed(ghost_debit(), wall_us=0)
    state.feed(ghost_debit("T-0002"), wall_us=0)
    first = state.due_ticks(wall_us=400_000_000)
    state.feed([Incoming(encode_control(tick)) for tick in first], wall_us=400_000_000)
    # The state now expires in 7 days of stream time; silence still counts from the
    # last event (wall 0), so a tick 7 days of wall time later is due.
    week = 7 * 86_400 * 1_000_000
    later = state.due_ticks(wall_us=week + 400_000_000)
    assert later and all(t.at_us > f.at_us for t, f in zip(later, first, strict=True))


def test_no_ticks_once_every_window_has_closed_and_expired() -> None:
    state = PartitionState(0, DetectionConfig(idle_advance=5.0))
    state.feed(ghost_debit(), wall_us=0)
    state.feed(
        [line("terminal", far_future_watermark()), line("issuer", far_future_watermark())], 0
    )
    assert state.reconciler.next_due() is None
    assert state.due_ticks(wall_us=10**12) == []


def test_the_durable_state_restores_the_same_verdicts() -> None:
    live = PartitionState(0, CONFIG)
    live.feed(ghost_debit("T-0001") + ghost_debit("T-0002"), wall_us=0)
    writes = dict(live.take_writes())
    assert set(writes) == {key for key in live.reconciler.store}
    restored = PartitionState(
        0, CONFIG,
        txns=[(key, blob) for key, blob in writes.items() if blob is not None],
        checkpoint=Checkpoint.decode(live.checkpoint().encode()),
    )  # fmt: skip
    for state in (live, restored):
        state.feed(
            [line("terminal", far_future_watermark()), line("issuer", far_future_watermark())], 0
        )
    assert {a.alert_id for a in restored.take_alerts()} == {a.alert_id for a in live.take_alerts()}


def test_expired_transactions_are_written_as_deletions() -> None:
    state = PartitionState(0, CONFIG)
    state.feed(ghost_debit(), wall_us=0)
    state.take_writes()
    state.feed(
        [line("terminal", far_future_watermark()), line("issuer", far_future_watermark())], 0
    )
    assert all(blob is None for _key, blob in state.take_writes())
    assert not state.reconciler.store


def close_all() -> list[Incoming]:
    return [line("terminal", far_future_watermark()), line("issuer", far_future_watermark())]


def test_alerts_already_published_before_a_crash_are_dropped_once_per_copy() -> None:
    first = PartitionState(0, CONFIG)
    first.feed(ghost_debit(), wall_us=0)
    first.feed(close_all(), 0)
    published = [msgspec.json.encode(alert) for alert in first.take_alerts()]
    assert len(published) == 1
    # The crash came before the state was written: the restart regenerates the alert.
    again = PartitionState(0, CONFIG, published=published_since(published))
    again.feed(ghost_debit(), wall_us=0)
    again.feed(close_all(), 0)
    assert again.take_alerts() == []
    assert again.suppressed == 1
    # A state change that was *not* published before is still published.
    third = PartitionState(0, CONFIG, published=[])
    third.feed(ghost_debit(), wall_us=0)
    third.feed(close_all(), 0)
    assert len(third.take_alerts()) == 1


def test_a_record_the_restored_state_already_holds_suppresses_nothing_later() -> None:
    """Published, state written, crash before the checkpoint: the restored state says
    firing already, so nothing regenerates that record; it must not swallow the
    resolution that comes later (review finding)."""
    live = PartitionState(0, CONFIG)
    live.feed(ghost_debit(), wall_us=0)
    wm = (BASE_SECOND + 400) * 1_000_000
    live.feed([mark("terminal", wm, 0, 1), mark("issuer", wm, 0, 1)], wall_us=0)
    fired = live.take_alerts()
    assert [str(alert.status) for alert in fired] == ["firing"]
    writes = [(key, blob) for key, blob in live.take_writes() if blob is not None]
    restored = PartitionState(
        0, CONFIG, txns=writes, published=published_since([msgspec.json.encode(fired[0])]),
        checkpoint=Checkpoint(live.checkpoint().terminal, live.checkpoint().issuer, {}, 0),
    )  # fmt: skip
    refund = event("refund", 450.0, event_id="refund-1")
    restored.feed([line("issuer", refund)], wall_us=0)
    assert [str(alert.status) for alert in restored.take_alerts()] == ["resolved"]
    restored.feed([line("issuer", event("debit", 460.0, event_id="debit-again"))], wall_us=0)
    assert [str(alert.status) for alert in restored.take_alerts()] == ["firing"]
    assert restored.suppressed == 0


def test_refused_events_become_dead_letters_with_their_origin() -> None:
    state = PartitionState(0, DetectionConfig(retention=0.0))
    state.feed([mark("terminal", FAR, 0, 1), mark("issuer", FAR, 0, 1)], wall_us=0)
    sends = route(
        "issuer", encode(event("debit", 1.0)), topic="bank", partition=3, offset=99,
        join_partitions=1, input_partitions=1, max_clock_skew=timedelta(seconds=120),
    )  # fmt: skip
    assert isinstance(sends, list)
    origin = dict(sends[0].headers)["dw-origin"]
    (dead,) = state.feed([Incoming(sends[0].value, origin)], wall_us=0)
    assert (dead.reason, dead.topic, dead.partition, dead.offset) == ("too_late", "bank", 3, 99)


def test_a_new_partition_starts_with_no_progress() -> None:
    checkpoint = PartitionState(3, CONFIG).checkpoint()
    assert (checkpoint.terminal, checkpoint.issuer, checkpoint.alerts_offset) == (NEVER, NEVER, 0)


def routed(source: str, ev: dict[str, object], partition: int, of: int = 2) -> Incoming:
    """``ev`` as the ingest puts it on the re-keyed topic, read from input ``partition``."""
    sends = route(
        source, encode(ev), topic=f"{source}-input", partition=partition, offset=0,  # type: ignore[arg-type]
        join_partitions=1, input_partitions=of, max_clock_skew=timedelta(seconds=120),
    )  # fmt: skip
    assert isinstance(sends, list)
    return Incoming(sends[0].value, dict(sends[0].headers)["dw-origin"])


def approved_sale(terminal: str, at: float, partition: int) -> list[Incoming]:
    """A sale approved on the terminal and debited by the bank: no alert, once both
    sides are in. Terminal side on input ``partition``; the debit comes separately."""
    return [
        routed("terminal", event("request", at + 0.1, terminal=terminal, tx=at), partition),
        routed(
            "terminal",
            event("outcome", at + 2.0, terminal=terminal, tx=at, outcome="approved"),
            partition,
        ),
    ]


def debit(terminal: str, at: float, partition: int) -> Incoming:
    return routed("issuer", event("debit", at + 1.0, terminal=terminal, tx=at), partition)


def run_ahead(state: PartitionState, *, origins: bool = True) -> list[str]:
    """Two workers' ingests catching up: input partition 0 (both sources) is copied an
    hour ahead while partition 1 still holds the bank's debit of an earlier sale.
    ``origins=False`` strips the origin headers: one lane per source."""

    def feed(messages: list[Incoming]) -> None:
        state.feed([m if origins else Incoming(m.value) for m in messages], wall_us=0)

    feed(approved_sale("T-0001", 0.0, partition=1))
    feed([*approved_sale("T-0002", 3_600.0, 0), debit("T-0002", 3_600.0, 0)])
    feed([debit("T-0001", 0.0, partition=1)])
    feed([mark(s, FAR, p, 2) for s in ("terminal", "issuer") for p in (0, 1)])
    return [f"{alert.kind}:{alert.status}" for alert in state.take_alerts()]


def test_an_input_partition_read_ahead_closes_no_window_of_the_others() -> None:
    assert run_ahead(PartitionState(0, CONFIG)) == []


def test_without_lanes_the_same_run_fires_and_resolves_for_nothing() -> None:
    """The control: the same messages with one lane per source (the largest
    occurred_at) close the first sale's window an hour early."""
    assert run_ahead(PartitionState(0, CONFIG), origins=False) == [
        "terminal_approved_no_debit:firing",
        "terminal_approved_no_debit:resolved",
    ]


def test_lanes_survive_a_restart_and_old_checkpoints_still_load() -> None:
    live = PartitionState(0, CONFIG)
    live.feed(approved_sale("T-0001", 0.0, partition=1), wall_us=0)
    live.feed(approved_sale("T-0002", 3_600.0, partition=0), wall_us=0)
    saved = Checkpoint.decode(live.checkpoint().encode())
    assert saved.lanes["terminal"] == {
        0: (BASE_SECOND + 3_602) * 1_000_000,
        1: (BASE_SECOND + 2) * 1_000_000,
    }
    restored = PartitionState(0, CONFIG, checkpoint=saved)
    assert restored.reconciler.progress.lanes == live.reconciler.progress.lanes
    # A checkpoint written before lanes (four fields) restores the progresses; each
    # input partition becomes a lane again when heard from.
    old = msgspec.json.encode([saved.terminal, saved.issuer, {}, 7])
    before_lanes = PartitionState(0, CONFIG, checkpoint=Checkpoint.decode(old))
    assert before_lanes.alerts_offset == 7
    assert before_lanes.reconciler.progress.terminal == saved.terminal
    before_lanes.feed([debit("T-0001", 0.0, partition=1)], wall_us=0)
    assert before_lanes.reconciler.progress.lanes["issuer"] == {1: (BASE_SECOND + 1) * 1_000_000}


def test_a_silent_input_partition_is_ticked_on_its_own() -> None:
    state = PartitionState(0, DetectionConfig(idle_advance=5.0))
    # Both sources on input partitions 0 and 1; then partition 1 of each goes quiet.
    state.feed([*approved_sale("T-0001", 0.0, 1), debit("T-0003", 0.0, 1)], wall_us=0)
    state.feed(approved_sale("T-0002", 200.0, 0), wall_us=100_000_000)
    state.feed([debit("T-0004", 200.0, 0)], wall_us=100_000_000)
    assert state.reconciler.progress.stream_time < (BASE_SECOND + 200) * 1_000_000
    ticks = state.due_ticks(wall_us=400_000_000)
    assert {(t.source, t.input_partition) for t in ticks} == {
        ("terminal", 0), ("terminal", 1), ("issuer", 0), ("issuer", 1),
    }  # fmt: skip
    state.feed([Incoming(encode_control(tick)) for tick in ticks], wall_us=400_000_000)
    kinds = sorted(str(alert.kind) for alert in state.take_alerts())
    assert kinds == ["terminal_approved_no_debit", "unmatched_debit"]  # T-0001 and T-0003
    # A tick from before lanes (no input partition) moves every lane of its source.
    old = TickControl(source="issuer", at_us=FAR)
    state.feed([Incoming(encode_control(old))], wall_us=400_000_000)
    assert state.reconciler.progress.lanes["issuer"] == {0: FAR, 1: FAR}


def test_a_restart_from_a_checkpoint_before_lanes_still_ticks_a_silent_feed() -> None:
    config = DetectionConfig(idle_advance=5.0)
    live = PartitionState(0, config)
    live.feed(ghost_debit(), wall_us=0)
    writes = [(key, blob) for key, blob in live.take_writes() if blob is not None]
    saved = live.checkpoint()
    old = msgspec.json.encode([saved.terminal, saved.issuer, {}, 0])  # no lanes
    restarted = PartitionState(0, config, txns=writes, checkpoint=Checkpoint.decode(old))
    # Nothing arrives after the restart: silence counts from it, per source as lane 0.
    ticks = restarted.due_ticks(wall_us=400_000_000)
    assert {(t.source, t.input_partition) for t in ticks} == {("terminal", 0), ("issuer", 0)}
    restarted.feed([Incoming(encode_control(tick)) for tick in ticks], wall_us=400_000_000)
    assert [str(alert.kind) for alert in restarted.take_alerts()] == ["unmatched_debit"]
