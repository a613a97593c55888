"""A firing alert whose regulatory deadline passes is published again, escalated, once
(models/deadlines.py, models/reconciler.py; docs/alerts.md)."""

from __future__ import annotations

from typing import Any

from models.alerts import Kind, Severity, Status
from models.reconciler import Reconciler
from models.transaction import Txn
from tests.factories import apply, event, watermark

DAY = 86_400.0


def ghost(reconciler: Reconciler, currency: str = "INR", stan: str = "000101") -> None:
    """A timed-out sale the bank debited: unmatched_debit at window close."""
    common: dict[str, Any] = {"stan": stan, "currency": currency, "amount": 250_000}
    apply(reconciler, "terminal", event("request", 0, **common))
    apply(reconciler, "issuer", event("authorization", 1, approved=True, **common))
    apply(reconciler, "issuer", event("debit", 2, **common))
    apply(reconciler, "terminal", event("outcome", 31, outcome="timeout", **common))


def both_to(reconciler: Reconciler, t: float) -> None:
    apply(reconciler, "terminal", watermark(t))
    apply(reconciler, "issuer", watermark(t))


def ghost_alerts(reconciler: Reconciler) -> list[Any]:
    return [a for a in reconciler.take_alerts() if a.kind is Kind.UNMATCHED_DEBIT]


def test_inr_ghost_escalates_once_at_the_rbi_deadline() -> None:
    reconciler = Reconciler()
    ghost(reconciler)
    both_to(reconciler, 600)
    (fired,) = ghost_alerts(reconciler)
    # BASE is 2026-11-27T09:00Z = 14:30 IST: T = 27 Nov, due by the end of 2 Dec (IST).
    assert fired.deadline == "2026-12-02T18:30:00Z" and not fired.deadline_passed
    assert fired.compensation_minor == 0
    both_to(reconciler, 5 * DAY)
    assert ghost_alerts(reconciler) == []
    both_to(reconciler, 6 * DAY)
    (escalated,) = ghost_alerts(reconciler)
    assert escalated.alert_id == fired.alert_id and escalated.status is Status.FIRING
    assert escalated.deadline_passed and escalated.detected_at == fired.detected_at
    assert escalated.compensation_minor == 10_000 and escalated.compensation_currency == "INR"
    assert escalated.severity in (Severity.HIGH, Severity.CRITICAL)
    assert escalated.score >= fired.score
    assert "deadline" in escalated.explanation
    both_to(reconciler, 9 * DAY)
    assert ghost_alerts(reconciler) == []  # once


def test_no_deadline_outside_the_policy_and_none_at_the_end_of_a_capture() -> None:
    euro = Reconciler()
    ghost(euro, currency="EUR")
    both_to(euro, 30 * DAY)
    (fired,) = ghost_alerts(euro)
    assert fired.deadline is None and not fired.deadline_passed
    ended = Reconciler()
    ghost(ended)
    ended.finish()  # the input ended: windows close, no time passed
    (only,) = ghost_alerts(ended)
    assert only.deadline is not None and not only.deadline_passed


def test_a_refund_before_the_deadline_resolves_and_nothing_escalates() -> None:
    reconciler = Reconciler()
    ghost(reconciler)
    both_to(reconciler, DAY)
    apply(reconciler, "issuer", event("refund", DAY + 1, currency="INR", amount=250_000))
    both_to(reconciler, 10 * DAY)
    assert [a.status for a in ghost_alerts(reconciler)] == [Status.FIRING, Status.RESOLVED]


def test_a_restored_state_escalates_once() -> None:
    reconciler = Reconciler()
    ghost(reconciler)
    both_to(reconciler, DAY)
    ghost_alerts(reconciler)
    store = {key: Txn.from_bytes(txn.to_bytes()) for key, txn in reconciler.store.items()}
    restored = Reconciler(store=store, progress=reconciler.progress)
    both_to(restored, 7 * DAY)
    (escalated,) = ghost_alerts(restored)
    assert escalated.deadline_passed
    again = Reconciler(
        store={k: Txn.from_bytes(t.to_bytes()) for k, t in restored.store.items()},
        progress=restored.progress,
    )
    both_to(again, 8 * DAY)
    assert ghost_alerts(again) == []
