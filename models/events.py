"""The input events of CONTRACT §1, as typed msgspec structs.

One struct per ``type`` of each source, decoded as a tagged union on the ``type``
field, so a message is parsed and type-checked in one C pass with no coercion: ``"100"``
is not an amount, ``1`` is not a bool, a time without an offset is not an instant.
The checks msgspec cannot express (currency codes, the ``transmitted_at`` rule, PANs,
the size limit) live in :mod:`models.validation`.

Unknown extra fields are accepted and ignored (CONTRACT §1): they stay in the input
topic / capture, the core never needs them.

Each struct knows its :class:`Step`, the small integer the core stores per event; the
step folds in the terminal ``outcome`` and the issuer ``approved`` flag so the core's
state never has to keep the strings.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, ClassVar, Literal

import msgspec

Source = Literal["terminal", "issuer"]
SOURCES: tuple[Source, Source] = ("terminal", "issuer")

TERMINAL_TOPIC = "pos.terminal.events"
ISSUER_TOPIC = "bank.issuer.events"

# JSON-safe integer ceiling: amounts above it do not survive a JavaScript consumer or a
# float64 column downstream, and no card sale comes near it.
MAX_AMOUNT_MINOR = 2**53 - 1

EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
TerminalId = Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
MerchantId = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
# Six characters here; "all ASCII digits" is checked in models.validation, because a
# msgspec ``pattern`` runs Python's ``re`` per event and costs more than the whole rest
# of the decode (measured: 1.3 us of 2.8 us).
Stan = Annotated[str, msgspec.Meta(min_length=6, max_length=6)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
AmountMinor = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT_MINOR)]
CardToken = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ResponseCode = Annotated[str, msgspec.Meta(min_length=2, max_length=2)]
Outcome = Literal["approved", "declined", "timeout", "error", "cancelled"]
OUTCOMES: tuple[Outcome, ...] = ("approved", "declined", "timeout", "error", "cancelled")


class Step(enum.IntEnum):
    """What one event did, as the core records it (stable values: they are persisted)."""

    REQUEST = 1
    APPROVED = 2
    DECLINED = 3
    TIMEOUT = 4
    ERROR = 5
    CANCELLED = 6
    TERMINAL_REVERSAL = 7
    AUTH_APPROVED = 8
    AUTH_DECLINED = 9
    HOLD = 10
    HOLD_RELEASE = 11
    DEBIT = 12
    ISSUER_REVERSAL = 13
    REFUND = 14


OUTCOME_STEP: dict[str, Step] = {
    "approved": Step.APPROVED,
    "declined": Step.DECLINED,
    "timeout": Step.TIMEOUT,
    "error": Step.ERROR,
    "cancelled": Step.CANCELLED,
}
STEP_OUTCOME: dict[Step, str] = {step: name for name, step in OUTCOME_STEP.items()}


class Watermark(msgspec.Struct, tag_field="type", tag="watermark", gc=False):
    """CONTRACT §1.3: the sender has sent everything up to ``occurred_at``."""

    event_id: EventId
    occurred_at: Instant


class TransactionEvent(msgspec.Struct, tag_field="type", kw_only=True, gc=False):
    """The fields every transaction event of both sources carries (CONTRACT §1)."""

    event_id: EventId
    terminal_id: TerminalId
    merchant_id: MerchantId
    stan: Stan
    transmitted_at: Instant
    occurred_at: Instant
    amount_minor: AmountMinor
    currency: str
    card_token: CardToken
    rrn: str | None = None
    auth_code: str | None = None
    response_code: ResponseCode | None = None

    step_value: ClassVar[Step]

    def step(self) -> Step:
        return self.step_value


class TerminalRequest(TransactionEvent, tag="request"):
    step_value = Step.REQUEST


class TerminalOutcome(TransactionEvent, tag="outcome"):
    outcome: Outcome
    reason: str | None = None

    def step(self) -> Step:
        return OUTCOME_STEP[self.outcome]


class TerminalReversal(TransactionEvent, tag="reversal"):
    reason: str | None = None
    step_value = Step.TERMINAL_REVERSAL


class IssuerAuthorization(TransactionEvent, tag="authorization"):
    approved: bool

    def step(self) -> Step:
        return Step.AUTH_APPROVED if self.approved else Step.AUTH_DECLINED


class IssuerHold(TransactionEvent, tag="hold"):
    step_value = Step.HOLD


class IssuerHoldRelease(TransactionEvent, tag="hold_release"):
    step_value = Step.HOLD_RELEASE


class IssuerDebit(TransactionEvent, tag="debit"):
    step_value = Step.DEBIT


class IssuerReversal(TransactionEvent, tag="reversal"):
    step_value = Step.ISSUER_REVERSAL


class IssuerRefund(TransactionEvent, tag="refund"):
    step_value = Step.REFUND


TerminalEvent = TerminalRequest | TerminalOutcome | TerminalReversal | Watermark
IssuerEvent = (
    IssuerAuthorization
    | IssuerHold
    | IssuerHoldRelease
    | IssuerDebit
    | IssuerReversal
    | IssuerRefund
    | Watermark
)
InputEvent = TerminalEvent | IssuerEvent
