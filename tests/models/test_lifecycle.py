"""CONTRACT §2.1: firing → resolved → firing again, one id, redeliveries change nothing.

The transaction is sent at 0 s and its window closes at 360 s; watermarks on both
sources move stream time explicitly so each step of the lifecycle is observable.
"""

from __future__ import annotations

from typing import Any

from models.reconciler import Applied, Reconciler
from models.transaction import MAX_EVENTS
from tests.factories import apply, event, watermark

SALE = [
    ("terminal", event("request", 0.1, event_id="req")),
    ("issuer", event("authorization", 1.0, approved=True, event_id="auth")),
    ("issuer", event("debit", 1.2, event_id="debit")),
    ("terminal", event("outcome", 31.0, outcome="timeout", event_id="timeout")),
]


class Harness:
    def __init__(self) -> None:
        self.reconciler = Reconciler()
        self.published: list[Any] = []

    def feed(self, *items: tuple[str, dict[str, Any]]) -> list[Any]:
        for source, raw in items:
            apply(self.reconciler, source, raw)
        new = self.reconciler.take_alerts()
        self.published += new
        return new

    def tick(self, t: float) -> list[Any]:
        return self.feed(("terminal", watermark(t)), ("issuer", watermark(t)))


def test_ghost_debit_fires_once_at_window_close() -> None:
    h = Harness()
    assert h.feed(*SALE) == []
    assert h.tick(359) == []
    (fired,) = h.tick(361)
    assert (fired.kind, fired.status) == ("unmatched_debit", "firing")
    assert h.tick(900) == []


def test_late_refund_resolves_with_the_same_alert_id() -> None:
    h = Harness()
    h.feed(*SALE)
    (fired,) = h.tick(400)
    (resolved,) = h.feed(("issuer", event("refund", 3600.0, event_id="refund")))
    assert resolved.alert_id == fired.alert_id
    assert resolved.status == "resolved"
    assert resolved.resolution == "refunded"
    # Stream time when the refund was applied: the bank feed's progress jumps to 10:00,
    # the terminal's is still at 09:06:40, and stream time is the smaller.
    assert resolved.resolved_at == "2026-11-27T09:06:40Z"
    assert resolved.detected_at == fired.detected_at
    assert resolved.at_risk_minor == 0


def test_late_approved_outcome_resolves_unmatched_debit() -> None:
    h = Harness()
    h.feed(*SALE)
    h.tick(400)
    (resolved,) = h.feed(("terminal", event("outcome", 45.0, outcome="approved")))
    assert (resolved.kind, resolved.status, resolved.resolution) == (
        "unmatched_debit",
        "resolved",
        "terminal_completed",
    )


def test_hold_release_resolves_a_blocked_amount() -> None:
    h = Harness()
    h.feed(
        ("terminal", event("request", 0.1)),
        ("issuer", event("hold", 1.0)),
        ("terminal", event("outcome", 31.0, outcome="timeout")),
    )
    (fired,) = h.tick(400)
    (resolved,) = h.feed(("issuer", event("hold_release", 7200.0)))
    assert resolved.alert_id == fired.alert_id
    assert resolved.resolution == "hold_released"


def test_late_terminal_reversal_turns_unmatched_into_reversal_not_applied() -> None:
    h = Harness()
    h.feed(*SALE)
    h.tick(400)
    changes = h.feed(("terminal", event("reversal", 420.0)))
    assert {(a.kind, a.status) for a in changes} == {
        ("unmatched_debit", "resolved"),
        ("reversal_not_applied", "firing"),
    }
    resolved = next(a for a in changes if a.status == "resolved")
    assert resolved.resolution == "terminal_reversal_sent"


def test_resolved_alert_fires_again_only_when_condition_returns() -> None:
    h = Harness()
    h.feed(*SALE)
    (fired,) = h.tick(400)
    (resolved,) = h.feed(("issuer", event("reversal", 3000.0)))
    assert h.feed(("issuer", event("authorization", 3100.0, approved=True))) == []
    (again,) = h.feed(("issuer", event("debit", 3200.0)))
    assert again.alert_id == fired.alert_id == resolved.alert_id
    assert again.status == "firing"


def test_redelivered_events_change_nothing() -> None:
    h = Harness()
    h.feed(*SALE)
    h.feed(*SALE)  # redelivered before the window closes
    (fired,) = h.tick(400)
    assert fired.evidence == ["req", "auth", "debit", "timeout"]
    for source, raw in SALE:  # redelivered after the verdict
        assert apply(h.reconciler, source, raw) is Applied.DUPLICATE
    assert h.reconciler.take_alerts() == []
    refund = ("issuer", event("refund", 3600.0, event_id="refund"))
    (resolved,) = h.feed(refund)
    assert h.feed(refund, refund) == []
    assert resolved.status == "resolved"
    assert h.reconciler.stats.duplicates == 4 + 4 + 2


def test_condition_false_before_close_publishes_nothing() -> None:
    h = Harness()
    h.feed(*SALE, ("issuer", event("refund", 100.0)))
    assert h.tick(10_000) == []


def test_same_event_id_from_the_other_side_is_not_a_redelivery() -> None:
    # Terminal gateway and issuer number their events independently: "42" from each is
    # two events (dedup is per source), so this matched sale raises nothing.
    h = Harness()
    h.feed(
        ("terminal", event("request", 0.1, event_id="42")),
        ("terminal", event("outcome", 2.0, outcome="approved", event_id="43")),
        ("issuer", event("debit", 1.2, event_id="42")),
    )
    assert h.tick(400) == []
    assert h.reconciler.stats.duplicates == 0


def test_a_key_with_too_many_events_refuses_more() -> None:
    h = Harness()
    h.feed(("terminal", event("request", 0.1, event_id="r")))
    for index in range(MAX_EVENTS - 1):
        h.feed(("issuer", event("authorization", 1.0, approved=True, event_id=f"a{index}")))
    source, raw = ("issuer", event("debit", 1.2, event_id="one-too-many"))
    assert apply(h.reconciler, source, raw) is Applied.TOO_MANY
    assert h.reconciler.stats.too_many == 1
