"""CONTRACT §3: progress per source, stream time = the smaller, window close, lateness,
retention, watermarks (§1.3) and the idle advance.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest

from models.config import DetectionConfig
from models.events import Source
from models.reconciler import Applied, Reconciler
from models.stream_time import NEVER, DueQueue, IdleAdvance, Progress
from models.validation import Reason, Rejection, decode_event
from tests.factories import BASE_SECOND, apply, encode, event, watermark

MICROS = 1_000_000
SALE = [
    ("terminal", event("request", 0.1)),
    ("issuer", event("debit", 1.2)),
    ("terminal", event("outcome", 31.0, outcome="timeout")),
]


def us(seconds: float) -> int:
    return round((BASE_SECOND + seconds) * MICROS)


def feed(r: Reconciler, *items: tuple[str, dict[str, Any]]) -> list[Any]:
    for source, raw in items:
        apply(r, source, raw)
    return r.take_alerts()


def test_stream_time_is_the_smaller_progress() -> None:
    r = Reconciler()
    feed(r, ("terminal", event("request", 100.0, tx=100.0)))
    assert r.progress.terminal == us(100)
    assert r.stream_time == NEVER  # nothing from the issuer yet
    feed(r, ("issuer", event("debit", 60.0, tx=60.0, stan="000200")))
    assert r.stream_time == us(60)
    feed(r, ("issuer", event("debit", 130.0, tx=130.0, stan="000300")))
    assert r.stream_time == us(100)


def test_progress_never_moves_back() -> None:
    r = Reconciler()
    feed(r, ("terminal", watermark(50)), ("terminal", watermark(10)))
    feed(r, ("terminal", event("request", 20.0, tx=20.0)))
    assert r.progress.terminal == us(50)


def test_lagging_bank_feed_delays_verdicts_instead_of_flooding() -> None:
    r = Reconciler()
    feed(r, *SALE[:1], SALE[2])  # terminal side only so far
    assert feed(r, ("terminal", watermark(5000))) == []  # terminal far ahead
    assert feed(r, ("issuer", watermark(300))) == []  # bank still behind the window
    (alert,) = feed(r, SALE[1], ("issuer", watermark(361)))  # bank catches up
    assert alert.kind == "unmatched_debit"  # judged with the debit, not without it


@pytest.mark.parametrize(
    ("stream_time", "closed"),
    [(359.0, False), (360.0, False), (360.001, True)],
    ids=["before", "exactly_at_close_is_still_open", "passed"],
)
def test_window_closes_when_stream_time_passes_transmitted_plus_window_plus_grace(
    stream_time: float, closed: bool
) -> None:
    r = Reconciler()
    feed(r, *SALE)
    alerts = feed(r, ("terminal", watermark(stream_time)), ("issuer", watermark(stream_time)))
    assert bool(alerts) is closed


def test_window_uses_configured_match_window_and_grace() -> None:
    r = Reconciler(DetectionConfig(match_window=60, grace=10))
    feed(r, *SALE)
    assert feed(r, ("terminal", watermark(69)), ("issuer", watermark(69))) == []
    assert len(feed(r, ("terminal", watermark(71)), ("issuer", watermark(71)))) == 1


def test_verdict_is_never_made_on_arrival_of_the_first_side() -> None:
    r = Reconciler()
    alerts = feed(
        r,
        ("issuer", event("debit", 1.2)),
        ("terminal", watermark(200)),
        ("issuer", watermark(200)),
    )
    assert alerts == []
    assert r.open_transactions == 1


def test_watermark_on_one_topic_alone_closes_nothing() -> None:
    r = Reconciler()
    feed(r, *SALE)
    assert feed(r, ("terminal", watermark(10**6))) == []


def test_watermarks_on_both_topics_close_at_once() -> None:
    r = Reconciler()
    feed(r, *SALE)
    assert len(feed(r, ("terminal", watermark(400)), ("issuer", watermark(400)))) == 1


def test_late_event_within_retention_is_applied_and_judged_at_once() -> None:
    r = Reconciler()
    feed(r, ("terminal", watermark(3600)), ("issuer", watermark(3600)))
    # A whole transaction that arrives an hour after its window closed.
    alerts = feed(r, *SALE)
    assert [a.kind for a in alerts] == ["unmatched_debit"]  # first late event: debit alone
    assert r.stats.late == 3
    assert alerts[0].detected_at == "2026-11-27T10:00:00Z"  # the stream time it arrived at


def test_event_beyond_retention_is_too_late() -> None:
    r = Reconciler(DetectionConfig(retention=3600))
    feed(r, ("terminal", watermark(360 + 3600 + 1)), ("issuer", watermark(360 + 3600 + 1)))
    source, raw = SALE[1]
    assert apply(r, source, raw) is Applied.TOO_LATE
    assert r.stats.too_late == 1
    assert len(r.store) == 0


def test_state_is_dropped_after_retention_and_later_events_are_too_late() -> None:
    r = Reconciler(DetectionConfig(retention=3600))
    feed(r, *SALE, ("terminal", watermark(400)), ("issuer", watermark(400)))
    assert len(r.store) == 1  # kept for late events
    feed(r, ("terminal", watermark(3961)), ("issuer", watermark(3961)))
    assert len(r.store) == 0
    assert r.stats.expired == 1
    source, raw = ("issuer", event("refund", 3962.0))
    assert apply(r, source, raw) is Applied.TOO_LATE


def test_transmitted_after_occurred_beyond_skew_is_rejected() -> None:
    fine = event("request", 0.0, tx=120.0)
    late = event("request", 0.0, tx=120.5)
    assert not isinstance(decode_event("terminal", encode(fine), timedelta(seconds=120)), Rejection)
    rejected = decode_event("terminal", encode(late), timedelta(seconds=120))
    assert isinstance(rejected, Rejection) and rejected.reason is Reason.CLOCK_SKEW


def test_due_queue_pops_strictly_passed_in_time_order() -> None:
    q = DueQueue()
    for due, key in [(30, "c"), (10, "a"), (20, "b"), (10, "a2"), (40, "d")]:
        q.add(due, key)
    assert list(q.pop_passed(30)) == [(10, "a"), (10, "a2"), (20, "b")]
    assert len(q) == 2
    assert list(q.pop_passed(100)) == [(30, "c"), (40, "d")]


class TestIdleAdvance:
    """§3: a silent source moves on by the wall time elapsed since its last event."""

    @staticmethod
    def heard(
        idle: IdleAdvance, p: Progress, source: Source, event_s: float, wall_s: float
    ) -> None:
        at = round(event_s * MICROS)
        if source == "terminal":
            p.terminal = max(p.terminal, at)
        else:
            p.issuer = max(p.issuer, at)
        p.lanes[source][0] = max(p.lanes[source].get(0, NEVER), at)
        idle.heard(source, p, wall_us=round(wall_s * MICROS))

    def test_silent_source_advances_by_elapsed_wall_time(self) -> None:
        p, idle = Progress(), IdleAdvance(30)
        self.heard(idle, p, "terminal", 1_000, wall_s=5_000)
        self.heard(idle, p, "issuer", 990, wall_s=5_000)
        assert idle.due(p, wall_us=5_029 * MICROS) == []  # silent for less than idle_advance
        moves = {source: at for source, _, at in idle.due(p, wall_us=5_045 * MICROS)}
        # last event time + elapsed wall time; never the wall clock itself (5,045 s)
        assert moves == {"terminal": 1_045 * MICROS, "issuer": 1_035 * MICROS}

    def test_active_source_is_not_moved(self) -> None:
        p, idle = Progress(), IdleAdvance(30)
        for second in range(0, 100, 10):
            self.heard(idle, p, "terminal", 2_000 + second, wall_s=9_000 + second)
            self.heard(idle, p, "issuer", 2_000 + second, wall_s=9_000 + second)
            assert idle.due(p, wall_us=(9_000 + second) * MICROS) == []

    def test_dead_feed_from_start_is_anchored_to_the_other_source(self) -> None:
        p, idle = Progress(), IdleAdvance(30)
        self.heard(idle, p, "terminal", 1_000, wall_s=0)
        assert p.stream_time == NEVER
        moves = {source: at for source, _, at in idle.due(p, wall_us=400 * MICROS)}
        assert moves == {"terminal": 1_400 * MICROS, "issuer": 1_400 * MICROS}

    def test_idle_advance_closes_windows_on_a_quiet_fleet(self) -> None:
        r, idle = Reconciler(), IdleAdvance(30)
        for source, raw in SALE:
            apply(r, source, raw)
            idle.heard(cast(Source, source), r.progress, wall_us=0)
        for source, lane, target in idle.due(r.progress, wall_us=300 * MICROS):
            r.advance(source, target, lane)
        assert r.take_alerts() == []  # stream time 301.2 s: window (360 s) still open
        for source, lane, target in idle.due(r.progress, wall_us=400 * MICROS):
            r.advance(source, target, lane)
        (alert,) = r.take_alerts()
        assert alert.kind == "unmatched_debit"


class TestLanes:
    """A source read from several input partitions: its progress is the smallest lane."""

    def test_one_lane_is_the_largest_occurred_at(self) -> None:
        r = Reconciler()
        r.apply_watermark("terminal", 500)
        r.apply_watermark("terminal", 300)  # older: no move back
        assert r.progress.terminal == 500 == r.progress.lanes["terminal"][0]

    def test_the_slower_lane_holds_the_source(self) -> None:
        r = Reconciler()
        r.apply_watermark("issuer", 10_000)
        r.apply_watermark("terminal", 100, lane=1)
        r.apply_watermark("terminal", 9_000, lane=0)
        assert r.progress.terminal == 100
        assert r.progress.stream_time == 100
        r.apply_watermark("terminal", 9_500, lane=1)
        assert r.progress.terminal == 9_000  # now lane 0 is the slower one

    def test_a_lane_heard_late_and_behind_holds_the_source_until_it_catches_up(self) -> None:
        r = Reconciler()
        r.apply_watermark("terminal", 1_000, lane=0)
        assert r.progress.terminal == 1_000  # a partition that sent nothing holds nothing
        r.apply_watermark("terminal", 200, lane=3)  # a second worker's ingest, behind
        r.apply_watermark("terminal", 5_000, lane=0)
        assert r.progress.terminal == 1_000  # never back; and not on while lane 3 is behind
        r.apply_watermark("terminal", 4_000, lane=3)
        assert r.progress.terminal == 4_000

    def test_a_sale_waits_for_the_slower_lane(self) -> None:
        r = Reconciler()
        for source, raw in SALE:
            apply(r, source, raw)  # lane 0 of both
        r.apply_watermark("terminal", us(30), lane=1)
        # Lane 0 of both sources an hour on; lane 1 of the terminal still near the sale.
        r.apply_watermark("issuer", us(3_600))
        r.apply_watermark("terminal", us(3_600), lane=0)
        r.apply_watermark("terminal", us(60), lane=1)
        assert r.take_alerts() == []  # the window (360 s) has not closed: lane 1 is at 60 s
        r.apply_watermark("terminal", us(400), lane=1)
        (alert,) = r.take_alerts()
        assert alert.kind == "unmatched_debit"

    def test_advance_without_a_lane_moves_every_lane(self) -> None:
        r = Reconciler()
        for lane, at in ((0, 100), (1, 200), (2, 700)):
            r.apply_watermark("issuer", at, lane)
        r.advance("issuer", 500)
        assert r.progress.lanes["issuer"] == {0: 500, 1: 500, 2: 700}
        assert r.progress.issuer == 500
        r.advance("terminal", 300)  # a source with no lane yet
        assert r.progress.terminal == 300

    def test_idle_advance_moves_only_the_silent_lane(self) -> None:
        r, idle = Reconciler(), IdleAdvance(30)
        r.apply_watermark("terminal", 1_000 * MICROS, lane=1)
        idle.heard("terminal", r.progress, wall_us=0, lane=1)  # then silent
        for second in range(0, 100, 10):
            r.apply_watermark("terminal", (1_000 + second) * MICROS, lane=0)
            r.apply_watermark("issuer", (1_000 + second) * MICROS)
            idle.heard("terminal", r.progress, wall_us=second * MICROS, lane=0)
            idle.heard("issuer", r.progress, wall_us=second * MICROS)
        assert idle.due(r.progress, wall_us=90 * MICROS) == [("terminal", 1, 1_090 * MICROS)]
