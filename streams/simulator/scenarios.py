"""The steps of a sale and the benign scenarios; the anomalies are in :mod:`.anomalies`,
and :mod:`.catalogue` names them all.

A scenario is a function: the events of a sale at their true times, and the alerts it
means to raise.

Each function takes the :class:`Builder` (the run's RNG, profile and fleet) and the
request's true time ``t0`` (ms) and returns the story's transactions: usually one, two
when the story includes a follow-up sale (the cardholder paying again, a second card).
Timings follow the evidence a scorer looks for (see MISSION.md, "Why it happens"):

* network_failure: the issuer answers promptly (0.3-3 s) but the terminal shows
  ``timeout`` exactly at its own timeout, or nothing reaches us at all;
* issuer_late_response: the issuer answers 1-40 s *after* the terminal's timeout;
* terminal_fault: prompt approval, then the terminal shows ``error`` with a local reason;
* reversal_lost: the terminal reverses, the issuer never does;
* account_restriction: the issuer declines (51/57/61/62) yet posts the money;
* merchant_configuration / operator_error: the debit differs from what the terminal
  showed (a surcharge; a x10, /10 or transposed amount);
* payment_method_switch: cancelled, then the same amount on another card at the same
  terminal, 20-120 s later;
* duplicate_processing: two debits for one sale.

Benign stories never raise an alert on their final events. The generator judges every
story that could (all but plain matched sales; with ``verify_all``, every story) with
:func:`streams.simulator.verdict.judge`, and refuses a verdict the story did not mean.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from streams.simulator.fleet import AMOUNT_STEPS, Card, Fleet, Merchant, Terminal
from streams.simulator.profiles import Profile
from streams.simulator.timefmt import MS_PER_HOUR
from streams.simulator.transaction import APPROVED_AUTHORIZATION, APPROVED_OUTCOME, Txn

SECOND: Final = 1_000
# How long after a ghost's transmitted_at no unrelated sale at its terminal may look
# like the cardholder paying again: the detector's paid_again_window (300 s) + margin.
GUARD_MS: Final = 330 * SECOND
_AUTH_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_AUTH_PAIRS: Final = tuple(
    _AUTH_ALPHABET[i % 34] + _AUTH_ALPHABET[(i // 34) % 34] for i in range(1024)
)

POSTING_GAP_MS: Final = 200  # authorization -> its debit or hold: 0-200 ms
RESPONSE_MIN_MS: Final = 100  # issuer answer -> terminal display: 0.1-0.8 s
RESPONSE_SPAN_MS: Final = 700
# Quantiles of 0.3 s + an exponential of mean 0.6 s, capped at 3 s: one uniform draw and
# an index instead of a log per sale.
_LATENCY_STEPS: Final = 1024
_LATENCIES: Final = tuple(
    300 + min(2_700, int(-600.0 * math.log(1.0 - (i + 0.5) / _LATENCY_STEPS)))
    for i in range(_LATENCY_STEPS)
)

BENIGN_DECLINES: Final = ("05", "51", "05", "51", "54", "55", "14")
RESTRICTION_DECLINES: Final = ("51", "57", "61", "62")
FALSE_APPROVAL_DECLINES: Final = ("05", "51")
TIMEOUT_REASONS: Final = ("no response from host", "host response timeout", "communication error")
FAULT_REASONS: Final = (
    "printer fault",
    "card read error",
    "application crashed",
    "receipt printer out of paper",
    "PIN pad disconnected",
)
OPERATOR_CANCEL_REASONS: Final = ("cancelled by operator", "wrong amount keyed", "sale voided")
SWITCH_REASONS: Final = ("cancelled by cardholder", "customer chose another card")
REVERSAL_REASONS: Final = ("timeout reversal", "no response from host", "terminal error")
# A fixed card-acceptance fee in minor units, by currency (merchant_configuration).
FIXED_FEES: Final = {"CNY": 200, "INR": 1_000, "EUR": 50, "USD": 50, "JPY": 30, "GBP": 50}


class Builder:
    """The run's shared means of making transactions: RNG, profile, fleet, counters."""

    def __init__(self, rng: random.Random, profile: Profile, fleet: Fleet) -> None:
        self.rng = rng
        self.random = rng.random
        self.profile = profile
        self.fleet = fleet
        self._rrn_sequence = 99_999
        self._rrn_prefix: dict[int, str] = {}
        # The terminal of the next unpinned sale, when the generator has chosen it
        # already (during an incident, :mod:`.incidents`); the next :meth:`open` takes it.
        self.next_terminal: Terminal | None = None

    # -- draws ---------------------------------------------------------------------------

    def chance(self, probability: float) -> bool:
        return self.random() < probability

    def between(self, low_ms: int, high_ms: int) -> int:
        """A uniform integer in [low_ms, high_ms)."""
        return low_ms + int(self.random() * (high_ms - low_ms))

    def pick(self, options: tuple[str, ...]) -> str:
        return options[int(self.random() * len(options))]

    def host_latency(self) -> int:
        """Request -> issuer answer for a prompt issuer: 0.3-3 s, mostly under 1.5 s."""
        return _LATENCIES[int(self.random() * _LATENCY_STEPS)]

    def response_time(self) -> int:
        """Issuer answer -> the terminal showing it (network back, printing)."""
        return RESPONSE_MIN_MS + int(self.random() * RESPONSE_SPAN_MS)

    def posting_gap(self) -> int:
        """Authorization -> the debit or hold of the same message (core banking)."""
        return int(self.random() * POSTING_GAP_MS)

    def amount(self, merchant: Merchant) -> int:
        """A sale amount in minor units: log-normal around the market's median."""
        market = merchant.market
        amounts = merchant.amounts
        position = self.random() * AMOUNT_STEPS
        index = int(position)
        low = amounts[index]
        value = int(low + (amounts[index + 1] - low) * (position - index))
        if market.round_to > 1:
            value -= value % market.round_to
        return value if value > market.min_minor else market.min_minor

    def _unlike_ghosts(
        self, terminal: Terminal, t0: int, card: Card, amount: int
    ) -> tuple[Card, int]:
        """A card and amount that no recent ghost at ``terminal`` has (see :func:`guard`)."""
        terminal.guards = guards = [entry for entry in terminal.guards if entry[0] >= t0]
        cards = [entry[1] for entry in guards]
        amounts = [entry[2] for entry in guards]
        while any(card is other for other in cards) and len(self.fleet.cards) > len(cards):
            card = self.fleet.pick_card(self.rng)
        for _ in range(100):  # a tiny market could run out of amounts: give up, rarely
            if amount not in amounts:
                break
            amount = self.amount(terminal.merchant)
        return card, amount

    # -- identifiers ---------------------------------------------------------------------

    def _rrn(self, at_ms: int) -> str:
        """A 12-digit retrieval reference number: YDDDHH + a 6-digit sequence."""
        hour_index = at_ms // MS_PER_HOUR
        prefix = self._rrn_prefix.get(hour_index)
        if prefix is None:
            moment = datetime.fromtimestamp(hour_index * 3_600, tz=UTC)
            prefix = f"{moment.year % 10}{moment.timetuple().tm_yday:03d}{moment.hour:02d}"
            self._rrn_prefix[hour_index] = prefix
        # Cycles through 100000-999999: always six digits without a format spec.
        sequence = self._rrn_sequence + 1
        if sequence > 999_999:
            sequence = 100_000
        self._rrn_sequence = sequence
        return f"{prefix}{sequence}"

    def _auth_code(self) -> str:
        """Six characters from [0-9A-Z] minus I and O, from one 30-bit draw."""
        bits = self.rng.getrandbits(30)
        pairs = _AUTH_PAIRS
        return pairs[bits & 1023] + pairs[(bits >> 10) & 1023] + pairs[bits >> 20]

    def open(
        self,
        scenario: str,
        t0: int,
        *,
        terminal: Terminal | None = None,
        card: Card | None = None,
        amount: int | None = None,
    ) -> Txn:
        """A new transaction at ``t0``: an idle terminal, a card, an amount, the next STAN.

        ``terminal``, ``card`` and ``amount`` pin a follow-up sale. An unpinned sale at a
        guarded terminal (see :func:`guard`) never repeats the ghost's card or amount.
        """
        if terminal is None:
            terminal = self.next_terminal
            if terminal is None:
                terminal = self.fleet.pick_terminal(self.rng, t0)
            else:
                self.next_terminal = None
        pinned = card is not None
        if card is None:
            cards = self.fleet.cards
            card = cards[int(self.random() * len(cards))]
        if amount is None:
            amount = self.amount(terminal.merchant)
        if terminal.guards and not pinned:
            card, amount = self._unlike_ghosts(terminal, t0, card, amount)
        stan = terminal.allocate_stan(t0)
        return Txn(scenario, terminal, card, stan, t0, amount, self._rrn(t0), self._auth_code())


Scenario = Callable[[Builder, int], list[Txn]]

# -- building blocks ----------------------------------------------------------------------


def sale_timing(b: Builder, t0: int) -> tuple[int, int, int]:
    """When a prompt, approving issuer answers, posts the money, and the terminal shows
    it: (answered, posted, shown), three draws (the generator's fast path shares this)."""
    random_ = b.random
    answered = t0 + _LATENCIES[int(random_() * _LATENCY_STEPS)]  # b.host_latency()
    posted = answered + int(random_() * POSTING_GAP_MS)  # b.posting_gap()
    shown = answered + RESPONSE_MIN_MS + int(random_() * RESPONSE_SPAN_MS)  # b.response_time()
    return answered, posted, shown


def sale_events(tx: Txn, answered: int, posted: int, shown: int) -> None:
    """The four events of a matched sale: what the verbs would add, written out at once
    (nine sales in ten are this one)."""
    amount = tx.amount
    refs = tx.refs
    tx.events += (
        (tx.t0, True, "request", amount, "", ""),
        (answered, False, "authorization", amount, "approved", refs + APPROVED_AUTHORIZATION),
        (posted, False, "hold" if tx.card.dual_message else "debit", amount, "", refs),
        (shown, True, "outcome", amount, "approved", refs + APPROVED_OUTCOME),
    )
    tx.terminal_end = shown


def matched_sale(b: Builder, tx: Txn) -> int:
    """A matched sale; returns when the terminal showed "approved"."""
    answered, posted, shown = sale_timing(b, tx.t0)
    sale_events(tx, answered, posted, shown)
    if tx.card.dual_message:
        clearing(b, tx)
    return shown


def clearing(b: Builder, tx: Txn, amount: int | None = None, copies: int = 1) -> None:
    """Dual-message clearing 1-6 h later: the debit(s), sometimes with a hold_release."""
    at = tx.t0 + b.between(MS_PER_HOUR, 6 * MS_PER_HOUR)
    for _ in range(copies):
        tx.issuer("debit", at, amount)
        at += b.between(SECOND, 90 * SECOND)
    if b.chance(b.profile.hold_release_share):
        tx.issuer("hold_release", at + b.between(SECOND, 30 * SECOND), amount)


def approve_and_take(b: Builder, tx: Txn) -> int:
    """Request; the issuer promptly approves and takes the money. Returns the answer time."""
    tx.request()
    answered = tx.t0 + b.host_latency()
    tx.authorization(answered, True)
    tx.money(answered + b.posting_gap())
    return answered


def give_back(b: Builder, tx: Txn) -> None:
    """The issuer undoes a ghost hours later (auto-reversal / refund / released hold)."""
    at = tx.t0 + b.between(MS_PER_HOUR, 6 * MS_PER_HOUR)
    if tx.has("debit"):
        tx.issuer("reversal" if b.chance(0.5) else "refund", at)
    else:
        tx.issuer("reversal" if b.chance(0.5) else "hold_release", at)


def guard(tx: Txn) -> None:
    """Keep the evidence of ``tx``'s ghost debit clean for :data:`GUARD_MS`.

    A scorer decides "the cardholder paid again" from a completed sale at the same
    terminal soon after, by the same card or (another card) of the same amount. An
    unrelated sale can match that by chance (round amounts repeat), and the truth would
    then disagree with perfectly good evidence; so unpinned sales at this terminal avoid
    the ghost's card and amount for a while. Follow-ups the story means are pinned.
    """
    tx.terminal.guards.append((tx.t0 + GUARD_MS, tx.card, tx.amount))


def aftermath(b: Builder, tx: Txn, failed_at: int, *, may_pay_again: bool) -> list[Txn]:
    """What follows an unmatched debit: a late give-back, the cardholder paying again."""
    guard(tx)
    story = [tx]
    if b.chance(b.profile.resolved_late_share):
        give_back(b, tx)
        tx.expected.clear()
        tx.scenario += ".resolved_late"
    if may_pay_again and b.chance(b.profile.paid_again_share):
        again = b.open(
            "paid_again",
            failed_at + b.between(30 * SECOND, 180 * SECOND),
            terminal=tx.terminal,
            card=tx.card,
            amount=tx.amount,
        )
        matched_sale(b, again)
        tx.paid_again = True
        story.append(again)
    return story


def approved(b: Builder, t0: int) -> list[Txn]:
    return approved_after_open(b, b.open("approved", t0))


def approved_after_open(b: Builder, tx: Txn) -> list[Txn]:
    """The rest of :func:`approved` once its transaction is open (the generator's fast
    path hands dual-message sales back here)."""
    matched_sale(b, tx)
    late_feed(b, tx)
    return [tx]


def late_feed(b: Builder, tx: Txn) -> bool:
    """Sometimes the issuer feed for a sale arrives 1-3 h late: a transient
    terminal_approved_no_debit fires at window close and resolves later."""
    if b.chance(b.profile.late_feed):
        tx.issuer_shift_ms = b.between(MS_PER_HOUR, 3 * MS_PER_HOUR)
        tx.scenario = "approved.late_feed"
        return True
    return False


def decline_sale(b: Builder, tx: Txn) -> int:
    tx.request()
    answered = tx.t0 + b.host_latency()
    code = b.pick(BENIGN_DECLINES)
    tx.authorization(answered, False, code)
    shown = answered + b.response_time()
    tx.outcome(shown, "declined", response_code=code)
    return shown


def declined(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("declined", t0)
    decline_sale(b, tx)
    return [tx]


def timeout_no_money(b: Builder, t0: int) -> list[Txn]:
    """The terminal times out; the issuer declined (the answer was lost) or never heard."""
    tx = b.open("timeout_no_money", t0)
    tx.request()
    if b.chance(0.5):
        tx.authorization(t0 + b.host_latency(), False, b.pick(("05", "91", "96")))
    tx.outcome(t0 + tx.terminal.timeout_ms, "timeout", b.pick(TIMEOUT_REASONS))
    return [tx]


def timeout_reversed(b: Builder, t0: int) -> list[Txn]:
    """Timeout, the terminal reverses and the issuer honours it within the window."""
    tx = b.open("timeout_reversed", t0)
    approve_and_take(b, tx)
    gave_up = t0 + tx.terminal.timeout_ms
    tx.outcome(gave_up, "timeout", b.pick(TIMEOUT_REASONS))
    reversed_at = gave_up + b.between(500, 5 * SECOND)
    tx.terminal_reversal(reversed_at, b.pick(REVERSAL_REASONS))
    tx.issuer("reversal", reversed_at + b.between(300, 3 * SECOND))
    return [tx]


def auto_reversed(b: Builder, t0: int) -> list[Txn]:
    """Timeout; the issuer notices no completion and reverses by itself within minutes."""
    tx = b.open("auto_reversed", t0)
    approve_and_take(b, tx)
    gave_up = t0 + tx.terminal.timeout_ms
    tx.outcome(gave_up, "timeout", b.pick(TIMEOUT_REASONS))
    tx.issuer("reversal", gave_up + b.between(5 * SECOND, 200 * SECOND))
    return [tx]


def retry_after_decline(b: Builder, t0: int) -> list[Txn]:
    """A clean decline, then the same card pays successfully at the next STAN."""
    tx = b.open("retry_after_decline", t0)
    shown = decline_sale(b, tx)
    again = b.open(
        "retry",
        shown + b.between(10 * SECOND, 60 * SECOND),
        terminal=tx.terminal,
        card=tx.card,
        amount=tx.amount,
    )
    matched_sale(b, again)
    return [tx, again]


# -- anomalies ----------------------------------------------------------------------------
