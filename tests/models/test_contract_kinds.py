"""CONTRACT §2: one case per row of the kinds tables, plus "matched" and "clean".

Each case is the events of one transaction in arrival order and the kinds that must be
firing once every window has closed. Times are seconds after 09:00:00Z; the sale was
sent at 0 s, so its window closes at 360 s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from models.config import DetectionConfig
from tests.factories import event, final_status, firing_kinds, run, watermark


@dataclasses.dataclass
class Case:
    name: str
    events: list[tuple[str, dict[str, Any]]]
    firing: set[str]
    config: DetectionConfig | None = None


def request(t: float = 0.1, **kw: Any) -> tuple[str, dict[str, Any]]:
    return "terminal", event("request", t, **kw)


def outcome(kind: str, t: float = 2.0, **kw: Any) -> tuple[str, dict[str, Any]]:
    return "terminal", event("outcome", t, outcome=kind, **kw)


def terminal_reversal(t: float = 35.0, **kw: Any) -> tuple[str, dict[str, Any]]:
    return "terminal", event("reversal", t, **kw)


def authorization(approved: bool = True, t: float = 1.0, **kw: Any) -> tuple[str, dict[str, Any]]:
    code = "00" if approved else "51"
    return "issuer", event("authorization", t, approved=approved, response_code=code, **kw)


def issuer(type_: str, t: float = 1.2, **kw: Any) -> tuple[str, dict[str, Any]]:
    return "issuer", event(type_, t, **kw)


CASES = [
    # ---- unmatched_debit: net > 0, terminal did not complete, sent no reversal
    *(
        Case(
            f"unmatched_debit_when_terminal_shows_{shown}",
            [request(), authorization(), issuer("debit"), outcome(shown, 31.0)],
            {"unmatched_debit"},
        )
        for shown in ("declined", "timeout", "error", "cancelled")
    ),
    Case(
        "unmatched_debit_when_no_outcome_reached_us",
        [request(), authorization(), issuer("debit")],
        {"unmatched_debit"},
    ),
    Case(
        "unmatched_debit_on_a_hold_dual_message",
        [request(), authorization(), issuer("hold"), outcome("timeout", 31.0)],
        {"unmatched_debit"},
    ),
    Case(
        "unmatched_debit_when_latest_outcome_by_occurred_at_is_not_approved",
        # arrival order puts "approved" last, but it happened first
        [request(), issuer("debit"), outcome("error", 9.0), outcome("approved", 3.0)],
        {"unmatched_debit"},
    ),
    # ---- reversal_not_applied: net > 0 and the terminal sent a reversal
    Case(
        "reversal_not_applied_after_timeout",
        [request(), authorization(), issuer("debit"), outcome("timeout", 31), terminal_reversal()],
        {"reversal_not_applied"},
    ),
    Case(
        "reversal_not_applied_even_after_approved",
        [request(), issuer("debit"), outcome("approved"), terminal_reversal(40)],
        {"reversal_not_applied"},
    ),
    Case(
        "reversal_not_applied_on_a_hold",
        [request(), issuer("hold"), outcome("timeout", 31), terminal_reversal()],
        {"reversal_not_applied"},
    ),
    # ---- terminal_approved_no_debit: completed, issuer net position 0
    Case(
        "terminal_approved_no_debit_when_issuer_declined",
        [request(), authorization(approved=False), outcome("approved")],
        {"terminal_approved_no_debit"},
    ),
    Case(
        "terminal_approved_no_debit_when_issuer_never_saw_it",
        [request(), outcome("approved")],
        {"terminal_approved_no_debit"},
    ),
    Case(
        "terminal_approved_no_debit_when_issuer_reversed",
        [request(), issuer("debit"), outcome("approved"), issuer("reversal", 20.0)],
        {"terminal_approved_no_debit"},
    ),
    Case(
        "terminal_approved_no_debit_when_hold_released",
        [request(), issuer("hold"), outcome("approved"), issuer("hold_release", 20.0)],
        {"terminal_approved_no_debit"},
    ),
    # ---- amount_mismatch: completed, net > 0, a debit or hold differs
    Case(
        "amount_mismatch_when_debit_is_higher",
        [request(), issuer("debit", amount=12_800), outcome("approved")],
        {"amount_mismatch"},
    ),
    Case(
        "amount_mismatch_when_hold_is_lower",
        [request(), issuer("hold", amount=12_000), outcome("approved")],
        {"amount_mismatch"},
    ),
    Case(
        "amount_mismatch_when_currency_differs",
        [request(), issuer("debit", currency="USD"), outcome("approved")],
        {"amount_mismatch"},
    ),
    Case(
        "amount_mismatch_within_configured_tolerance_is_not_raised",
        [request(), issuer("debit", amount=12_560), outcome("approved")],
        set(),
        DetectionConfig(amount_tolerance_minor=10),
    ),
    Case(
        "amount_mismatch_beyond_configured_ratio_is_raised",
        [request(), issuer("debit", amount=13_000), outcome("approved")],
        {"amount_mismatch"},
        DetectionConfig(amount_tolerance_ratio=0.02),
    ),
    # ---- duplicate_debit: count(debit) - count(reversal) - count(refund) >= 2
    Case(
        "duplicate_debit_on_a_completed_sale",
        [request(), issuer("debit"), issuer("debit", 40.0), outcome("approved")],
        {"duplicate_debit"},
    ),
    Case(
        "duplicate_debit_and_unmatched_debit_are_judged_independently",
        [request(), issuer("debit"), issuer("debit", 40.0), outcome("timeout", 31)],
        {"duplicate_debit", "unmatched_debit"},
    ),
    Case(
        "duplicate_debit_cancelled_by_one_refund_is_not_raised",
        [
            request(),
            issuer("debit"),
            issuer("debit", 40.0),
            issuer("refund", 50.0),
            outcome("approved"),
        ],
        set(),
    ),
    # ---- matched and clean: no alert
    Case(
        "matched_single_message_raises_nothing",
        [request(), authorization(), issuer("debit"), outcome("approved")],
        set(),
    ),
    Case(
        "matched_dual_message_hold_raises_nothing",
        [request(), authorization(), issuer("hold"), outcome("approved")],
        set(),
    ),
    Case(
        "matched_hold_then_posted_debit_raises_nothing",
        [request(), issuer("hold"), outcome("approved"), issuer("debit", 200.0)],
        set(),
    ),
    Case(
        "clean_failure_on_both_sides_raises_nothing",
        [request(), authorization(approved=False), outcome("declined")],
        set(),
    ),
    Case(
        "clean_timeout_with_reversal_honoured_in_window",
        [
            request(),
            issuer("debit"),
            outcome("timeout", 31),
            terminal_reversal(),
            issuer("reversal", 36),
        ],
        set(),
    ),
    Case(
        "debit_reversed_within_the_window_never_alerts",
        [request(), issuer("debit"), outcome("timeout", 31), issuer("reversal", 300)],
        set(),
    ),
    Case(
        "net_position_never_below_zero",
        [
            request(),
            issuer("debit"),
            issuer("refund", 40),
            issuer("refund", 41),
            outcome("timeout", 31),
        ],
        set(),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_contract_kind(case: Case) -> None:
    alerts = run(case.events, case.config)
    assert firing_kinds(alerts) == case.firing
    # Nothing was published and then withdrawn: every verdict here is made once,
    # at window close, on the complete transaction.
    assert all(status == "firing" for status in final_status(alerts).values())
    assert len(alerts) == len(case.firing)


def test_alert_carries_every_contract_field() -> None:
    closing = [("terminal", watermark(400.0)), ("issuer", watermark(400.0))]
    alerts = run([request(), authorization(), issuer("debit"), outcome("timeout", 31), *closing])
    (alert,) = alerts
    assert alert.kind == "unmatched_debit"
    assert alert.status == "firing"
    assert (alert.terminal_id, alert.merchant_id, alert.stan) == ("T-0001", "M-001", "000101")
    assert alert.transmitted_at == "2026-11-27T09:00:00Z"
    assert (alert.card_token, alert.currency) == ("tok_card_a", "EUR")
    assert (alert.terminal_amount_minor, alert.issuer_amount_minor) == (12_550, 12_550)
    assert alert.at_risk_minor == 12_550
    assert len(alert.evidence) == 4
    assert alert.detected_at == "2026-11-27T09:06:40Z"  # stream time of the verdict
    assert alert.window_closed_at == "2026-11-27T09:06:00Z"
    assert alert.explanation and alert.probable_cause == "network_failure"
    assert alert.severity in {"critical", "high", "medium", "low"}
    assert 0.0 <= alert.score <= 1.0


def test_terminal_approved_no_debit_puts_no_money_at_risk() -> None:
    (alert,) = run([request(), outcome("approved")])
    assert alert.at_risk_minor == 0
    assert alert.issuer_amount_minor is None


def test_duplicate_debit_at_risk_is_the_extra_money() -> None:
    alerts = run([request(), issuer("debit"), issuer("debit", 40.0), outcome("approved")])
    (alert,) = alerts
    assert alert.at_risk_minor == 12_550


def test_alert_id_is_the_same_for_any_spelling_of_the_key_instant() -> None:
    utc = run([request(tx=0.0), issuer("debit")])
    shifted = event("request", 0.1)
    shifted["transmitted_at"] = "2026-11-27T17:00:00.900+08:00"  # same second, other offset
    local = run([("terminal", shifted), issuer("debit")])
    assert [a.alert_id for a in utc] == [a.alert_id for a in local]


def test_windows_closed_by_the_end_of_a_capture_report_its_far_future_stream_time() -> None:
    (alert,) = run([request(), issuer("debit")])  # run() ends with finish(): infinity
    assert alert.detected_at == "9999-12-31T23:59:59Z"
    assert alert.window_closed_at == "2026-11-27T09:06:00Z"
