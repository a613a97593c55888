"""The first scorer: probable cause, money at risk, score, severity and explanation.

Given the verdict for one transaction and kind, it says *why* it probably happened,
how much the cardholder stands to lose, how urgent it is and, in plain words, what a
support agent can tell the customer. Issue #4 replaces the score with a learned one;
the attribution rules below are the evidence patterns of MISSION.md:

================================  =========================================================
cause                             evidence
================================  =========================================================
``duplicate_processing``          two or more live debits for one key
``reversal_lost``                 the terminal sent a reversal, the bank still holds money
``account_restriction``           the bank's own authorization said *declined*, yet it
                                  debited or held the money
``payment_method_switch``         sale ``cancelled``, then a paid sale at the same terminal
                                  with another card for the same amount soon after
``operator_error``                sale ``cancelled`` with no switch; or an amount that
                                  looks mis-keyed (x10, /10, swapped digits), or the
                                  terminal's own request and outcome disagree
``terminal_fault``                the terminal showed ``error`` after the bank approved;
                                  or it printed *approved* although the bank declined
``issuer_late_response``          the bank answered after the terminal stopped waiting:
                                  its latency from ``transmitted_at`` exceeds the time
                                  between the terminal's request and its ``timeout``
``network_failure``               the bank answered in time and the answer never reached
                                  the terminal (``timeout``, or no outcome at all); or the
                                  terminal approved a sale the bank never saw
``merchant_configuration``        the bank took a little more than the terminal showed
                                  (≤10 %: a surcharge or fee rule), or another currency
================================  =========================================================

Score (in [0, 1], higher = more urgent)::

    score = min(1, base(kind)                  # customer harm above merchant harm
                   + 0.30 * amount             # money at risk
                   + 0.20 * paid_again         # the cardholder paid a second time
                   + 0.15 * age                # share of the time to the deadline used up
                   + 0.10 * deadline_passed    # escalation past the regulatory deadline
                   + 0.15 * incident)          # the terminal's incident score
    past the deadline: score = max(score, 0.60)   # so severity is at least "high"
    rounded to 3 decimals

    base:     reversal_not_applied 0.55, unmatched_debit 0.50, duplicate_debit 0.50,
              amount_mismatch 0.35, terminal_approved_no_debit 0.30
    amount  = min(1, log10(1 + harm in major units) / 4)   # 10,000 units saturate
    age     = clamp((now - transmitted_at) / (deadline - transmitted_at), 0, 1)
              (0 when there is no deadline or no ``now``)
    deadline_passed = 1 when now >= deadline (models/deadlines.py), else 0
    incident = the caller's incident score of the terminal, clamped to [0, 1], 0 if unknown

Every term is a non-decreasing function of its input and ``min``, ``max`` and rounding
to nearest keep that, so the score is monotone non-decreasing in the money at risk,
paid-again, ``now`` (age), and the incident score. Without a deadline, ``now`` or an
incident score the last three terms are 0 and the score is the first scorer's.

``harm`` is the money at risk for the cardholder kinds and the unpaid sale amount for
``terminal_approved_no_debit`` (the merchant's loss). Severity bands: ``critical`` ≥ 0.8,
``high`` ≥ 0.6, ``medium`` ≥ 0.4, else ``low``; an alert past its deadline is at least
``high`` by the floor above. Amounts are not converted between currencies (documented in
docs/alerts.md).
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

from models import currencies
from models.alerts import Cause, Kind, Severity
from models.config import DetectionConfig
from models.deadlines import (
    DAY_US,
    DeadlinePolicy,
    compensation_minor,
    days_overdue,
    overdue_sentence,
)
from models.events import STEP_OUTCOME, Step
from models.instants import MICROS, format_micros
from models.transaction import FOLLOWUP_OTHER_CARD, FOLLOWUP_SAME_CARD
from models.verdicts import Facts

_BASE: Final = {
    Kind.UNMATCHED_DEBIT: 0.50,
    Kind.REVERSAL_NOT_APPLIED: 0.55,
    Kind.DUPLICATE_DEBIT: 0.50,
    Kind.AMOUNT_MISMATCH: 0.35,
    Kind.TERMINAL_APPROVED_NO_DEBIT: 0.30,
}
_CUSTOMER_HARM: Final = frozenset({Kind.UNMATCHED_DEBIT, Kind.REVERSAL_NOT_APPLIED})
_SURCHARGE_LIMIT: Final = 0.10
AMOUNT_WEIGHT: Final = 0.30
PAID_AGAIN_WEIGHT: Final = 0.20
AGE_WEIGHT: Final = 0.15
DEADLINE_PASSED_WEIGHT: Final = 0.10
INCIDENT_WEIGHT: Final = 0.15
DEADLINE_PASSED_FLOOR: Final = 0.60  # the "high" band


class Score(NamedTuple):
    probable_cause: Cause
    at_risk_minor: int
    score: float
    severity: Severity
    explanation: str
    paid_again: bool
    # Regulatory deadline (models/deadlines.py); the defaults mean "no deadline".
    deadline_us: int | None = None
    deadline_passed: bool = False
    days_overdue: int = 0
    compensation_minor: int = 0
    compensation_currency: str | None = None


def _alpha(numeric: int | None) -> str:
    # XXX is ISO 4217's "no currency": formats amounts without a minor unit.
    return currencies.alpha_of(numeric) or "XXX"


def _money(amount: int, numeric: int | None) -> str:
    return currencies.format_minor(amount, _alpha(numeric))


def _major_units(amount: int, numeric: int | None) -> float:
    return amount / 10.0 ** currencies.exponent(_alpha(numeric))


def looks_mis_keyed(shown: int, taken: int) -> bool:
    """Typical keying slips: a digit too many or too few (x10, /10), two digits swapped.

    >>> looks_mis_keyed(1250, 12500), looks_mis_keyed(1255, 125), looks_mis_keyed(1250, 1520)
    (True, True, True)
    >>> looks_mis_keyed(1250, 1275)
    False
    """
    if shown <= 0 or taken <= 0:
        return False
    if taken in (shown * 10, shown * 100, shown // 10, shown // 100):
        return True
    a, b = str(shown), str(taken)
    if len(a) != len(b):
        return False
    diffs = [i for i in range(len(a)) if a[i] != b[i]]
    return (
        len(diffs) == 2
        and diffs[1] == diffs[0] + 1
        and a[diffs[0]] == b[diffs[1]]
        and (a[diffs[1]] == b[diffs[0]])
    )


def _differing_amount(facts: Facts) -> tuple[int, int] | None:
    for amount, currency in facts.tally.money_amounts:
        if amount != facts.tally.terminal_amount or currency != facts.tally.terminal_currency:
            return amount, currency
    return None


def _amount_cause(facts: Facts) -> Cause:
    differing = _differing_amount(facts)
    shown = facts.tally.terminal_amount
    if differing is None or shown is None:
        return Cause.UNKNOWN
    taken, currency = differing
    if currency != facts.tally.terminal_currency:
        return Cause.MERCHANT_CONFIGURATION
    if (
        facts.request_amount is not None
        and facts.request_amount not in (shown,)
        and (facts.request_amount == taken)
    ):
        return Cause.OPERATOR_ERROR
    if looks_mis_keyed(shown, taken):
        return Cause.OPERATOR_ERROR
    if shown < taken <= shown * (1 + _SURCHARGE_LIMIT):
        return Cause.MERCHANT_CONFIGURATION
    return Cause.UNKNOWN


def _bank_answered_late(facts: Facts, transmitted_us: int, config: DetectionConfig) -> bool:
    """Did the bank answer after the terminal stopped waiting?

    Both durations are measured on one clock each, so a terminal whose clock is two
    minutes off does not fool us: the bank's latency from ``transmitted_at`` (stamped by
    the acquirer host), the terminal's wait from its own request to its own outcome.
    """
    if facts.first_money_us is None:
        return False
    latency = facts.first_money_us - transmitted_us
    if facts.request_us is not None and facts.outcome_us is not None:
        waited = facts.outcome_us - facts.request_us
    else:
        waited = int(config.default_terminal_timeout * MICROS)
    return latency > waited


def probable_cause(
    kind: Kind, facts: Facts, followup: int, transmitted_us: int, config: DetectionConfig
) -> Cause:
    """Attribute a cause from the evidence (see the module table)."""
    if kind is Kind.DUPLICATE_DEBIT:
        return Cause.DUPLICATE_PROCESSING
    if kind is Kind.REVERSAL_NOT_APPLIED:
        return Cause.REVERSAL_LOST
    if kind is Kind.AMOUNT_MISMATCH:
        return _amount_cause(facts)
    if kind is Kind.TERMINAL_APPROVED_NO_DEBIT:
        if facts.authorization is Step.AUTH_DECLINED:
            return Cause.TERMINAL_FAULT
        if facts.issuer_events == 0 or facts.tally.reversal_count:
            return Cause.NETWORK_FAILURE
        return Cause.UNKNOWN
    # unmatched_debit: money taken, sale not completed, no reversal sent.
    if facts.authorization is Step.AUTH_DECLINED:
        return Cause.ACCOUNT_RESTRICTION
    outcome = facts.outcome
    if outcome is Step.CANCELLED:
        if followup == FOLLOWUP_OTHER_CARD:
            return Cause.PAYMENT_METHOD_SWITCH
        return Cause.OPERATOR_ERROR
    if outcome is Step.ERROR:
        return Cause.TERMINAL_FAULT
    if outcome is None:
        return Cause.NETWORK_FAILURE
    if _bank_answered_late(facts, transmitted_us, config):
        return Cause.ISSUER_LATE_RESPONSE
    return Cause.NETWORK_FAILURE


def at_risk(kind: Kind, facts: Facts) -> int:
    """Money the cardholder has lost or has blocked because of this (0: merchant's harm)."""
    if kind in _CUSTOMER_HARM:
        return facts.tally.net
    if kind is Kind.DUPLICATE_DEBIT:
        one = facts.first_debit[1] if facts.first_debit else 0
        return max(0, facts.tally.debited - one)
    if kind is Kind.AMOUNT_MISMATCH:
        issuer = facts.issuer_amount
        shown = facts.tally.terminal_amount
        if issuer is None or shown is None or issuer[1] != facts.tally.terminal_currency:
            return 0
        return max(0, facts.tally.net - shown)
    return 0


def severity_of(score: float) -> Severity:
    if score >= 0.8:
        return Severity.CRITICAL
    if score >= 0.6:
        return Severity.HIGH
    if score >= 0.4:
        return Severity.MEDIUM
    return Severity.LOW


def amount_weight(harm_minor: int, currency: int | None) -> float:
    """``min(1, log10(1 + harm in major units) / 4)``: 10,000 major units saturate."""
    major = max(0.0, _major_units(harm_minor, currency))
    return min(1.0, math.log10(1.0 + major) / 4.0)


def age_fraction(transmitted_us: int, deadline: int | None, now_us: int | None) -> float:
    """Share of the time from the transaction to its deadline used up at ``now_us``, in
    [0, 1]; 0 without a deadline or a ``now``."""
    if deadline is None or now_us is None:
        return 0.0
    span = deadline - transmitted_us
    if span <= 0:
        return 1.0 if now_us >= deadline else 0.0
    return min(1.0, max(0.0, (now_us - transmitted_us) / span))


def _unit(value: float) -> float:
    """Clamp to [0, 1]; NaN counts as 0 (unknown)."""
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, value))


def urgency(
    kind: Kind,
    amount: float,
    *,
    paid_again: bool = False,
    age: float = 0.0,
    deadline_passed: bool = False,
    incident_score: float = 0.0,
) -> float:
    """The score formula of the module docstring, from its inputs (each clamped to [0, 1])."""
    value = (
        _BASE[kind]
        + AMOUNT_WEIGHT * _unit(amount)
        + (PAID_AGAIN_WEIGHT if paid_again else 0.0)
        + AGE_WEIGHT * _unit(age)
        + (DEADLINE_PASSED_WEIGHT if deadline_passed else 0.0)
        + INCIDENT_WEIGHT * _unit(incident_score)
    )
    value = min(1.0, value)
    if deadline_passed:
        value = max(value, DEADLINE_PASSED_FLOOR)
    return round(value, 3)


def score(
    kind: Kind,
    facts: Facts,
    followup: int,
    transmitted_us: int,
    config: DetectionConfig,
    *,
    now_us: int | None = None,
    deadline: int | None = None,
    incident_score: float = 0.0,
    policy: DeadlinePolicy | None = None,
) -> Score:
    """Everything the scorer adds to a transaction alert.

    ``now_us``: the stream time the alert is scored at (its age is measured to it);
    ``deadline`` and ``policy``: the alert's regulatory deadline and the policy that set
    it, as :meth:`models.deadlines.DeadlineConfig.due` returns them (None: no
    deadline); ``incident_score``: the incident score of the alert's terminal in [0, 1],
    0 when unknown. Past the deadline (``now_us >= deadline``) the score is escalated,
    ``compensation_minor`` is what the policy says has accrued by ``now_us`` and the
    explanation ends with a sentence saying so. Without these keywords the result is
    the first scorer's.

    Wiring (docs/alerts.md, "What is published when a deadline passes"): when an alert
    fires at window close, ``now_us`` is the window's close; when a deadline passes,
    ``now_us = deadline``, so the compensation is the one accrued at that moment, not
    inflated by a stream time that jumped ahead (a far-future watermark, the end of a
    capture at ``FOREVER``; the functions accept such values without failing).
    """
    cause = probable_cause(kind, facts, followup, transmitted_us, config)
    risk = at_risk(kind, facts)
    paid_again = kind in _CUSTOMER_HARM and followup in (
        FOLLOWUP_SAME_CARD,
        FOLLOWUP_OTHER_CARD,
    )
    if kind is Kind.TERMINAL_APPROVED_NO_DEBIT:
        harm, currency = facts.tally.terminal_amount or 0, facts.tally.terminal_currency
    else:
        issuer = facts.issuer_amount
        harm, currency = risk, (issuer[1] if issuer else facts.tally.terminal_currency)
    passed = deadline is not None and now_us is not None and now_us >= deadline
    value = urgency(
        kind,
        amount_weight(harm, currency),
        paid_again=paid_again,
        age=age_fraction(transmitted_us, deadline, now_us),
        deadline_passed=passed,
        incident_score=incident_score,
    )
    text = explain(kind, cause, facts, paid_again, followup, risk)
    if deadline is None:
        return Score(cause, risk, value, severity_of(value), text, paid_again)
    owed, overdue, owed_currency = 0, 0, None
    if policy is not None:
        overdue = days_overdue(policy, deadline, now_us)
        owed = compensation_minor(policy, deadline, now_us)
        owed_currency = policy.compensation_currency
    if passed:
        assert now_us is not None  # for mypy: passed implies it
        text += " " + overdue_sentence(policy, deadline, now_us)
        if policy is None:  # no time zone to count calendar days in: 24-hour days
            overdue = (now_us - deadline) // DAY_US + 1
    return Score(
        cause,
        risk,
        value,
        severity_of(value),
        text,
        paid_again,
        deadline_us=deadline,
        deadline_passed=passed,
        days_overdue=overdue,
        compensation_minor=owed,
        compensation_currency=owed_currency,
    )


def _taken(facts: Facts) -> str:
    return "took" if facts.tally.debit_count else "blocked"


def _taken_participle(facts: Facts) -> str:
    return "taken" if facts.tally.debit_count else "blocked"


def _ghost_sentence(cause: Cause, facts: Facts, amount: str) -> str:
    shown = STEP_OUTCOME.get(facts.outcome) if facts.outcome else None
    took = _taken(facts)
    if cause is Cause.ACCOUNT_RESTRICTION:
        code = (
            f" (response code {facts.authorization_response})"
            if (facts.authorization_response)
            else ""
        )
        return (
            f"The bank declined this payment{code} but still {took} {amount} from the "
            "account: its answer and its posting disagree (account restriction)."
        )
    if cause is Cause.PAYMENT_METHOD_SWITCH:
        return (
            f"The sale was cancelled when the cardholder switched to another card, but the "
            f"bank had already {_taken_participle(facts)} {amount} from this card."
        )
    if cause is Cause.OPERATOR_ERROR:
        return (
            f"The sale was cancelled at the till after the bank had approved it, and the "
            f"bank {took} {amount} from the card."
        )
    if cause is Cause.TERMINAL_FAULT:
        return (
            f"The bank approved the payment and {took} {amount}, but the terminal then "
            "failed and showed an error, so the sale did not go through (terminal fault)."
        )
    if cause is Cause.ISSUER_LATE_RESPONSE:
        return (
            f'The terminal stopped waiting and showed "{shown}", but the bank approved '
            f"the payment after that and {took} {amount} (late bank response)."
        )
    if shown is None:
        return (
            f"The terminal never reported a result for this sale, but the bank {took} "
            f"{amount}: its approval never reached the terminal (network failure)."
        )
    return (
        f'The terminal showed "{shown}" but the bank had approved the payment and {took} '
        f"{amount}: its answer never reached the terminal (network failure)."
    )


def explain(
    kind: Kind, cause: Cause, facts: Facts, paid_again: bool, followup: int, risk: int
) -> str:
    """One or two sentences a support agent can read to the customer."""
    issuer = facts.issuer_amount
    issuer_money = _money(*issuer) if issuer else "nothing"
    risk_money = _money(risk, issuer[1] if issuer else facts.tally.terminal_currency)
    shown_money = (
        _money(facts.tally.terminal_amount, facts.tally.terminal_currency)
        if facts.tally.terminal_amount is not None
        else "an unknown amount"
    )
    if kind is Kind.UNMATCHED_DEBIT:
        text = _ghost_sentence(cause, facts, risk_money)
        text += " The money should be returned to the cardholder."
    elif kind is Kind.REVERSAL_NOT_APPLIED:
        when = format_micros(facts.terminal_reversal_us or 0)
        still = "taken from" if facts.tally.debit_count else "blocked on"
        text = (
            f"The terminal cancelled the sale with a reversal at {when}, but the bank never "
            f"applied it: {risk_money} is still {still} the card (reversal lost)."
        )
    elif kind is Kind.TERMINAL_APPROVED_NO_DEBIT:
        if facts.authorization is Step.AUTH_DECLINED:
            why = "the bank declined the payment"
        elif facts.issuer_events == 0:
            why = "the bank has no record of the payment"
        elif facts.tally.reversal_count:
            why = "the bank reversed the payment"
        else:
            why = "the bank never took the money"
        text = (
            f'The terminal printed "approved" for {shown_money} but {why}, so the '
            "merchant handed over the goods without being paid."
        )
    elif kind is Kind.AMOUNT_MISMATCH:
        if cause is Cause.MERCHANT_CONFIGURATION:
            why = "probably a surcharge or fee rule in the merchant's setup"
        elif cause is Cause.OPERATOR_ERROR:
            why = "probably an amount keyed in wrongly"
        else:
            why = "the cause is unclear"
        text = f"The terminal charged {shown_money} but the bank took {issuer_money} ({why})."
        if risk:
            text += f" The cardholder was overcharged by {risk_money}."
        else:
            text += " The cardholder was not overcharged; the merchant may be short."
    else:
        times = facts.tally.live_debits
        text = (
            f"The bank took {issuer_money} {times} times for one sale (duplicate "
            f"processing); {risk_money} should be refunded to the cardholder."
        )
    if paid_again:
        card = "with another card " if followup == FOLLOWUP_OTHER_CARD else ""
        text += (
            f" The cardholder then paid again at the same terminal {card}shortly "
            "afterwards, so they were charged twice."
        )
    return text
