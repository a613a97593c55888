"""What a transaction's log means: the net position, each side's story, the alert kinds.

Everything here is a pure function of the event log, so a verdict does not depend on
the order the events arrived in (the latest terminal outcome is chosen by
``occurred_at``, ties by event id), and redeliveries never reach the log.

Two folds of the same log, for two costs:

* :func:`tally` keeps only what the five conditions of CONTRACT §2 need. It runs for
  every transaction at window close, and most transactions are matched sales that
  raise nothing, so it is a single loop over packed records with local variables.
* :func:`fold` adds the details the scorer explains with (times, authorization,
  evidence). It runs only for a transaction that has, or had, an alert.

The kinds are judged independently; a timed-out sale debited twice is both an
``unmatched_debit`` and a ``duplicate_debit``.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from models.alerts import Kind
from models.config import DetectionConfig
from models.events import Step
from models.transaction import NO_RESPONSE_CODE, RECORD, Txn

# Plain ints for the hot loops: comparing IntEnum members costs an enum lookup each.
_REQUEST: Final = int(Step.REQUEST)
_APPROVED: Final = int(Step.APPROVED)
_TERMINAL_REVERSAL: Final = int(Step.TERMINAL_REVERSAL)
_AUTH_APPROVED: Final = int(Step.AUTH_APPROVED)
_AUTH_DECLINED: Final = int(Step.AUTH_DECLINED)
_HOLD: Final = int(Step.HOLD)
_HOLD_RELEASE: Final = int(Step.HOLD_RELEASE)
_DEBIT: Final = int(Step.DEBIT)
_ISSUER_REVERSAL: Final = int(Step.ISSUER_REVERSAL)
_REFUND: Final = int(Step.REFUND)


class Tally:
    """The aggregates CONTRACT §1.2 defines the net position and completion with.

    ``net`` and ``completed`` are computed once, in :func:`tally`, the only place that
    defines them.
    """

    __slots__ = (
        "completed",
        "debit_count",
        "debited",
        "hold_release_sum",
        "live_debits",
        "money_amounts",
        "net",
        "outcome",
        "refund_count",
        "reversal_count",
        "terminal_amount",
        "terminal_currency",
        "terminal_reversal",
    )

    def __init__(
        self,
        outcome: int,
        terminal_reversal: bool,
        terminal_amount: int | None,
        terminal_currency: int | None,
        completed: bool,
        net: int,
        debited: int,
        debit_count: int,
        live_debits: int,
        reversal_count: int,
        refund_count: int,
        hold_release_sum: int,
        money_amounts: list[tuple[int, int]],
    ) -> None:
        self.outcome = outcome  # the latest terminal outcome's Step value, 0 for none
        self.terminal_reversal = terminal_reversal
        self.terminal_amount = terminal_amount
        self.terminal_currency = terminal_currency
        self.completed = completed  # latest outcome approved and no terminal reversal
        self.net = net  # the cardholder's net position
        self.debited = debited
        self.debit_count = debit_count
        self.live_debits = live_debits  # count(debit) - count(reversal) - count(refund)
        self.reversal_count = reversal_count
        self.refund_count = refund_count
        self.hold_release_sum = hold_release_sum
        self.money_amounts = money_amounts  # (amount, currency) of every debit and hold


def tally(txn: Txn) -> Tally:
    """Fold a transaction's log into its :class:`Tally` (CONTRACT §1.2, exactly)."""
    outcome = 0
    outcome_at: int | None = None
    outcome_index = 0
    reversal_sent = False
    terminal_amount: int | None = None
    terminal_currency: int | None = None
    request_at: int | None = None
    debit_count = debit_sum = hold_sum = release_sum = 0
    reversal_count = reversal_sum = refund_count = refund_sum = 0
    money: list[tuple[int, int]] = []
    for index, (step, at, amount, currency, _code) in enumerate(RECORD.iter_unpack(txn.records)):
        if step > _TERMINAL_REVERSAL:  # issuer
            if step == _DEBIT:
                debit_count += 1
                debit_sum += amount
                money.append((amount, currency))
            elif step == _HOLD:
                hold_sum += amount
                money.append((amount, currency))
            elif step == _ISSUER_REVERSAL:
                reversal_count += 1
                reversal_sum += amount
            elif step == _REFUND:
                refund_count += 1
                refund_sum += amount
            elif step == _HOLD_RELEASE:
                release_sum += amount
        elif step == _REQUEST:
            # The earliest request's amount is the terminal's, unless an outcome says more.
            if request_at is None or at < request_at:
                request_at = at
                if outcome_at is None:
                    terminal_amount, terminal_currency = amount, currency
        elif step == _TERMINAL_REVERSAL:
            reversal_sent = True
            if terminal_amount is None:
                terminal_amount, terminal_currency = amount, currency
        elif (
            outcome_at is None
            or at > outcome_at
            or (at == outcome_at and _later_id(txn, index, outcome_index))
        ):  # an outcome: the latest by occurred_at counts, ties broken by event id
            outcome_at, outcome_index, outcome = at, index, step
            terminal_amount, terminal_currency = amount, currency
    # A reversal undoes the debit where there is one, otherwise the hold; never below 0.
    debited = debit_sum - refund_sum - reversal_sum
    if debited < 0:
        debited = 0
    if debit_count:
        net = debited
    else:
        net = hold_sum - release_sum - reversal_sum
        if net < 0:
            net = 0
    return Tally(
        outcome,
        reversal_sent,
        terminal_amount,
        terminal_currency,
        outcome == _APPROVED and not reversal_sent,
        net,
        debited,
        debit_count,
        debit_count - reversal_count - refund_count,
        reversal_count,
        refund_count,
        release_sum,
        money,
    )


def _later_id(txn: Txn, index: int, other: int) -> bool:
    """Tie-break of two outcomes at the same instant (rare: splits the ids only then)."""
    ids = txn.event_ids
    return ids[index] > ids[other]


# quiet(): record layout of models.transaction.RECORD ("<BqqH2s"): step at byte 0,
# amount at 9..17, currency at 17..19; amount and currency are compared as raw bytes.
_SIZE: Final = RECORD.size
_ZERO_AMOUNT: Final = bytes(8)
_NO_MONEY_NO_APPROVAL: Final = bytes([_DEBIT, _HOLD, _APPROVED])
_MATCHED_STEPS: Final = bytes([_REQUEST, _APPROVED, _AUTH_APPROVED, _AUTH_DECLINED, _DEBIT, _HOLD])


def quiet(txn: Txn) -> bool:
    """True when no kind can hold, decided with a few C-level bytes operations.

    Most transactions are matched sales or clean failures, and window close runs for
    every one of them, so the two shapes are recognised without unpacking the log:

    * *clean*: no debit, no hold and no approved outcome: the net position is 0 and
      the terminal did not complete the sale, so no condition of CONTRACT §2 holds;
    * *matched*: exactly one outcome, ``approved``, no terminal reversal, at most one
      debit, and every debit or hold (at least one) equal to the outcome in amount
      and currency, the amount not 0: completed, net > 0, nothing differs, no duplicate.
      A hold release is allowed once the debit is posted (the posting consumed the
      hold), which is how dual-message sales end: their clearing arrives hours later.

    False only means "look closer" (:func:`tally`). ``tests/models/test_verdicts.py``
    checks on random logs that ``quiet`` never says True where a kind holds.
    """
    records = txn.records
    steps = records[::_SIZE]
    if steps.translate(None, _NO_MONEY_NO_APPROVAL) == steps:
        return True  # none of debit, hold, approved: clean
    if steps.translate(None, _MATCHED_STEPS) or steps.count(_APPROVED) != 1:
        return False
    debits = steps.count(_DEBIT)
    if debits > 1 or (debits == 0 and _HOLD_RELEASE in steps):
        return False
    approved = steps.index(_APPROVED) * _SIZE
    shown = records[approved + 9 : approved + 19]
    if shown[:8] == _ZERO_AMOUNT:
        return False
    found_money = False
    for index, step in enumerate(steps):
        if step in (_DEBIT, _HOLD):
            start = index * _SIZE
            if records[start + 9 : start + 19] != shown:
                return False
            found_money = True
    return found_money


def amount_differs(t: Tally, config: DetectionConfig) -> bool:
    """A debit or hold differs from the terminal's amount (beyond tolerance) or currency."""
    shown = t.terminal_amount
    if shown is None:
        return False
    tolerance = config.amount_tolerance_minor
    if config.amount_tolerance_ratio:
        tolerance = max(tolerance, int(config.amount_tolerance_ratio * shown))
    currency = t.terminal_currency
    for amount, taken_in in t.money_amounts:
        if taken_in != currency or abs(amount - shown) > tolerance:
            return True
    return False


def holding(t: Tally, config: DetectionConfig) -> tuple[bool, bool, bool, bool, bool]:
    """Which kinds hold, in :data:`~models.alerts.TRANSACTION_KINDS` order (CONTRACT §2)."""
    net = t.net
    completed = t.completed
    reversal = t.terminal_reversal
    return (
        net > 0 and not completed and not reversal,  # unmatched_debit
        net > 0 and reversal,  # reversal_not_applied
        completed and net == 0,  # terminal_approved_no_debit
        completed and net > 0 and amount_differs(t, config),  # amount_mismatch
        t.live_debits >= 2,  # duplicate_debit
    )


@dataclasses.dataclass(slots=True)
class Facts:
    """A transaction's tally plus the details the scorer and the explanation need."""

    tally: Tally
    request_us: int | None = None
    request_amount: int | None = None
    outcome_us: int | None = None
    terminal_reversal_us: int | None = None
    issuer_events: int = 0
    authorization: Step | None = None
    authorization_response: str | None = None
    authorization_amount: tuple[int, int] | None = None
    first_money_us: int | None = None  # earliest authorization, hold or debit
    # (occurred_us, amount, currency) of the first debit / the first hold
    first_debit: tuple[int, int, int] | None = None
    first_hold: tuple[int, int, int] | None = None
    evidence: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    @property
    def outcome(self) -> Step | None:
        """The latest terminal outcome (by occurred_at), None if none reached us."""
        return Step(self.tally.outcome) if self.tally.outcome else None

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


def _earlier(candidate: int, current: int | None) -> bool:
    return current is None or candidate < current


def fold(txn: Txn) -> Facts:
    """Everything known about a transaction: its :func:`tally` and the details."""
    facts = Facts(tally(txn))
    latest_authorization: tuple[int, str] | None = None
    latest_outcome: tuple[int, str] | None = None
    for (step, at, amount, currency, code), event_id in zip(
        RECORD.iter_unpack(txn.records), txn.event_ids, strict=True
    ):
        facts.evidence.append((at, event_id))
        if step == _REQUEST:
            if _earlier(at, facts.request_us):
                facts.request_us, facts.request_amount = at, amount
        elif step < _TERMINAL_REVERSAL:
            if latest_outcome is None or (at, event_id) > latest_outcome:
                latest_outcome = (at, event_id)
                facts.outcome_us = at
        elif step == _TERMINAL_REVERSAL:
            if _earlier(at, facts.terminal_reversal_us):
                facts.terminal_reversal_us = at
        else:
            facts.issuer_events += 1
            if step in (_AUTH_APPROVED, _AUTH_DECLINED, _DEBIT, _HOLD) and _earlier(
                at, facts.first_money_us
            ):
                facts.first_money_us = at
            if step == _DEBIT:
                if facts.first_debit is None or at < facts.first_debit[0]:
                    facts.first_debit = (at, amount, currency)
            elif step == _HOLD:
                if facts.first_hold is None or at < facts.first_hold[0]:
                    facts.first_hold = (at, amount, currency)
            elif step in (_AUTH_APPROVED, _AUTH_DECLINED) and (
                latest_authorization is None or (at, event_id) > latest_authorization
            ):
                latest_authorization = (at, event_id)
                facts.authorization = Step(step)
                facts.authorization_amount = (amount, currency)
                facts.authorization_response = (
                    None if code == NO_RESPONSE_CODE else code.decode("ascii", "replace")
                )
    return facts


def resolution(kind: Kind, t: Tally) -> str:
    """Why a firing alert of ``kind`` no longer holds (the ``resolution`` field)."""
    if kind is Kind.UNMATCHED_DEBIT:
        if t.net == 0:
            return _money_returned(t)
        if t.terminal_reversal:
            return "terminal_reversal_sent"
        return "terminal_completed"
    if kind is Kind.REVERSAL_NOT_APPLIED:
        return _money_returned(t)
    if kind is Kind.TERMINAL_APPROVED_NO_DEBIT:
        return "issuer_money_arrived" if t.net > 0 else "terminal_not_completed"
    if kind is Kind.AMOUNT_MISMATCH:
        if not t.completed:
            return "terminal_not_completed"
        return _money_returned(t) if t.net == 0 else "amounts_agree"
    return "duplicate_reversed" if t.reversal_count else "duplicate_refunded"


def _money_returned(t: Tally) -> str:
    if t.reversal_count:
        return "reversed_by_issuer"
    if t.refund_count:
        return "refunded"
    if t.hold_release_sum:
        return "hold_released"
    return "money_returned"
