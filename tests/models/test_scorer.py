"""The score (models/scorer.py): its formula, monotonicity, bands, deadline escalation."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.alerts import TRANSACTION_KINDS, Kind, Severity
from models.config import DetectionConfig
from models.deadlines import DAY_US, NEUTRAL, RBI_CARD_PRESENT, DeadlineConfig, deadline_us
from models.events import Step
from models.instants import MICROS, to_micros
from models.scorer import (
    Score,
    age_fraction,
    amount_weight,
    score,
    severity_of,
    urgency,
)
from models.transaction import FOLLOWUP_NONE, FOLLOWUP_SAME_CARD
from models.verdicts import Facts, Tally

INR = 356
SENT = to_micros(datetime(2026, 11, 27, 9, 15, 2, tzinfo=UTC))  # T = 2026-11-27 IST
_DEADLINE = deadline_us(RBI_CARD_PRESENT, SENT)
assert _DEADLINE is not None
DEADLINE: int = _DEADLINE  # 2026-12-02T18:30:00Z: the end of T+5 in IST
CONFIG = DetectionConfig()
ORDER = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]

units = st.floats(min_value=0.0, max_value=1.0)
kinds = st.sampled_from(TRANSACTION_KINDS)


def ghost_debit(amount: int = 50_000, currency: int = INR) -> Facts:
    """A sale that timed out on the terminal while the bank debited it."""
    tally = Tally(
        outcome=Step.TIMEOUT,
        terminal_reversal=False,
        terminal_amount=amount,
        terminal_currency=currency,
        completed=False,
        net=amount,
        debited=amount,
        debit_count=1,
        live_debits=1,
        reversal_count=0,
        refund_count=0,
        hold_release_sum=0,
        money_amounts=[(amount, currency)],
    )
    return Facts(
        tally,
        request_us=SENT,
        request_amount=amount,
        outcome_us=SENT + 30 * MICROS,
        issuer_events=2,
        authorization=Step.AUTH_APPROVED,
        authorization_amount=(amount, currency),
        first_money_us=SENT + MICROS,
        first_debit=(SENT + 2 * MICROS, amount, currency),
    )


def old_formula(kind: Kind, weight: float, paid_again: bool) -> float:
    base = {
        Kind.UNMATCHED_DEBIT: 0.50,
        Kind.REVERSAL_NOT_APPLIED: 0.55,
        Kind.DUPLICATE_DEBIT: 0.50,
        Kind.AMOUNT_MISMATCH: 0.35,
        Kind.TERMINAL_APPROVED_NO_DEBIT: 0.30,
    }[kind]
    return round(min(1.0, base + 0.30 * weight + (0.20 if paid_again else 0.0)), 3)


# ---- the formula --------------------------------------------------------------------


@given(kinds, units, st.booleans())
def test_without_the_new_inputs_the_score_is_the_first_scorers(
    kind: Kind, weight: float, paid_again: bool
) -> None:
    assert urgency(kind, weight, paid_again=paid_again) == old_formula(kind, weight, paid_again)


@given(kinds, units, st.booleans(), units, st.booleans(), units)
def test_score_is_in_the_unit_interval(
    kind: Kind, amount: float, paid: bool, age: float, passed: bool, incident: float
) -> None:
    value = urgency(
        kind, amount, paid_again=paid, age=age, deadline_passed=passed, incident_score=incident
    )
    assert 0.0 <= value <= 1.0


@given(kinds, units, units, st.booleans(), units, st.booleans(), units, units)
def test_score_is_monotone_in_each_input(
    kind: Kind,
    amount: float,
    amount2: float,
    paid: bool,
    age: float,
    passed: bool,
    incident: float,
    other: float,
) -> None:
    inputs = {"paid_again": paid, "age": age, "deadline_passed": passed, "incident_score": incident}

    def at(amount_: float = amount, **changes: object) -> float:
        return urgency(kind, amount_, **{**inputs, **changes})  # type: ignore[arg-type]

    low, high = sorted((amount, amount2))
    assert at(low) <= at(high)
    assert at(paid_again=False) <= at(paid_again=True)
    assert at(deadline_passed=False) <= at(deadline_passed=True)
    assert at(age=min(age, other)) <= at(age=max(age, other))
    assert at(incident_score=min(incident, other)) <= at(incident_score=max(incident, other))


@given(kinds, units, st.booleans(), units, units)
def test_past_the_deadline_is_at_least_high(
    kind: Kind, amount: float, paid: bool, age: float, incident: float
) -> None:
    value = urgency(
        kind, amount, paid_again=paid, age=age, deadline_passed=True, incident_score=incident
    )
    assert severity_of(value) in (Severity.HIGH, Severity.CRITICAL)


def test_customer_harm_ranks_above_merchant_harm() -> None:
    for customer in (Kind.UNMATCHED_DEBIT, Kind.REVERSAL_NOT_APPLIED, Kind.DUPLICATE_DEBIT):
        for merchant in (Kind.TERMINAL_APPROVED_NO_DEBIT, Kind.AMOUNT_MISMATCH):
            assert urgency(customer, 0.5) > urgency(merchant, 0.5)


def test_out_of_range_inputs_are_clamped() -> None:
    assert urgency(Kind.AMOUNT_MISMATCH, 0.0, incident_score=math.nan) == 0.35
    assert urgency(Kind.AMOUNT_MISMATCH, 0.0, incident_score=-3) == 0.35
    assert urgency(Kind.AMOUNT_MISMATCH, 0.0, incident_score=7) == 0.5
    assert urgency(Kind.AMOUNT_MISMATCH, 0.0, age=2.0) == 0.5


@pytest.mark.parametrize(
    ("value", "band"),
    [
        (1.0, Severity.CRITICAL),
        (0.8, Severity.CRITICAL),
        (0.799, Severity.HIGH),
        (0.6, Severity.HIGH),
        (0.599, Severity.MEDIUM),
        (0.4, Severity.MEDIUM),
        (0.399, Severity.LOW),
        (0.0, Severity.LOW),
    ],
)
def test_severity_bands(value: float, band: Severity) -> None:
    assert severity_of(value) is band


def test_amount_weight_saturates_at_ten_thousand_major_units() -> None:
    assert amount_weight(0, INR) == 0.0
    assert amount_weight(999_900, INR) == pytest.approx(1.0)  # 9,999 rupees + 1 = 10^4
    assert amount_weight(10**12, INR) == 1.0


def test_age_fraction() -> None:
    assert age_fraction(SENT, None, SENT + DAY_US) == 0.0
    assert age_fraction(SENT, DEADLINE, None) == 0.0
    assert age_fraction(SENT, DEADLINE, SENT - 1) == 0.0
    assert age_fraction(SENT, DEADLINE, (SENT + DEADLINE) // 2) == pytest.approx(0.5)
    assert age_fraction(SENT, DEADLINE, DEADLINE + DAY_US) == 1.0
    assert age_fraction(SENT, SENT, SENT) == 1.0


# ---- score(): the whole alert -------------------------------------------------------


def test_existing_callers_get_the_first_scorer() -> None:
    scored = score(Kind.UNMATCHED_DEBIT, ghost_debit(), FOLLOWUP_NONE, SENT, CONFIG)
    assert scored.score == old_formula(Kind.UNMATCHED_DEBIT, amount_weight(50_000, INR), False)
    assert scored.deadline_us is None
    assert not scored.deadline_passed
    assert (scored.days_overdue, scored.compensation_minor, scored.compensation_currency) == (
        0,
        0,
        None,
    )
    assert "deadline" not in scored.explanation
    # positional construction (as before) still works
    assert Score(*scored[:6]) == scored


def rbi_score(now_us: int, incident: float = 0.0, followup: int = FOLLOWUP_NONE) -> Score:
    policy, due = DeadlineConfig().due(Kind.UNMATCHED_DEBIT, "INR", SENT)
    return score(
        Kind.UNMATCHED_DEBIT,
        ghost_debit(),
        followup,
        SENT,
        CONFIG,
        now_us=now_us,
        deadline=due,
        incident_score=incident,
        policy=policy,
    )


def test_before_the_deadline() -> None:
    scored = rbi_score(SENT + 6 * 60 * MICROS)  # at window close
    assert scored.deadline_us == DEADLINE
    assert not scored.deadline_passed
    assert (scored.compensation_minor, scored.compensation_currency) == (0, "INR")
    assert "deadline" not in scored.explanation
    # ₹500 at risk: 0.5 + 0.30 * log10(501) / 4 = 0.7025; 6 minutes of ~5.4 days add 0.0001
    assert scored.score == 0.703
    assert scored.severity is Severity.HIGH


def test_past_the_deadline_escalates_and_says_what_is_owed() -> None:
    before = rbi_score(DEADLINE - 1)
    at = rbi_score(DEADLINE)
    later = rbi_score(DEADLINE + 2 * DAY_US)
    assert not before.deadline_passed
    assert at.deadline_passed and later.deadline_passed
    assert before.score < at.score <= later.score
    assert ORDER.index(at.severity) >= ORDER.index(Severity.HIGH)
    assert (at.days_overdue, at.compensation_minor) == (1, 10_000)
    assert (later.days_overdue, later.compensation_minor) == (3, 30_000)
    assert later.explanation.endswith(
        " Past the RBI deadline of 2026-12-02 (T+5); compensation accrued so far: 300.00 INR."
    )


@given(
    st.integers(min_value=SENT, max_value=SENT + 20 * DAY_US),
    st.integers(min_value=SENT, max_value=SENT + 20 * DAY_US),
    units,
    units,
)
def test_score_is_monotone_in_age_and_incident_score(
    now1: int, now2: int, incident1: float, incident2: float
) -> None:
    early, late = sorted((now1, now2))
    low, high = sorted((incident1, incident2))
    assert rbi_score(early, low).score <= rbi_score(late, low).score
    assert rbi_score(early, low).score <= rbi_score(early, high).score
    assert rbi_score(early).compensation_minor <= rbi_score(late).compensation_minor


def test_paid_again_and_incident_raise_the_score() -> None:
    now = SENT + DAY_US
    plain = rbi_score(now)
    assert rbi_score(now, followup=FOLLOWUP_SAME_CARD).score > plain.score
    assert rbi_score(now, incident=1.0).score == pytest.approx(plain.score + 0.15, abs=0.0015)


def test_no_deadline_for_other_currencies_or_merchant_kinds() -> None:
    config = DeadlineConfig()
    assert config.due(Kind.UNMATCHED_DEBIT, "EUR", SENT) == (NEUTRAL, None)
    policy, due = config.due(Kind.TERMINAL_APPROVED_NO_DEBIT, "INR", SENT)
    assert due is None
    scored = score(
        Kind.UNMATCHED_DEBIT,
        ghost_debit(currency=978),
        FOLLOWUP_NONE,
        SENT,
        CONFIG,
        now_us=SENT + 30 * DAY_US,
        deadline=None,
        policy=policy,
    )
    assert not scored.deadline_passed and scored.compensation_minor == 0


def test_a_deadline_without_a_policy_still_escalates() -> None:
    scored = score(
        Kind.UNMATCHED_DEBIT,
        ghost_debit(),
        FOLLOWUP_NONE,
        SENT,
        CONFIG,
        now_us=DEADLINE + DAY_US,
        deadline=DEADLINE,
    )
    assert scored.deadline_passed and scored.days_overdue == 2
    assert scored.compensation_minor == 0 and scored.compensation_currency is None
    assert scored.explanation.endswith(" Past the regulatory deadline of 2026-12-02T18:30:00Z.")
