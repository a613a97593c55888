"""What a transaction's log means: each side's story, the net position, the alert kinds.

Everything here is a pure function of the event log, so a verdict does not depend on
the order the events arrived in (the latest terminal outcome is chosen by
``occurred_at``, ties by event id), and redeliveries never reach the log.

The kinds (CONTRACT §2) are judged independently; a timed-out sale debited twice is
both an ``unmatched_debit`` and a ``duplicate_debit``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from models.alerts import Kind
from models.config import DetectionConfig
from models.events import Step
from models.transaction import Record


@dataclasses.dataclass(slots=True)
class Facts:
    """The two sides' stories of one transaction, folded from its log."""

    # Terminal side
    request_us: int | None = None
    request_amount: int | None = None
    outcome: Step | None = None
    outcome_us: int | None = None
    outcome_event: str = ""
    terminal_amount: int | None = None
    terminal_currency: int | None = None
    terminal_reversal: bool = False
    terminal_reversal_us: int | None = None
    # Issuer side
    issuer_events: int = 0
    authorization: Step | None = None
    authorization_us: int | None = None
    authorization_event: str = ""
    authorization_response: str | None = None
    first_money_us: int | None = None  # earliest authorization, hold or debit
    debit_count: int = 0
    debit_sum: int = 0
    hold_count: int = 0
    hold_sum: int = 0
    hold_release_sum: int = 0
    reversal_count: int = 0
    reversal_sum: int = 0
    refund_count: int = 0
    refund_sum: int = 0
    # (occurred_us, amount, currency) of the first debit / hold / the latest authorization
    first_debit: tuple[int, int, int] | None = None
    first_hold: tuple[int, int, int] | None = None
    authorization_amount: tuple[int, int] | None = None
    money_amounts: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    evidence: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    @property
    def completed(self) -> bool:
        """CONTRACT §1.2: latest outcome approved and no terminal reversal."""
        return self.outcome is Step.APPROVED and not self.terminal_reversal

    @property
    def debited(self) -> int:
        return max(0, self.debit_sum - self.refund_sum - self.reversal_sum)

    @property
    def held(self) -> int:
        return max(0, self.hold_sum - self.hold_release_sum - self.reversal_sum)

    @property
    def net(self) -> int:
        """The cardholder's net position: debited if any debit was posted, else held."""
        return self.debited if self.debit_count else self.held

    @property
    def issuer_amount(self) -> tuple[int, int] | None:
        """What the issuer says the sale was: its first debit, else hold, else authorization."""
        for first in (self.first_debit, self.first_hold):
            if first is not None:
                return first[1], first[2]
        return self.authorization_amount

    def evidence_ids(self) -> list[str]:
        """The event ids the verdict rests on, in event-time order."""
        return [event_id for _at, event_id in sorted(self.evidence)]

    @property
    def live_debits(self) -> int:
        return self.debit_count - self.reversal_count - self.refund_count


def _earlier(candidate: int, current: int | None) -> bool:
    return current is None or candidate < current


def fold(log: Iterable[Record]) -> Facts:
    """Fold an event log into :class:`Facts` (order of the log does not matter)."""
    facts = Facts()
    for record in log:
        step, at = record.step, record.occurred_us
        facts.evidence.append((at, record.event_id))
        if step.is_terminal:
            if step is Step.REQUEST:
                if _earlier(at, facts.request_us):
                    facts.request_us = at
                    facts.request_amount = record.amount_minor
                    if facts.outcome is None:
                        facts.terminal_amount = record.amount_minor
                        facts.terminal_currency = record.currency
            elif step is Step.TERMINAL_REVERSAL:
                facts.terminal_reversal = True
                if _earlier(at, facts.terminal_reversal_us):
                    facts.terminal_reversal_us = at
                if facts.terminal_amount is None:
                    facts.terminal_amount = record.amount_minor
                    facts.terminal_currency = record.currency
            elif facts.outcome_us is None or (at, record.event_id) > (
                facts.outcome_us,
                facts.outcome_event,
            ):
                facts.outcome = step
                facts.outcome_us = at
                facts.outcome_event = record.event_id
                facts.terminal_amount = record.amount_minor
                facts.terminal_currency = record.currency
            continue
        facts.issuer_events += 1
        amount = record.amount_minor
        if step is Step.AUTH_APPROVED or step is Step.AUTH_DECLINED:
            if facts.authorization_us is None or (at, record.event_id) > (
                facts.authorization_us,
                facts.authorization_event,
            ):
                facts.authorization = step
                facts.authorization_us = at
                facts.authorization_event = record.event_id
                facts.authorization_response = record.response_code
                facts.authorization_amount = (amount, record.currency)
            if _earlier(at, facts.first_money_us):
                facts.first_money_us = at
        elif step is Step.DEBIT:
            facts.debit_count += 1
            facts.debit_sum += amount
            facts.money_amounts.append((amount, record.currency))
            if facts.first_debit is None or at < facts.first_debit[0]:
                facts.first_debit = (at, amount, record.currency)
            if _earlier(at, facts.first_money_us):
                facts.first_money_us = at
        elif step is Step.HOLD:
            facts.hold_count += 1
            facts.hold_sum += amount
            facts.money_amounts.append((amount, record.currency))
            if facts.first_hold is None or at < facts.first_hold[0]:
                facts.first_hold = (at, amount, record.currency)
            if _earlier(at, facts.first_money_us):
                facts.first_money_us = at
        elif step is Step.HOLD_RELEASE:
            facts.hold_release_sum += amount
        elif step is Step.ISSUER_REVERSAL:
            facts.reversal_count += 1
            facts.reversal_sum += amount
        elif step is Step.REFUND:
            facts.refund_count += 1
            facts.refund_sum += amount
    return facts


def amount_differs(facts: Facts, config: DetectionConfig) -> bool:
    """A debit or hold differs from the terminal's amount (beyond tolerance) or currency."""
    if facts.terminal_amount is None:
        return False
    tolerance = max(
        config.amount_tolerance_minor,
        int(config.amount_tolerance_ratio * facts.terminal_amount),
    )
    return any(
        currency != facts.terminal_currency or abs(amount - facts.terminal_amount) > tolerance
        for amount, currency in facts.money_amounts
    )


def conditions(facts: Facts, config: DetectionConfig) -> dict[Kind, bool]:
    """Which transaction kinds hold for these facts (CONTRACT §2, exactly)."""
    net = facts.net
    completed = facts.completed
    return {
        Kind.UNMATCHED_DEBIT: net > 0 and not completed and not facts.terminal_reversal,
        Kind.REVERSAL_NOT_APPLIED: net > 0 and facts.terminal_reversal,
        Kind.TERMINAL_APPROVED_NO_DEBIT: completed and net == 0,
        Kind.AMOUNT_MISMATCH: completed and net > 0 and amount_differs(facts, config),
        Kind.DUPLICATE_DEBIT: facts.live_debits >= 2,
    }


def _money_returned(facts: Facts) -> str:
    if facts.reversal_count:
        return "reversed_by_issuer"
    if facts.refund_count:
        return "refunded"
    if facts.hold_release_sum:
        return "hold_released"
    return "money_returned"


def resolution(kind: Kind, facts: Facts) -> str:
    """Why a firing alert of ``kind`` no longer holds (the ``resolution`` field)."""
    if kind is Kind.UNMATCHED_DEBIT:
        if facts.net == 0:
            return _money_returned(facts)
        if facts.terminal_reversal:
            return "terminal_reversal_sent"
        return "terminal_completed"
    if kind is Kind.REVERSAL_NOT_APPLIED:
        return _money_returned(facts)
    if kind is Kind.TERMINAL_APPROVED_NO_DEBIT:
        return "issuer_money_arrived" if facts.net > 0 else "terminal_not_completed"
    if kind is Kind.AMOUNT_MISMATCH:
        if not facts.completed:
            return "terminal_not_completed"
        return _money_returned(facts) if facts.net == 0 else "amounts_agree"
    return "duplicate_reversed" if facts.reversal_count else "duplicate_refunded"
