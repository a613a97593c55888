"""The anomaly scenarios: sales whose final events must raise alerts.

Each function takes the :class:`~streams.simulator.scenarios.Builder` and the request's
true time ``t0`` (ms) and returns the story's transactions, with the kinds and the cause
it means (``tx.expect``). The evidence patterns are listed in
:mod:`streams.simulator.scenarios`; the benign scenarios and the shared steps of a sale
live there too.
"""

from __future__ import annotations

from models.alerts import Cause, Kind
from streams.simulator.scenarios import (
    FALSE_APPROVAL_DECLINES,
    FAULT_REASONS,
    FIXED_FEES,
    OPERATOR_CANCEL_REASONS,
    RESTRICTION_DECLINES,
    REVERSAL_REASONS,
    SECOND,
    SWITCH_REASONS,
    TIMEOUT_REASONS,
    Builder,
    aftermath,
    approve_and_take,
    clearing,
    guard,
    matched_sale,
)
from streams.simulator.transaction import Txn


def _surcharged(b: Builder, amount: int, currency: str) -> int:
    """Amount plus a fee: 1-3 % or a fixed fee; always more, by at most 10 %.

    A surcharged amount that happens to look like a keying slip (1899 + 4.7 % = 1989,
    two digits swapped) is nudged by a minor unit, so the evidence says "fee", not "typo".
    """
    if b.chance(0.5):
        fee = round(amount * (0.01 + 0.02 * b.random()))
    else:
        fee = FIXED_FEES.get(currency, 50)
    charged = amount + max(1, min(fee, amount // 10))
    if not looks_mistyped(amount, charged):
        return charged
    limit = amount + max(1, amount // 10)
    nearby = [*range(charged + 1, limit + 1), *range(charged - 1, amount, -1)]
    return next((c for c in nearby if not looks_mistyped(amount, c)), charged)


def looks_mistyped(shown: int, taken: int) -> bool:
    """``taken`` is ``shown`` x10, x100, /10, /100 or with two adjacent digits swapped.

    >>> looks_mistyped(1899, 1989), looks_mistyped(1899, 18990), looks_mistyped(1899, 1950)
    (True, True, False)
    """
    if taken in (shown * 10, shown * 100, shown // 10, shown // 100):
        return True
    a, b = str(shown), str(taken)
    if len(a) != len(b) or a == b:
        return False
    diffs = [i for i in range(len(a)) if a[i] != b[i]]
    return (
        len(diffs) == 2
        and diffs[1] == diffs[0] + 1
        and (a[diffs[0]], a[diffs[1]])
        == (
            b[diffs[1]],
            b[diffs[0]],
        )
    )


def _mistyped(b: Builder, amount: int) -> int:
    """A keying error: x10, /10 (integer), or two adjacent digits transposed."""
    choice = b.random()
    if choice < 0.35:
        return amount * 10
    if choice < 0.6 and amount >= 100:
        return amount // 10
    digits = str(amount)
    spots = [
        i
        for i in range(len(digits) - 1)
        if digits[i] != digits[i + 1] and not (i == 0 and digits[1] == "0")
    ]
    if not spots:
        return amount * 10
    i = spots[int(b.random() * len(spots))]
    return int(digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :])


# -- benign -------------------------------------------------------------------------------


def network_failure(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("network_failure", t0)
    approve_and_take(b, tx)
    gave_up = t0 + tx.terminal.timeout_ms
    if b.chance(b.profile.no_outcome_share):
        tx.scenario = "network_failure.no_outcome"  # the terminal's outcome never reached us
    else:
        tx.outcome(gave_up, "timeout", b.pick(TIMEOUT_REASONS))
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.NETWORK_FAILURE)
    return aftermath(b, tx, gave_up, may_pay_again=True)


def network_failure_standin(b: Builder, t0: int) -> list[Txn]:
    """The host was unreachable; the terminal approved in stand-in. The issuer saw nothing."""
    tx = b.open("network_failure_standin", t0)
    tx.request()
    tx.outcome(t0 + b.between(2 * SECOND, 15 * SECOND), "approved")
    tx.expect(Kind.TERMINAL_APPROVED_NO_DEBIT, Cause.NETWORK_FAILURE)
    return [tx]


def issuer_late_response(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("issuer_late_response", t0)
    tx.request()
    gave_up = t0 + tx.terminal.timeout_ms
    tx.outcome(gave_up, "timeout", b.pick(TIMEOUT_REASONS))
    answered = gave_up + b.between(SECOND, 40 * SECOND)
    tx.authorization(answered, True)
    tx.money(answered + b.posting_gap())
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.ISSUER_LATE_RESPONSE)
    return aftermath(b, tx, gave_up, may_pay_again=True)


def terminal_fault(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("terminal_fault", t0)
    answered = approve_and_take(b, tx)
    shown = answered + b.between(500, 15 * SECOND)
    tx.outcome(shown, "error", b.pick(FAULT_REASONS))
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.TERMINAL_FAULT)
    return aftermath(b, tx, shown, may_pay_again=True)


def terminal_fault_false_approval(b: Builder, t0: int) -> list[Txn]:
    """The issuer declined; the terminal's software showed "approved" anyway."""
    tx = b.open("terminal_fault_false_approval", t0)
    tx.request()
    answered = t0 + b.host_latency()
    tx.authorization(answered, False, b.pick(FALSE_APPROVAL_DECLINES))
    tx.outcome(answered + b.response_time(), "approved")
    tx.expect(Kind.TERMINAL_APPROVED_NO_DEBIT, Cause.TERMINAL_FAULT)
    return [tx]


def reversal_lost(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("reversal_lost", t0)
    answered = approve_and_take(b, tx)
    if b.chance(0.8):
        gave_up = t0 + tx.terminal.timeout_ms
        tx.outcome(gave_up, "timeout", b.pick(TIMEOUT_REASONS))
    else:
        gave_up = answered + b.between(500, 15 * SECOND)
        tx.outcome(gave_up, "error", b.pick(FAULT_REASONS))
    reversed_at = gave_up + b.between(500, 10 * SECOND)
    tx.terminal_reversal(reversed_at, b.pick(REVERSAL_REASONS))
    if b.chance(0.3):  # the gateway repeats the advice (0421); it is lost again
        tx.terminal_reversal(reversed_at + b.between(30 * SECOND, 60 * SECOND), "repeat advice")
    tx.expect(Kind.REVERSAL_NOT_APPLIED, Cause.REVERSAL_LOST)
    guard(tx)
    return [tx]


def account_restriction(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("account_restriction", t0)
    tx.request()
    answered = t0 + b.host_latency()
    code = b.pick(RESTRICTION_DECLINES)
    tx.authorization(answered, False, code)
    tx.outcome(answered + b.response_time(), "declined", response_code=code)
    tx.money(answered + b.between(SECOND, 60 * SECOND))
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.ACCOUNT_RESTRICTION)
    return aftermath(b, tx, answered, may_pay_again=False)


def _approved_for(b: Builder, tx: Txn, charged: int) -> None:
    """The terminal approves its amount; the issuer approves and takes ``charged``."""
    answered = tx.t0 + b.host_latency()
    tx.authorization(answered, True, amount=charged)
    tx.money(answered + b.posting_gap(), charged)
    tx.outcome(answered + b.response_time(), "approved")
    if tx.card.dual_message:
        clearing(b, tx, charged)


def merchant_configuration(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("merchant_configuration", t0)
    tx.request()
    _approved_for(b, tx, _surcharged(b, tx.amount, tx.terminal.merchant.market.currency))
    tx.expect(Kind.AMOUNT_MISMATCH, Cause.MERCHANT_CONFIGURATION)
    return [tx]


def operator_error_amount(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("operator_error_amount", t0)
    keyed = _mistyped(b, tx.amount)
    tx.request(keyed if b.chance(b.profile.operator_wrong_request_share) else None)
    _approved_for(b, tx, keyed)
    tx.expect(Kind.AMOUNT_MISMATCH, Cause.OPERATOR_ERROR)
    return [tx]


def operator_error_cancelled(b: Builder, t0: int) -> list[Txn]:
    """The cashier cancels after the host approved; no other card follows."""
    tx = b.open("operator_error_cancelled", t0)
    answered = approve_and_take(b, tx)
    shown = answered + b.between(2 * SECOND, 20 * SECOND)
    tx.outcome(shown, "cancelled", b.pick(OPERATOR_CANCEL_REASONS))
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.OPERATOR_ERROR)
    return aftermath(b, tx, shown, may_pay_again=False)


def payment_method_switch(b: Builder, t0: int) -> list[Txn]:
    """Card 1 is debited, the sale is cancelled, and card 2 pays the same amount."""
    tx = b.open("payment_method_switch", t0)
    answered = approve_and_take(b, tx)
    shown = answered + b.between(3 * SECOND, 30 * SECOND)
    tx.outcome(shown, "cancelled", b.pick(SWITCH_REASONS))
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.PAYMENT_METHOD_SWITCH)
    tx.paid_again = True
    story = aftermath(b, tx, shown, may_pay_again=False)
    second = b.open(
        "second_card",
        shown + b.between(20 * SECOND, 120 * SECOND),
        terminal=tx.terminal,
        card=b.fleet.pick_card(b.rng, other_than=tx.card),
        amount=tx.amount,
    )
    matched_sale(b, second)
    story.append(second)
    return story


def duplicate_processing(b: Builder, t0: int) -> list[Txn]:
    if b.chance(b.profile.duplicate_timeout_share):
        # A timed-out sale (network failure) whose debit was also processed twice.
        card = b.fleet.pick_single_message_card(b.rng)
        tx = b.open("duplicate_processing.timeout", t0, card=card)
        tx.request()
        answered = t0 + b.host_latency()
        tx.authorization(answered, True)
        posted = answered + b.posting_gap()
        tx.issuer("debit", posted)
        tx.issuer("debit", posted + b.between(SECOND, 90 * SECOND))
        tx.outcome(t0 + tx.terminal.timeout_ms, "timeout", b.pick(TIMEOUT_REASONS))
        tx.expect(Kind.UNMATCHED_DEBIT, Cause.NETWORK_FAILURE)
        tx.expect(Kind.DUPLICATE_DEBIT, Cause.DUPLICATE_PROCESSING)
        guard(tx)
        return [tx]
    tx = b.open("duplicate_processing", t0)
    tx.request()
    answered = t0 + b.host_latency()
    tx.authorization(answered, True)
    if tx.card.dual_message:
        tx.issuer("hold", answered + b.posting_gap())
        tx.outcome(answered + b.response_time(), "approved")
        clearing(b, tx, copies=2)  # the clearing record was processed twice
    else:
        posted = answered + b.posting_gap()
        tx.issuer("debit", posted)
        tx.issuer("debit", posted + b.between(SECOND, 90 * SECOND))
        tx.outcome(answered + b.response_time(), "approved")
    tx.expect(Kind.DUPLICATE_DEBIT, Cause.DUPLICATE_PROCESSING)
    return [tx]
