"""``GET /transactions/{terminal_id}/{stan}/{transmitted_at}``: one transaction, explained.

Built from the transaction's state in its join partition (a :class:`~models.transaction.Txn`:
the packed log of what each side said) and the alert index (the published verdicts with
their explanation). Pure: the route finds the ``Txn`` and the index entry, this module
says what they mean, in the shape docs/openapi.yaml names ``Transaction``.

* ``timeline``: every event in event-time order (ties: arrival order), one row each, in
  a ``terminal`` or an ``issuer`` column, so the two sides read side by side;
* ``state``: the net position and each side's story as the verdicts see them
  (:func:`models.verdicts.fold`, CONTRACT §1.2), and which kinds hold on the log now;
* ``verdicts``: the alerts of the transaction (kind, status from the state, explanation,
  probable cause, severity, deadline from the published record);
* ``why``: the explanations a support agent reads out, or why there is no alert.

The path's ``transmitted_at`` is any RFC 3339 spelling of the instant; the key uses its
UTC epoch second, floored, as the ingest does (``streams/worker/ingest.py``):

>>> transaction_key_of("T-0042", "000123", "2026-11-27T17:15:02.900+08:00")
'T-0042/000123/1795770902'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from models import currencies
from models.alerts import TRANSACTION_KINDS, Alert, alert_id
from models.config import DetectionConfig
from models.events import STEP_OUTCOME, Step
from models.instants import MICROS, format_micros, format_second
from models.stream_time import FOREVER, NEVER
from models.transaction import (
    NO_RESPONSE_CODE,
    OVERDUE,
    RECORD,
    RESOLVED,
    Txn,
    split_key,
    transaction_key,
)
from models.verdicts import fold, holding
from streams.api.queries import QueryError, parse_instant

MAX_TERMINAL_ID: Final = 16

# What each recorded step was, as the input contract names it (CONTRACT §1.1, §1.2).
_EVENT_TYPE: Final[dict[Step, tuple[str, str]]] = {
    Step.REQUEST: ("terminal", "request"),
    Step.APPROVED: ("terminal", "outcome"),
    Step.DECLINED: ("terminal", "outcome"),
    Step.TIMEOUT: ("terminal", "outcome"),
    Step.ERROR: ("terminal", "outcome"),
    Step.CANCELLED: ("terminal", "outcome"),
    Step.TERMINAL_REVERSAL: ("terminal", "reversal"),
    Step.AUTH_APPROVED: ("issuer", "authorization"),
    Step.AUTH_DECLINED: ("issuer", "authorization"),
    Step.HOLD: ("issuer", "hold"),
    Step.HOLD_RELEASE: ("issuer", "hold_release"),
    Step.DEBIT: ("issuer", "debit"),
    Step.ISSUER_REVERSAL: ("issuer", "reversal"),
    Step.REFUND: ("issuer", "refund"),
}


class TimelineEvent(msgspec.Struct, kw_only=True):
    """One event as its source sent it (amounts in minor units of ``currency``)."""

    event_id: str
    type: str
    outcome: str | None = None  # terminal outcome events
    approved: bool | None = None  # issuer authorization events
    amount_minor: int
    currency: str | None
    response_code: str | None = None


class TimelineRow(msgspec.Struct, kw_only=True):
    """One row: when, and the event in its side's column (the other column is null)."""

    at: str
    source: str
    terminal: TimelineEvent | None
    issuer: TimelineEvent | None


class Verdict(msgspec.Struct, kw_only=True):
    """One alert of the transaction: its status now, and the published record's words.

    ``status`` and ``detected_at`` come from the owner's state (always current); the rest
    from the last published record, null if this worker has not read it yet.
    """

    alert_id: str
    kind: str
    status: str
    deadline_passed: bool
    detected_at: str
    resolved_at: str | None
    resolution: str | None
    explanation: str | None
    probable_cause: str | None
    severity: str | None
    score: float | None
    at_risk_minor: int | None
    deadline: str | None
    href: str


class TransactionState(msgspec.Struct, kw_only=True):
    """What the log adds up to (CONTRACT §1.2) and where the window stands."""

    window_closes_at: str
    judged: bool  # the window-close verdict was made
    stream_time: str | None  # the partition's stream time (null before both feeds spoke)
    terminal_outcome: str | None  # the latest outcome, "reversed" after a terminal reversal
    terminal_completed: bool
    terminal_reversal_sent: bool
    terminal_amount_minor: int | None
    terminal_currency: str | None
    issuer_amount_minor: int | None
    issuer_currency: str | None
    net_position_minor: int
    debits: int
    holding: list[str]  # kinds whose condition holds on the log now


class Transaction(msgspec.Struct, kw_only=True):
    """The answer of ``GET /transactions/...`` (docs/openapi.yaml ``Transaction``)."""

    key: str
    terminal_id: str
    stan: str
    transmitted_at: str
    merchant_id: str
    card_token: str
    partition: int
    served_by: str
    state: TransactionState
    timeline: list[TimelineRow]
    verdicts: list[Verdict]
    why: str


def transaction_key_of(terminal_id: str, stan: str, transmitted_at: str) -> str:
    """The transaction key of a path; QueryError (a 400) naming the bad segment."""
    if not 1 <= len(terminal_id) <= MAX_TERMINAL_ID:
        raise QueryError(
            f"invalid terminal_id: must be 1 to {MAX_TERMINAL_ID} characters", "terminal_id"
        )
    if len(stan) != 6 or not (stan.isascii() and stan.isdigit()):
        raise QueryError(f"invalid stan {stan!r}: must be 6 digits", "stan")
    micros = parse_instant(transmitted_at, "transmitted_at")
    return transaction_key(terminal_id, stan, micros // MICROS)


def describe(
    txn: Txn,
    *,
    partition: int,
    config: DetectionConfig,
    stream_time_us: int,
    published: Callable[[str], Alert | None],
    served_by: str,
) -> Transaction:
    """The :class:`Transaction` view of ``txn``; ``published(alert_id)`` finds a record."""
    terminal_id, stan, second = split_key(txn.key)
    facts = fold(txn)
    tally = facts.tally
    close_us = second * MICROS + round((config.match_window + config.grace) * MICROS)
    issuer = facts.issuer_amount
    holds = holding(tally, config)
    verdicts = _verdicts(txn, terminal_id, stan, second, published)
    state = TransactionState(
        window_closes_at=format_micros(close_us),
        judged=txn.judged,
        stream_time=None if stream_time_us in (NEVER, FOREVER) else format_micros(stream_time_us),
        terminal_outcome=(
            "reversed"
            if tally.terminal_reversal
            else (None if facts.outcome is None else STEP_OUTCOME[facts.outcome])
        ),
        terminal_completed=tally.completed,
        terminal_reversal_sent=tally.terminal_reversal,
        terminal_amount_minor=tally.terminal_amount,
        terminal_currency=currencies.alpha_of(tally.terminal_currency),
        issuer_amount_minor=None if issuer is None else issuer[0],
        issuer_currency=None if issuer is None else currencies.alpha_of(issuer[1]),
        net_position_minor=tally.net,
        debits=tally.debit_count,
        holding=[kind.value for kind, now in zip(TRANSACTION_KINDS, holds, strict=True) if now],
    )
    return Transaction(
        key=txn.key,
        terminal_id=terminal_id,
        stan=stan,
        transmitted_at=format_second(second),
        merchant_id=txn.merchant_id,
        card_token=txn.card_token,
        partition=partition,
        served_by=served_by,
        state=state,
        timeline=timeline(txn),
        verdicts=verdicts,
        why=_why(state, verdicts),
    )


def timeline(txn: Txn) -> list[TimelineRow]:
    """The events in event-time order, each in its side's column."""
    rows: list[tuple[int, int, TimelineRow]] = []
    records = RECORD.iter_unpack(txn.records)
    for index, ((step_value, at, amount, currency, code), event_id) in enumerate(
        zip(records, txn.event_ids, strict=True)
    ):
        step = Step(step_value)
        source, kind = _EVENT_TYPE[step]
        event = TimelineEvent(
            event_id=event_id,
            type=kind,
            outcome=STEP_OUTCOME.get(step),
            approved=(
                None
                if step not in (Step.AUTH_APPROVED, Step.AUTH_DECLINED)
                else step is Step.AUTH_APPROVED
            ),
            amount_minor=amount,
            currency=currencies.alpha_of(currency),
            response_code=None if code == NO_RESPONSE_CODE else code.decode("ascii", "replace"),
        )
        row = TimelineRow(
            at=format_micros(at),
            source=source,
            terminal=event if source == "terminal" else None,
            issuer=event if source == "issuer" else None,
        )
        rows.append((at, index, row))
    rows.sort(key=lambda item: (item[0], item[1]))
    return [row for _at, _index, row in rows]


def _verdicts(
    txn: Txn,
    terminal_id: str,
    stan: str,
    second: int,
    published: Callable[[str], Alert | None],
) -> list[Verdict]:
    found: list[Verdict] = []
    alerts = txn.alerts or {}
    for kind in TRANSACTION_KINDS:
        if kind.value not in alerts:
            continue
        status, detected_us = alerts[kind.value]
        identifier = alert_id(terminal_id, stan, second, kind.value)
        record = published(identifier)
        found.append(
            Verdict(
                alert_id=identifier,
                kind=kind.value,
                status="resolved" if status == RESOLVED else "firing",
                deadline_passed=status == OVERDUE,
                detected_at=format_micros(detected_us),
                resolved_at=None if record is None else record.resolved_at,
                resolution=None if record is None else record.resolution,
                explanation=None if record is None else record.explanation,
                probable_cause=None if record is None else record.probable_cause.value,
                severity=None if record is None else record.severity.value,
                score=None if record is None else record.score,
                at_risk_minor=None if record is None else record.at_risk_minor,
                deadline=None if record is None else record.deadline,
                href=f"/alerts/{identifier}",
            )
        )
    return found


def _why(state: TransactionState, verdicts: list[Verdict]) -> str:
    """The explanations of the alerts, or one sentence on why there is none (yet)."""
    said = [v.explanation for v in verdicts if v.status == "firing" and v.explanation]
    if said:
        return " ".join(said)
    if verdicts:
        resolved = [v for v in verdicts if v.status == "resolved"]
        if resolved and len(resolved) == len(verdicts):
            reasons = ", ".join(sorted({v.resolution or "unknown" for v in resolved}))
            return f"Every alert of this transaction is resolved ({reasons})."
        return "An alert is firing; its published record has not been read by this worker yet."
    if not state.judged:
        return (
            f"No verdict yet: the transaction's window closes at {state.window_closes_at} "
            "(stream time), when both feeds have moved past it."
        )
    if state.terminal_completed and state.net_position_minor > 0:
        return "Matched: the terminal completed the sale and the bank took the same amount."
    if not state.terminal_completed and state.net_position_minor == 0:
        return "Clean: the sale did not complete and no money was taken or held."
    return "No alert: no kind's condition held when the window closed."
