"""The reconciliation core: events in arrival order in, alert state changes out.

One :class:`Reconciler` is one partition of the join. It keeps per-transaction state
(:mod:`models.transaction`), advances stream time (:mod:`models.stream_time`), closes
windows in time order and publishes alert state changes to :attr:`Reconciler.outbox`.
It never reads the wall clock and never touches Kafka or Faust: the offline replay and
the stream workers feed it the same way, so they reach the same verdicts.

The life of a transaction, with the defaults (window 300 s, grace 60 s, retention 7 d)::

    09:15:02  first event for key T-1/000123/09:15:02   -> state created, due to close
                                                           at 09:21:02
    09:15:40  more events (either side, any order)       -> appended to its log
    stream time passes 09:21:02                          -> verdict: each kind that holds
                                                           fires; the state is kept for
                                                           late events
    11:40:00  a late refund                              -> applied, re-judged at once:
                                                           a firing alert that no longer
                                                           holds is published "resolved"
    stream time passes 09:21:02 + 7 d                    -> state dropped; an event for
                                                           the key now is ``too_late``

A debit reversed inside the window never raises anything: nothing is judged before
the window closes (CONTRACT §3).
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections.abc import MutableMapping
from typing import Final

from models import currencies
from models.alerts import TRANSACTION_KINDS, Alert, Kind, Status, alert_id
from models.config import DetectionConfig
from models.deadlines import DeadlineConfig, DeadlinePolicy
from models.events import (
    STEP_OUTCOME,
    InputEvent,
    Source,
    TransactionEvent,
    Watermark,
)
from models.incidents import IncidentTracker
from models.instants import MICROS, format_micros, format_second, to_micros
from models.scorer import score
from models.stream_time import FOREVER, DueQueue, Progress
from models.transaction import (
    FIRING,
    FOLLOWUP_NONE,
    FOLLOWUP_OTHER_CARD,
    FOLLOWUP_SAME_CARD,
    FOLLOWUP_UNKNOWN,
    ISSUER_TAG,
    MAX_EVENTS,
    OVERDUE,
    RESOLVED,
    TERMINAL_TAG,
    Txn,
    split_key,
    transaction_key,
)
from models.verdicts import Facts, fold, holding, quiet, resolution, tally

_NUMERIC: Final = {alpha: c.numeric for alpha, c in currencies.CURRENCIES.items()}
_PRUNE_EVERY: Final = 16


class Applied(enum.IntEnum):
    """What :meth:`Reconciler.apply` did with an event."""

    ACCEPTED = 0
    LATE = 1  # accepted after its window closed, and judged again at once
    DUPLICATE = 2  # redelivery: same event_id already in the transaction's log
    TOO_LATE = 3  # the transaction's retention has passed: goes to the DLQ
    WATERMARK = 4
    TOO_MANY = 5  # the transaction already holds MAX_EVENTS events: goes to the DLQ


# Enum attribute lookups cost ~190 ns each on CPython 3.11; the per-event path uses these.
_ACCEPTED: Final = Applied.ACCEPTED
_LATE: Final = Applied.LATE
_DUPLICATE: Final = Applied.DUPLICATE
_TOO_LATE: Final = Applied.TOO_LATE
_WATERMARK: Final = Applied.WATERMARK
_TOO_MANY: Final = Applied.TOO_MANY


@dataclasses.dataclass(slots=True)
class Stats:
    """Counters for the summary and the metrics; never part of a verdict."""

    events: int = 0
    watermarks: int = 0
    duplicates: int = 0
    late: int = 0
    too_late: int = 0
    too_many: int = 0
    windows_closed: int = 0
    expired: int = 0
    fired: dict[str, int] = dataclasses.field(default_factory=dict)
    resolved: dict[str, int] = dataclasses.field(default_factory=dict)


class Reconciler:
    """Per-transaction join of terminal and issuer events, judged at window close.

    ``store`` maps transaction keys to :class:`Txn`, a plain dict by default; with
    ``progress``, it is what a restart restores (:meth:`Txn.to_bytes` per key, and the
    two progresses). Everything else is rebuilt from them.
    """

    def __init__(
        self,
        config: DetectionConfig | None = None,
        *,
        store: MutableMapping[str, Txn] | None = None,
        progress: Progress | None = None,
        touched: set[str] | None = None,
        incidents: IncidentTracker | None = None,
        deadlines: DeadlineConfig | None = None,
    ) -> None:
        self.config = config or DetectionConfig()
        # Regulatory deadlines per region (RBI's T+5 for INR by default): a firing alert
        # still firing when stream time passes its deadline is published again, escalated.
        self.deadlines = deadlines or DeadlineConfig()
        self.store: MutableMapping[str, Txn] = {} if store is None else store
        self.progress = progress or Progress()
        self.outbox: list[Alert] = []
        # Keys whose state changed since the caller last emptied this set: a write-behind
        # store (the stream workers' changelogged table) writes exactly these, once per
        # batch; judgements made while restoring included. None (the default) keeps no
        # record: the replay needs none.
        self.touched: set[str] | None = touched
        self.stats = Stats()
        # Fleet-level incidents (models/incidents.py); None: not scored.
        self.incidents = incidents
        self._window_us = round((self.config.match_window + self.config.grace) * MICROS)
        self._retention_us = round(self.config.retention * MICROS)
        self._followup_us = round(self.config.paid_again_window * MICROS)
        self._closing = DueQueue()
        self._expiring = DueQueue()
        # Entries "<key>\0<kind>": firing alerts waiting for their deadline.
        self._overdue = DueQueue()
        # terminal_id -> keys of its recent transactions, for the "paid again" lookup.
        self._recent: dict[str, list[str]] = {}
        self._recent_horizon_s = (self._window_us + self._followup_us) // MICROS
        if self.store:
            self._rebuild_schedules()

    # ------------------------------------------------------------------ input

    @property
    def stream_time(self) -> int:
        return self.progress.stream_time

    def next_due(self) -> int | None:
        """The earliest stream time at which a window closes or a state expires (None:
        nothing scheduled). Stream time must pass it for anything to happen."""
        candidates = [
            self._closing.earliest(),
            self._expiring.earliest(),
            self._overdue.earliest(),
        ]
        if self.incidents is not None:
            candidates.append(self.incidents.next_due())
        dues = [due for due in candidates if due is not None]
        return min(dues) if dues else None

    @property
    def oldest_open_us(self) -> int | None:
        """The sale time of the oldest transaction whose window is still open."""
        earliest = self._closing.earliest()
        return None if earliest is None else earliest - self._window_us

    @property
    def open_transactions(self) -> int:
        """Transactions whose window has not closed yet."""
        return len(self._closing)

    def apply(self, source: Source, event: InputEvent) -> Applied:
        """Take one valid event of ``source`` in arrival order."""
        if type(event) is Watermark:
            return self.apply_watermark(source, to_micros(event.occurred_at))
        assert isinstance(event, TransactionEvent)
        occurred, transmitted = to_micros(event.occurred_at), to_micros(event.transmitted_at)
        return self.apply_valid(source, event, occurred, transmitted // MICROS)

    def apply_watermark(self, source: Source, at_us: int, lane: int = 0) -> Applied:
        """CONTRACT §1.3: ``source`` has sent everything up to ``at_us`` (on input
        partition ``lane``, :class:`~models.stream_time.Progress`)."""
        self.stats.watermarks += 1
        self._advance(source, at_us, lane)
        return _WATERMARK

    def apply_valid(
        self, source: Source, event: TransactionEvent, occurred: int, second: int, lane: int = 0
    ) -> Applied:
        """:meth:`apply` for a validated transaction event whose instants are known.

        ``occurred`` is ``occurred_at`` in microseconds, ``second`` the key's second
        (``transmitted_at`` in whole seconds), ``lane`` the input partition it was read
        from (:class:`~models.stream_time.Progress`; 0 in the replay). This is the
        per-event path (hundreds of thousands a second), hence the locals and the
        inlined checks; everything slow happens at window close.
        """
        stats = self.stats
        stats.events += 1
        key = transaction_key(event.terminal_id, event.stan, second)
        progress = self.progress
        now = progress.terminal if progress.terminal < progress.issuer else progress.issuer
        close_at = second * MICROS + self._window_us
        txn = self.store.get(key)
        if txn is None:
            if close_at + self._retention_us < now:
                stats.too_late += 1
                self._advance(source, occurred, lane)
                return _TOO_LATE
            txn = Txn(key, sys.intern(event.merchant_id), event.card_token)
            self.store[key] = txn
            if close_at >= now:
                self._closing.add(close_at, key)
            else:
                self._expiring.add(close_at + self._retention_us, key)
            self._remember(event.terminal_id, key, second)
        elif txn.has_event(TERMINAL_TAG if source == "terminal" else ISSUER_TAG, event.event_id):
            stats.duplicates += 1
            self._advance(source, occurred, lane)
            return _DUPLICATE
        elif txn.event_count >= MAX_EVENTS:
            stats.too_many += 1
            self._advance(source, occurred, lane)
            return _TOO_MANY
        first_terminal = source == "terminal" and not txn.from_terminal
        if first_terminal:
            txn.merchant_id = sys.intern(event.merchant_id)
            txn.card_token = event.card_token
            txn.from_terminal = True
        step = event.step()
        if self.incidents is not None:
            self.incidents.observe(
                event.terminal_id,
                txn.merchant_id,
                second,
                step,
                occurred,
                txn.records,
                first_terminal,
            )
        txn.append(
            step,
            occurred,
            event.amount_minor,
            _NUMERIC[event.currency],
            event.response_code,
            event.event_id,
        )
        applied = _ACCEPTED
        if self.touched is not None:
            self.touched.add(key)
        if close_at < now:
            # Late: the window has closed, so the verdict is revisited now.
            stats.late += 1
            self._judge(txn, close_at, now)
            applied = _LATE
        self._advance(source, occurred, lane)
        return applied

    def advance(self, source: Source, to_us: int, lane: int | None = None) -> None:
        """Move ``lane`` of ``source`` (every lane: None) to at least ``to_us`` (idle
        advance, shells)."""
        if lane is not None:
            self._advance(source, to_us, lane)
            return
        lanes = self.progress.lanes[source]
        for index, at in lanes.items():
            if at < to_us:
                lanes[index] = to_us
        self._move(source, min(lanes.values()) if lanes else to_us)

    def finish(self) -> None:
        """End of a capture (CONTRACT §4): both progresses to infinity, every window closes."""
        self.advance("terminal", FOREVER)
        self.advance("issuer", FOREVER)

    def take_alerts(self) -> list[Alert]:
        """Hand over the alerts published since the last call (incidents included)."""
        out, self.outbox = self.outbox, []
        if self.incidents is not None and self.incidents.outbox:
            out.extend(self.incidents.take_alerts())
        return out

    # ------------------------------------------------------------- internals

    def _advance(self, source: Source, at: int, lane: int) -> None:
        """Move ``lane`` of ``source`` to ``at``, and the source to its smallest lane.

        A lane heard for the first time starts at ``at``: if that is behind the source's
        progress, the source waits for the lane to catch up (it never moves back)."""
        lanes = self.progress.lanes[source]
        current = lanes.get(lane)
        if current is not None and at <= current:
            return
        lanes[lane] = at
        if len(lanes) > 1:
            at = min(lanes.values())
        self._move(source, at)

    def _move(self, source: Source, at: int) -> None:
        """Move ``source``'s progress to ``at``; close what the new stream time passes.

        Stream time is the smaller progress, so it only moves when the source that moved
        was the one behind (or level): then it becomes min(at, other).
        """
        progress = self.progress
        if source == "terminal":
            before, other = progress.terminal, progress.issuer
            if at <= before:
                return
            progress.terminal = at
        else:
            before, other = progress.issuer, progress.terminal
            if at <= before:
                return
            progress.issuer = at
        if before < other:
            now = at if at < other else other
            self._close_passed(now)
            if self.incidents is not None:
                self.incidents.advance(now)

    def _close_passed(self, now: int) -> None:
        closing, expiring = self._closing, self._expiring
        if closing.next_due_before(now):
            store = self.store
            for due, key in closing.pop_passed(now):
                txn = store.get(key)
                if txn is None:
                    continue
                self.stats.windows_closed += 1
                self._judge(txn, due, now)
                expiring.add(due + self._retention_us, key)
        # The end of a capture (FOREVER) closes windows but passes no deadline: the
        # input ended, no time went by (docs/alerts.md).
        if now != FOREVER and self._overdue.next_due_before(now):
            for due, entry in self._overdue.pop_passed(now):
                key, kind = entry.split("\0")
                txn = self.store.get(key)
                if txn is not None and txn.alert_status(kind) == FIRING:
                    self._escalate(txn, Kind(kind), due)
        if expiring.next_due_before(now):
            store = self.store
            for _due, key in expiring.pop_passed(now):
                if store.pop(key, None) is not None:
                    self.stats.expired += 1
                    if self.touched is not None:
                        self.touched.add(key)

    def _remember(self, terminal_id: str, key: str, second: int) -> None:
        """Index the transaction under its terminal, for the paid-again lookup.

        A terminal keeps the keys sent within ``match_window + grace + paid_again_window``
        of its newest one: every sale that can still be asked about (a few more until
        the next prune, every ``_PRUNE_EVERY`` sales). Pruning measures against the
        terminal's own newest key, never against stream time, which may stand still for
        hours while a feed is down.
        """
        recent = self._recent.get(terminal_id)
        if recent is None:
            self._recent[terminal_id] = [key]
            return
        recent.append(key)
        if len(recent) % _PRUNE_EVERY == 0:
            horizon = second - self._recent_horizon_s
            while split_key(recent[0])[2] < horizon:
                del recent[0]

    def _followup(self, txn: Txn, facts: Facts) -> int:
        """Did the cardholder pay again at this terminal soon after? (scorer input)

        Looked up once, when the first alert of the transaction fires, and kept in the
        state: the later sale's events are in by then, because the window (300 s +
        60 s grace) outlasts ``paid_again_window`` (300 s).
        """
        terminal_id, _stan, second = split_key(txn.key)
        latest = second + self._followup_us // MICROS
        same_card = other_card = False
        for key in self._recent.get(terminal_id, ()):
            if key == txn.key or not second < split_key(key)[2] <= latest:
                continue
            other = self.store.get(key)
            if other is None:
                continue
            later = tally(other)
            if not later.completed:
                continue
            if other.card_token == txn.card_token:
                same_card = True
            elif (later.terminal_amount, later.terminal_currency) == (
                facts.tally.terminal_amount,
                facts.tally.terminal_currency,
            ):
                other_card = True
        if other_card:
            return FOLLOWUP_OTHER_CARD
        return FOLLOWUP_SAME_CARD if same_card else FOLLOWUP_NONE

    def _judge(self, txn: Txn, close_at: int, now: int) -> None:
        """Judge every kind for ``txn`` at stream time ``now``; publish what changed.

        ``now`` is the stream time of the verdict: the alert's ``detected_at`` (or
        ``resolved_at``), CONTRACT §2.
        """
        txn.judged = True
        detected_us = now
        # A quiet verdict changes nothing but ``judged``, which a restore re-derives
        # (judging is idempotent), so it is not worth a state write: not ``touched``.
        if txn.alerts is None and quiet(txn):
            return  # the common case: a matched or clean sale, nothing to say
        counts = tally(txn)
        holds = holding(counts, self.config)
        if txn.alerts is None and not any(holds):
            return  # the common case: a matched or clean sale, nothing to say
        if self.touched is not None:
            self.touched.add(txn.key)
        facts: Facts | None = None
        for kind, holds_now in zip(TRANSACTION_KINDS, holds, strict=True):
            status = txn.alert_status(kind)
            if holds_now == (status in (FIRING, OVERDUE)):
                continue
            if facts is None:
                facts = fold(txn)
            if holds_now:
                if txn.followup == FOLLOWUP_UNKNOWN:
                    txn.followup = self._followup(txn, facts)
                if txn.alerts is None:
                    txn.alerts = {}
                txn.alerts[kind] = (FIRING, detected_us)
                self._publish(txn, kind, facts, Status.FIRING, close_at, detected_us)
                self._schedule_deadline(txn, kind, now, facts)
            else:
                assert txn.alerts is not None
                first_detected = txn.alerts[kind][1]
                txn.alerts[kind] = (RESOLVED, first_detected)
                self._publish(
                    txn,
                    kind,
                    facts,
                    Status.RESOLVED,
                    close_at,
                    first_detected,
                    resolved_us=detected_us,
                )

    def _publish(
        self,
        txn: Txn,
        kind: Kind,
        facts: Facts,
        status: Status,
        close_at: int,
        detected_us: int,
        resolved_us: int | None = None,
        overdue_at: int | None = None,
    ) -> None:
        """Publish one alert state; ``overdue_at``: the escalation at the deadline."""
        terminal_id, stan, second = split_key(txn.key)
        followup = txn.followup if txn.followup != FOLLOWUP_UNKNOWN else FOLLOWUP_NONE
        issuer = facts.issuer_amount
        currency = alert_currency(facts)
        policy, deadline = self._deadline(kind, currency, second)
        # Scored at the window close (a verdict made later, at a far-future watermark,
        # is not older for it), or at the deadline when escalating.
        scored_at = overdue_at if overdue_at is not None else min(detected_us, close_at)
        scored = score(
            kind,
            facts,
            followup,
            second * MICROS,
            self.config,
            now_us=scored_at,
            deadline=deadline,
            policy=policy,
            incident_score=(
                self.incidents.score_of(terminal_id, txn.merchant_id)
                if self.incidents is not None
                else 0.0
            ),
        )
        counter = self.stats.fired if status is Status.FIRING else self.stats.resolved
        counter[kind] = counter.get(kind, 0) + 1
        self.outbox.append(
            Alert(
                alert_id=alert_id(terminal_id, stan, second, kind),
                kind=kind,
                status=status,
                terminal_id=terminal_id,
                merchant_id=txn.merchant_id,
                stan=stan,
                transmitted_at=format_second(second),
                card_token=txn.card_token,
                currency=currencies.alpha_of(currency),
                terminal_amount_minor=facts.tally.terminal_amount,
                issuer_amount_minor=issuer[0] if issuer else None,
                at_risk_minor=scored.at_risk_minor,
                evidence=facts.evidence_ids(),
                detected_at=format_micros(detected_us),
                explanation=scored.explanation,
                probable_cause=scored.probable_cause,
                severity=scored.severity,
                score=scored.score,
                resolved_at=None if resolved_us is None else format_micros(resolved_us),
                resolution=None if resolved_us is None else resolution(kind, facts.tally),
                issuer_currency=currencies.alpha_of(issuer[1]) if issuer else None,
                terminal_outcome=_outcome_word(facts),
                net_position_minor=facts.tally.net,
                paid_again=scored.paid_again,
                window_closed_at=format_micros(close_at),
                deadline=None if deadline is None else format_micros(deadline),
                deadline_passed=scored.deadline_passed,
                compensation_minor=scored.compensation_minor,
                compensation_currency=scored.compensation_currency,
            )
        )

    def _deadline(
        self, kind: Kind, currency: int | None, second: int
    ) -> tuple[DeadlinePolicy, int | None]:
        return self.deadlines.due(kind, currencies.alpha_of(currency), second * MICROS)

    def _schedule_deadline(self, txn: Txn, kind: Kind, now: int, facts: Facts) -> None:
        """Watch a newly firing alert's deadline (if its policy sets one)."""
        _terminal, _stan, second = split_key(txn.key)
        _policy, deadline = self._deadline(kind, alert_currency(facts), second)
        if deadline is None:
            return
        if deadline < now and now != FOREVER:
            self._escalate(txn, kind, deadline)
        else:
            self._overdue.add(deadline, f"{txn.key}\0{kind}")

    def _escalate(self, txn: Txn, kind: Kind, deadline: int) -> None:
        """The deadline passed with the alert still firing: publish it again, escalated
        (same alert_id, status firing, ``deadline_passed``), once."""
        assert txn.alerts is not None
        detected_us = txn.alerts[kind][1]
        txn.alerts[kind] = (OVERDUE, detected_us)
        if self.touched is not None:
            self.touched.add(txn.key)
        _terminal, _stan, second = split_key(txn.key)
        close_at = second * MICROS + self._window_us
        self._publish(
            txn, kind, fold(txn), Status.FIRING, close_at, detected_us, overdue_at=deadline
        )

    def _rebuild_schedules(self) -> None:
        """After a restore: re-derive the close/expiry schedule and the recent index.

        Both are functions of the keys and the stream time, so they are not persisted. A
        transaction whose window stream time has passed but that was never judged (the
        progress was persisted before its state) is judged now: judging is idempotent.
        """
        now = self.progress.stream_time
        by_time: list[tuple[int, str, str]] = []
        for key in self.store:
            terminal_id, _stan, second = split_key(key)
            close_at = second * MICROS + self._window_us
            if close_at >= now:
                self._closing.add(close_at, key)
            else:
                txn = self.store[key]
                if not txn.judged:  # the progress was saved ahead of this state
                    self._judge(txn, close_at, now)
                self._expiring.add(close_at + self._retention_us, key)
            by_time.append((second, terminal_id, key))
            txn = self.store[key]
            firing = [kind for kind, (status, _) in (txn.alerts or {}).items() if status == FIRING]
            if firing:
                facts = fold(txn)
                for kind in firing:
                    self._schedule_deadline(txn, Kind(kind), now, facts)
        by_time.sort()
        for second, terminal_id, key in by_time:
            self._remember(terminal_id, key, second)


def alert_currency(facts: Facts) -> int | None:
    """The alert's currency as :meth:`Reconciler._publish` picks it (terminal's first)."""
    if facts.tally.terminal_currency is not None:
        return facts.tally.terminal_currency
    issuer = facts.issuer_amount
    return issuer[1] if issuer else None


def _outcome_word(facts: Facts) -> str | None:
    if facts.tally.terminal_reversal:
        return "reversed"
    return None if facts.outcome is None else STEP_OUTCOME[facts.outcome]


__all__ = ["Applied", "Reconciler", "Stats", "alert_currency"]
