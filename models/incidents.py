"""Fleet-level incidents: per-terminal features over event time, scored, firing/resolved.

One :class:`IncidentTracker` lives next to each :class:`~models.reconciler.Reconciler`
(one join partition; every event of a terminal reaches the same partition, so a
terminal's features are complete there). The reconciler tells it each accepted event;
the tracker counts it in the terminal's *slot*, a ``step``-long span of key time
(``transmitted_at``, stamped by the acquirer host, so a terminal whose own clock is two
minutes off still lands in the right slot).

Whenever stream time passes a step boundary ``T`` (every 15 s by default), each terminal
with recent traffic, and each merchant with two or more, is scored on the transactions
keyed in ``[T - lag - window, T - lag)``: by ``T`` their terminal outcome and the bank's
first answer have had ``lag`` of event time to arrive. A worked example with the
defaults (step 15 s, window 120 s, lag 30 s), a merchant with six busy terminals::

    10:00:00  the merchant's network starts losing the host's replies
    10:00:05  sale keyed 10:00:05 -> its terminal shows "timeout" at 10:00:35; the bank
              had debited it
    ...       more sales time out on the merchant's other terminals
    stream time passes 10:01:30 -> merchant scored on keys [08:59:00, 10:01:00):
              5 of 11 sales timed out, 3 failed but charged -> abnormal: one merchant
              incident fires, detected_at 10:01:30
    ...       the link recovers at 10:12:00
    stream time passes 10:13:30 -> the fourth normal score in a row: resolved

The defaults were chosen by measurement on simulated days (docs/incidents.md): a longer
lag or window detects later, a shorter one raises more false incidents.

Events keyed before the window of the latest scoring are too late to count (counted
in :attr:`IncidentTracker.late_events`); they still take part in the transaction's own
verdict. Everything here is a function of the partition's event sequence, never of
the wall clock: a restarted worker that restores :meth:`TerminalActivity.to_bytes`
and re-reads its input makes the same decisions.

An incident alert (``kind`` ``terminal_incident``) is identified by the terminal and
the step at which the episode began, so every rerun names it the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from models.alerts import Alert, IncidentFeature, Kind, Status, alert_id
from models.events import Step
from models.incident_explanation import explain_incident, incident_cause
from models.incident_features import FEATURES, LATE_ANSWER_S
from models.incident_state import (
    APPROVED,
    ATTEMPTS,
    CANCELLED,
    COUNTERS,
    DECLINED,
    EPISODE_PREFIX,
    ERROR,
    EXTRA_DEBITS,
    FAILED_CHARGED,
    FIRING,
    LATE_ANSWERS,
    NO_EPISODE,
    RESOLVED,
    REVERSALS,
    SLOTS_PREFIX,
    TIMEOUT,
    Episode,
    TerminalActivity,
    feature_rows,
    features,
    merchant_of_state,
)
from models.instants import MICROS, format_micros
from models.scorer import severity_of

_FAILED_OUTCOMES: Final = {
    Step.DECLINED: DECLINED,
    Step.TIMEOUT: TIMEOUT,
    Step.ERROR: ERROR,
    Step.CANCELLED: CANCELLED,
}
_FAILED_STEPS: Final = frozenset(int(step) for step in _FAILED_OUTCOMES)
_FAILED_COUNTER: Final = {int(step): counter for step, counter in _FAILED_OUTCOMES.items()}
_APPROVED_STEP: Final = int(Step.APPROVED)
_REVERSAL_STEP: Final = int(Step.TERMINAL_REVERSAL)
_DEBIT_STEP: Final = int(Step.DEBIT)
_MONEY_STEPS: Final = frozenset((int(Step.HOLD), int(Step.DEBIT)))
_ANSWER_STEPS: Final = frozenset(
    (int(Step.AUTH_APPROVED), int(Step.AUTH_DECLINED), int(Step.HOLD), int(Step.DEBIT))
)
_ISSUER_FIRST_STEP: Final = int(Step.AUTH_APPROVED)
_RECORD_SIZE: Final = 21  # models.transaction.RECORD.size; the step is its first byte
_MAX_LATENCIES: Final = 64  # per slot: enough for the quantiles, bounded memory
_LATE_MS: Final = round(LATE_ANSWER_S * 1000)


class IncidentScorer(Protocol):
    """What the tracker needs of the model (:class:`models.incident_model.IncidentModel`
    behind :class:`models.incident_model_file.LoadedModel`)."""

    def assess(self, rows: NDArray[np.float64]) -> list[tuple[bool, float]]:
        """(abnormal, anomaly score in [0, 1]) per row of :data:`FEATURES` values."""
        ...

    def usual(self) -> Sequence[float]:
        """The typical value of each feature on normal traffic (for explanations)."""
        ...

    def min_attempts(self) -> int:
        """Rows with fewer attempts are never abnormal (so they need not be scored)."""
        ...

    def deviations(self, row: Sequence[float]) -> Sequence[float]:
        """How unusual each feature of ``row`` is (robust z-scores, >= 0)."""
        ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class IncidentConfig:
    """When terminals are scored. Times in seconds (CONTRACT §3 event time)."""

    step: float = 15.0
    window: float = 120.0
    lag: float = 30.0
    clear_steps: int = 4  # normal scores in a row that resolve an incident

    def __post_init__(self) -> None:
        if self.step <= 0 or self.window < self.step or self.lag < 0:
            raise ValueError("incident step must be > 0, window >= step, lag >= 0")
        if self.window % self.step or self.lag % self.step:
            raise ValueError("incident window and lag must be multiples of step")
        if self.clear_steps < 1:
            raise ValueError("clear_steps must be >= 1")


class IncidentTracker:
    """The incident side of one join partition (see the module docstring).

    Two scopes: every terminal, and every merchant with two or more terminals active
    in the window (its terminals' slots summed; the workers partition by merchant, so a
    merchant's terminals are all here). A merchant-wide failure (its network, an issuer
    slowing down for its traffic) is one merchant incident, not one per terminal: while
    a merchant's incident fires, its terminals open none of their own.
    """

    def __init__(self, scorer: IncidentScorer, config: IncidentConfig | None = None) -> None:
        self.scorer = scorer
        self.config = config or IncidentConfig()
        self._step_us = round(self.config.step * MICROS)
        self._step_s = round(self.config.step)
        self._lag_slots = round(self.config.lag / self.config.step)
        self._window_slots = round(self.config.window / self.config.step)
        self.terminals: dict[str, TerminalActivity] = {}
        self.episodes: dict[str, Episode] = {}  # by Episode.key
        # Keys ("~slots/..." or "~incident/...") whose durable state changed.
        self.touched: set[str] = set()
        self.outbox: list[Alert] = []
        self.late_events = 0
        self.scored_rows = 0
        # Terminals counted into the last step's window since that step.
        self._changed: set[str] = set()
        # The last step boundary passed (in slot numbers): slots before
        # ``_scored - lag - window`` no longer count.
        self._scored: int | None = None

    # ---------------------------------------------------------------- state

    def load(self, key: str, blob: bytes) -> None:
        """Restore one stored state (``ValueError`` if unreadable)."""
        if key.startswith(SLOTS_PREFIX):
            activity = TerminalActivity.from_bytes(blob)
            self.terminals[activity.terminal_id] = activity
        else:
            episode = Episode.from_bytes(blob)
            self.episodes[episode.key] = episode

    def resume(self, stream_time: int) -> None:
        """After a restore: steps up to ``stream_time`` were taken before the crash."""
        if stream_time > -(2**62):
            self._scored = self._slot_at(stream_time)

    def score_of(self, terminal_id: str, merchant_id: str | None = None) -> float:
        """The incident score for a transaction alert: the peak anomaly score of the
        firing incident of its terminal or merchant, else 0."""
        best = 0.0
        for key in (f"terminal:{terminal_id}", f"merchant:{merchant_id}"):
            episode = self.episodes.get(key)
            if episode is not None and episode.status == FIRING:
                best = max(best, episode.peak)
        return best

    def take_touched(self) -> Iterator[tuple[str, bytes | None]]:
        """(storage key, state or None for deleted) of every state changed since last."""
        touched, self.touched = self.touched, set()
        for key in touched:
            if key.startswith(SLOTS_PREFIX):
                activity = self.terminals.get(key[len(SLOTS_PREFIX) :])
                yield key, None if activity is None else activity.to_bytes()
            else:
                episode = self.episodes.get(key[len(EPISODE_PREFIX) :])
                yield key, None if episode is None else episode.to_bytes()

    # ---------------------------------------------------------------- input

    def observe(
        self,
        terminal_id: str,
        merchant_id: str,
        second: int,
        step: int,
        occurred_us: int,
        records: bytes,
        first_terminal: bool,
    ) -> None:
        """Count one accepted event of a transaction keyed at ``second``.

        ``records`` is the transaction's event log *before* this event (the prior steps
        tell a duplicate debit or a failed-but-charged sale apart).
        """
        number = second // self._step_s
        if self._scored is not None and number < self._scored - self._lag_slots:
            if number < self._scored - self._lag_slots - self._window_slots:
                self.late_events += 1
                return
            # Inside the window of the last step: its cached sums are out of date.
            self._changed.add(terminal_id)
        activity = self.terminals.get(terminal_id)
        if activity is None:
            activity = self.terminals[terminal_id] = TerminalActivity(terminal_id, merchant_id)
        counters, latencies = activity.slot(number)
        self.touched.add(SLOTS_PREFIX + terminal_id)
        if first_terminal:
            counters[ATTEMPTS] += 1
        # The first byte of each 21-byte record is its step: the steps so far, as bytes.
        before = records[::_RECORD_SIZE]
        if step == _APPROVED_STEP:
            counters[APPROVED] += 1
        elif step in _FAILED_COUNTER:
            counters[_FAILED_COUNTER[step]] += 1
            if not _MONEY_STEPS.isdisjoint(before):
                counters[FAILED_CHARGED] += 1
        elif step == _REVERSAL_STEP:
            counters[REVERSALS] += 1
        elif step in _ANSWER_STEPS:
            if not before or max(before) < _ISSUER_FIRST_STEP:  # the bank's first answer
                latency_ms = max(0, (occurred_us - second * MICROS) // 1000)
                if latency_ms > _LATE_MS:
                    counters[LATE_ANSWERS] += 1
                if len(latencies) < _MAX_LATENCIES:
                    latencies.append(latency_ms)
            if step in _MONEY_STEPS:
                if step == _DEBIT_STEP and _DEBIT_STEP in before:
                    counters[EXTRA_DEBITS] += 1
                if _MONEY_STEPS.isdisjoint(before) and not _FAILED_STEPS.isdisjoint(before):
                    counters[FAILED_CHARGED] += 1

    def advance(self, stream_time: int) -> None:
        """Take every step boundary that stream time has passed."""
        target = self._slot_at(stream_time)
        if self._scored is None:
            self._scored = target
            return
        while self._scored < target:
            if not self._busy():
                self._scored = target
                return
            self._scored += 1
            if not self._step(self._scored):
                self._skip_quiet_steps(target)

    def _skip_quiet_steps(self, target: int) -> None:
        """After a step with nothing to score and no incident firing, go straight to the
        step before the earliest slot can enter a window.

        Without it, a stream time that jumps far ahead (a far-future watermark, the end of
        a capture) while some terminal holds a slot keyed far ahead (a terminal whose
        clock says 2030) would be walked through 15 s at a time.
        """
        if any(e.status == FIRING for e in self.episodes.values()) or not self.terminals:
            return
        earliest = min(min(a.slots) for a in self.terminals.values())
        assert self._scored is not None
        self._scored = max(self._scored, min(target, earliest + self._lag_slots))

    def next_due(self) -> int | None:
        """The stream time the next step needs to pass (None: nothing to score), so idle
        advance keeps scoring a partition whose feeds went quiet mid-incident."""
        if not self._busy() or self._scored is None:
            return None
        return (self._scored + 1) * self._step_us

    def take_alerts(self) -> list[Alert]:
        out, self.outbox = self.outbox, []
        return out

    # ------------------------------------------------------------- internals

    def _busy(self) -> bool:
        return bool(self.terminals) or any(e.status == FIRING for e in self.episodes.values())

    def _slot_at(self, stream_time: int) -> int:
        # Slot boundaries passed: stream time T passes boundary b*step when T > b*step.
        return (stream_time - 1) // self._step_us if stream_time > 0 else 0

    def _step(self, boundary: int) -> bool:
        """Score every terminal and merchant with recent traffic at ``boundary``; False
        when there was nothing to score."""
        windowed = self._windows(boundary)
        # Terminals by merchant (both sorted: the order of the rows and of the alerts).
        by_merchant: dict[str, list[int]] = {}
        for index, activity in enumerate(windowed):
            by_merchant.setdefault(activity.merchant_id, []).append(index)
        merchants = sorted(by_merchant)
        # A row with fewer attempts than the model's minimum is normal whatever it holds
        # (too few sales to tell): not scored, unless its incident is firing.
        least = self.scorer.min_attempts()
        episodes = self.episodes
        subjects: list[tuple[str, str, str, list[str]]] = []  # scope, entity, merchant, who
        rows: list[int] = []  # each subject's row: terminals first, then merchants
        for number, merchant_id in enumerate(merchants):
            members = by_merchant[merchant_id]
            attempts = [_attempts_of(windowed[i]) for i in members]
            if len(members) >= 2 and (
                sum(attempts) >= least or (episodes and self._firing(f"merchant:{merchant_id}"))
            ):
                who = [windowed[i].terminal_id for i in members]
                subjects.append(("merchant", merchant_id, merchant_id, who))
                rows.append(len(windowed) + number)
            for index, count in zip(members, attempts, strict=True):
                terminal_id = windowed[index].terminal_id
                if count >= least or (episodes and self._firing(f"terminal:{terminal_id}")):
                    subjects.append(("terminal", terminal_id, merchant_id, [terminal_id]))
                    rows.append(index)
        if rows:
            matrix = self._feature_table(windowed, by_merchant, merchants)[rows]
        else:
            matrix = np.empty((0, len(FEATURES)))
        # Firing incidents with no traffic left in the window are scored as quiet.
        quiet: list[Episode] = []
        if any(e.status == FIRING for e in episodes.values()):
            scored = {f"{scope}:{entity}" for scope, entity, _m, _w in subjects}
            quiet = [
                e for key, e in sorted(episodes.items()) if e.status == FIRING and key not in scored
            ]
        if len(matrix):
            self.scored_rows += len(matrix)
            verdicts = self.scorer.assess(matrix)
        else:
            verdicts = []
        now = boundary * self._step_us
        covered: set[str] = set()  # merchants whose incident is firing after this step
        for index, (scope, entity, merchant_id, who), (flagged, score) in zip(
            range(len(subjects)), subjects, verdicts, strict=True
        ):
            if not flagged and (not episodes or f"{scope}:{entity}" not in episodes):
                continue  # normal, and no incident of its own: nothing to judge
            row = matrix[index].tolist()
            abnormal = flagged
            if scope == "terminal" and merchant_id in covered:
                # The merchant's incident covers it: no second alert for the same failure.
                abnormal = flagged and self._firing(f"terminal:{entity}")
            episode = self._judge(scope, entity, merchant_id, who, row, abnormal, score, now)
            if scope == "merchant" and episode is not None and episode.status == FIRING:
                covered.add(merchant_id)
        for episode in quiet:
            self._judge(
                episode.scope, episode.entity, episode.merchant_id, [], _QUIET_ROW, False, 0.0, now
            )
        return bool(subjects or quiet)

    def _windows(self, boundary: int) -> list[TerminalActivity]:
        """Drop the slots that left the window at ``boundary`` and bring each terminal's
        window sums up to date; the terminals with a non-empty window, sorted.

        A window moves one slot per step: unless a slot entered or left it, or an event
        was counted into it (``_changed``), a terminal's sums of the last step still
        hold. Most terminals see no sale in a 15 s step, so most are not re-read.
        """
        last = boundary - self._lag_slots  # exclusive
        first = last - self._window_slots
        changed, self._changed = self._changed, set()
        windowed: list[TerminalActivity] = []
        terminals = self.terminals
        for terminal_id in sorted(terminals):
            activity = terminals[terminal_id]
            slots = activity.slots
            if activity.window_at == boundary - 1:
                # Nothing before ``first - 1`` is left since that step (observe refuses it).
                stale = slots.pop(first - 1, None) is not None
                moved = stale or (last - 1) in slots or terminal_id in changed
            else:  # not scored at the previous boundary (restored, new, or a jump)
                old = [number for number in slots if number < first]
                for number in old:
                    del slots[number]
                stale, moved = bool(old), True
            if stale:
                self.touched.add(SLOTS_PREFIX + terminal_id)
            if not slots:
                del terminals[terminal_id]
                continue
            if moved:
                activity.take_window(boundary, last)
            else:
                activity.window_at = boundary
            if activity.window_totals is not None:
                windowed.append(activity)
        return windowed

    @staticmethod
    def _feature_table(
        windowed: list[TerminalActivity], by_merchant: dict[str, list[int]], merchants: list[str]
    ) -> NDArray[np.float64]:
        """The feature rows of every windowed terminal, then of every merchant (its
        terminals' sums and latencies together)."""
        terminals = len(windowed)
        merchant_of = np.empty(terminals, dtype=np.intp)
        for number, merchant_id in enumerate(merchants):
            merchant_of[by_merchant[merchant_id]] = number
        totals = np.array([a.window_totals for a in windowed], dtype=np.float64)
        merchant_totals = np.zeros((len(merchants), COUNTERS))
        np.add.at(merchant_totals, merchant_of, totals)
        latencies = np.array([ms for a in windowed for ms in a.window_latencies], dtype=np.float64)
        owners = np.repeat(np.arange(terminals), [len(a.window_latencies) for a in windowed])
        return feature_rows(
            np.concatenate((totals, merchant_totals)),
            np.concatenate((latencies, latencies)),
            np.concatenate((owners, terminals + merchant_of[owners])),
        )

    def _firing(self, key: str) -> bool:
        episode = self.episodes.get(key)
        return episode is not None and episode.status == FIRING

    def _judge(
        self,
        scope: str,
        entity: str,
        merchant_id: str,
        who: list[str],
        row: list[float],
        abnormal: bool,
        score: float,
        now: int,
    ) -> Episode | None:
        key = f"{scope}:{entity}"
        episode = self.episodes.get(key)
        if episode is None:
            if not abnormal:
                return None
            episode = self.episodes[key] = Episode(scope, entity, merchant_id)
        if abnormal:
            episode.normal_streak = 0
            if episode.status != FIRING:
                episode.status = FIRING
                namespace = "" if scope == "terminal" else scope
                episode.alert = alert_id(entity, namespace, now // MICROS, Kind.TERMINAL_INCIDENT)
                episode.detected_us = now
                episode.peak = score
                self.touched.add(EPISODE_PREFIX + key)
                self._publish(episode, who, row, score, now, resolved=False)
            elif score > episode.peak:
                episode.peak = score
                self.touched.add(EPISODE_PREFIX + key)
            return episode
        if episode.status != FIRING:
            return episode
        episode.normal_streak += 1
        self.touched.add(EPISODE_PREFIX + key)
        if episode.normal_streak >= self.config.clear_steps:
            self._publish(episode, who, row, episode.peak, now, resolved=True)
            # Resolved and published: nothing left to remember (a new episode gets a
            # new id, from its own onset).
            del self.episodes[key]
        return episode

    def _publish(
        self,
        episode: Episode,
        who: list[str],
        row: list[float],
        score: float,
        now: int,
        *,
        resolved: bool,
    ) -> None:
        usual = list(self.scorer.usual())
        deviations = list(self.scorer.deviations(row)) if who else [0.0] * len(FEATURES)
        # Attempts are the context of the shares, not a reason: never listed.
        order = sorted(range(1, len(FEATURES)), key=lambda i: (-deviations[i], i))
        top = [
            IncidentFeature(name=FEATURES[i], value=round(row[i], 3), usual=round(usual[i], 3))
            for i in order[:3]
        ]
        cause = incident_cause(row, usual)
        terminal = episode.entity if episode.scope == "terminal" else None
        self.outbox.append(
            Alert(
                alert_id=episode.alert,
                kind=Kind.TERMINAL_INCIDENT,
                status=Status.RESOLVED if resolved else Status.FIRING,
                terminal_id=terminal,
                merchant_id=episode.merchant_id,
                stan=None,
                transmitted_at=None,
                card_token=None,
                currency=None,
                terminal_amount_minor=None,
                issuer_amount_minor=None,
                at_risk_minor=0,
                evidence=[],
                detected_at=format_micros(episode.detected_us),
                explanation=explain_incident(
                    episode, who, row, usual, cause, resolved, self.config.window
                ),
                probable_cause=cause,
                severity=severity_of(score),
                score=round(score, 3),
                resolved_at=format_micros(now) if resolved else None,
                resolution=(
                    f"back to normal for {self.config.clear_steps} checks in a row"
                    if resolved
                    else None
                ),
                scope=episode.scope,
                terminals=sorted(who)[:_MAX_LISTED] if who else None,
                incident_features=None if resolved else top,
            )
        )


def _attempts_of(activity: TerminalActivity) -> int:
    totals = activity.window_totals
    return 0 if totals is None else totals[ATTEMPTS]


_QUIET_ROW: Final = [0.0] * len(FEATURES)
_MAX_LISTED: Final = 50


__all__ = [
    "EPISODE_PREFIX",
    "FIRING",
    "NO_EPISODE",
    "RESOLVED",
    "SLOTS_PREFIX",
    "Episode",
    "IncidentConfig",
    "IncidentScorer",
    "IncidentTracker",
    "TerminalActivity",
    "explain_incident",
    "features",
    "incident_cause",
    "merchant_of_state",
]
