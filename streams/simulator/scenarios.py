"""One function per primary scenario: the events of a sale at their true times, and the
alerts the scenario means to raise.

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

from models.alerts import Cause, Kind
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
            terminal = self.fleet.pick_terminal(self.rng, t0)
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


def _sale(b: Builder, tx: Txn) -> int:
    """A matched sale; returns when the terminal showed "approved"."""
    answered, posted, shown = sale_timing(b, tx.t0)
    sale_events(tx, answered, posted, shown)
    if tx.card.dual_message:
        _clearing(b, tx)
    return shown


def _clearing(b: Builder, tx: Txn, amount: int | None = None, copies: int = 1) -> None:
    """Dual-message clearing 1-6 h later: the debit(s), sometimes with a hold_release."""
    at = tx.t0 + b.between(MS_PER_HOUR, 6 * MS_PER_HOUR)
    for _ in range(copies):
        tx.issuer("debit", at, amount)
        at += b.between(SECOND, 90 * SECOND)
    if b.chance(b.profile.hold_release_share):
        tx.issuer("hold_release", at + b.between(SECOND, 30 * SECOND), amount)


def _approve_and_take(b: Builder, tx: Txn) -> int:
    """Request; the issuer promptly approves and takes the money. Returns the answer time."""
    tx.request()
    answered = tx.t0 + b.host_latency()
    tx.authorization(answered, True)
    tx.money(answered + b.posting_gap())
    return answered


def _give_back(b: Builder, tx: Txn) -> None:
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


def _aftermath(b: Builder, tx: Txn, failed_at: int, *, may_pay_again: bool) -> list[Txn]:
    """What follows an unmatched debit: a late give-back, the cardholder paying again."""
    guard(tx)
    story = [tx]
    if b.chance(b.profile.resolved_late_share):
        _give_back(b, tx)
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
        _sale(b, again)
        tx.paid_again = True
        story.append(again)
    return story


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


def approved(b: Builder, t0: int) -> list[Txn]:
    return approved_after_open(b, b.open("approved", t0))


def approved_after_open(b: Builder, tx: Txn) -> list[Txn]:
    """The rest of :func:`approved` once its transaction is open (the generator's fast
    path hands dual-message sales back here)."""
    _sale(b, tx)
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


def _decline(b: Builder, tx: Txn) -> int:
    tx.request()
    answered = tx.t0 + b.host_latency()
    code = b.pick(BENIGN_DECLINES)
    tx.authorization(answered, False, code)
    shown = answered + b.response_time()
    tx.outcome(shown, "declined", response_code=code)
    return shown


def declined(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("declined", t0)
    _decline(b, tx)
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
    _approve_and_take(b, tx)
    gave_up = t0 + tx.terminal.timeout_ms
    tx.outcome(gave_up, "timeout", b.pick(TIMEOUT_REASONS))
    reversed_at = gave_up + b.between(500, 5 * SECOND)
    tx.terminal_reversal(reversed_at, b.pick(REVERSAL_REASONS))
    tx.issuer("reversal", reversed_at + b.between(300, 3 * SECOND))
    return [tx]


def auto_reversed(b: Builder, t0: int) -> list[Txn]:
    """Timeout; the issuer notices no completion and reverses by itself within minutes."""
    tx = b.open("auto_reversed", t0)
    _approve_and_take(b, tx)
    gave_up = t0 + tx.terminal.timeout_ms
    tx.outcome(gave_up, "timeout", b.pick(TIMEOUT_REASONS))
    tx.issuer("reversal", gave_up + b.between(5 * SECOND, 200 * SECOND))
    return [tx]


def retry_after_decline(b: Builder, t0: int) -> list[Txn]:
    """A clean decline, then the same card pays successfully at the next STAN."""
    tx = b.open("retry_after_decline", t0)
    shown = _decline(b, tx)
    again = b.open(
        "retry",
        shown + b.between(10 * SECOND, 60 * SECOND),
        terminal=tx.terminal,
        card=tx.card,
        amount=tx.amount,
    )
    _sale(b, again)
    return [tx, again]


# -- anomalies ----------------------------------------------------------------------------


def network_failure(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("network_failure", t0)
    _approve_and_take(b, tx)
    gave_up = t0 + tx.terminal.timeout_ms
    if b.chance(b.profile.no_outcome_share):
        tx.scenario = "network_failure.no_outcome"  # the terminal's outcome never reached us
    else:
        tx.outcome(gave_up, "timeout", b.pick(TIMEOUT_REASONS))
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.NETWORK_FAILURE)
    return _aftermath(b, tx, gave_up, may_pay_again=True)


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
    return _aftermath(b, tx, gave_up, may_pay_again=True)


def terminal_fault(b: Builder, t0: int) -> list[Txn]:
    tx = b.open("terminal_fault", t0)
    answered = _approve_and_take(b, tx)
    shown = answered + b.between(500, 15 * SECOND)
    tx.outcome(shown, "error", b.pick(FAULT_REASONS))
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.TERMINAL_FAULT)
    return _aftermath(b, tx, shown, may_pay_again=True)


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
    answered = _approve_and_take(b, tx)
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
    return _aftermath(b, tx, answered, may_pay_again=False)


def _approved_for(b: Builder, tx: Txn, charged: int) -> None:
    """The terminal approves its amount; the issuer approves and takes ``charged``."""
    answered = tx.t0 + b.host_latency()
    tx.authorization(answered, True, amount=charged)
    tx.money(answered + b.posting_gap(), charged)
    tx.outcome(answered + b.response_time(), "approved")
    if tx.card.dual_message:
        _clearing(b, tx, charged)


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
    answered = _approve_and_take(b, tx)
    shown = answered + b.between(2 * SECOND, 20 * SECOND)
    tx.outcome(shown, "cancelled", b.pick(OPERATOR_CANCEL_REASONS))
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.OPERATOR_ERROR)
    return _aftermath(b, tx, shown, may_pay_again=False)


def payment_method_switch(b: Builder, t0: int) -> list[Txn]:
    """Card 1 is debited, the sale is cancelled, and card 2 pays the same amount."""
    tx = b.open("payment_method_switch", t0)
    answered = _approve_and_take(b, tx)
    shown = answered + b.between(3 * SECOND, 30 * SECOND)
    tx.outcome(shown, "cancelled", b.pick(SWITCH_REASONS))
    tx.expect(Kind.UNMATCHED_DEBIT, Cause.PAYMENT_METHOD_SWITCH)
    tx.paid_again = True
    story = _aftermath(b, tx, shown, may_pay_again=False)
    second = b.open(
        "second_card",
        shown + b.between(20 * SECOND, 120 * SECOND),
        terminal=tx.terminal,
        card=b.fleet.pick_card(b.rng, other_than=tx.card),
        amount=tx.amount,
    )
    _sale(b, second)
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
        _clearing(b, tx, copies=2)  # the clearing record was processed twice
    else:
        posted = answered + b.posting_gap()
        tx.issuer("debit", posted)
        tx.issuer("debit", posted + b.between(SECOND, 90 * SECOND))
        tx.outcome(answered + b.response_time(), "approved")
    tx.expect(Kind.DUPLICATE_DEBIT, Cause.DUPLICATE_PROCESSING)
    return [tx]


SCENARIO_FUNCTIONS: Final[dict[str, Scenario]] = {
    "approved": approved,
    "declined": declined,
    "timeout_no_money": timeout_no_money,
    "timeout_reversed": timeout_reversed,
    "auto_reversed": auto_reversed,
    "retry_after_decline": retry_after_decline,
    "network_failure": network_failure,
    "network_failure_standin": network_failure_standin,
    "issuer_late_response": issuer_late_response,
    "terminal_fault": terminal_fault,
    "terminal_fault_false_approval": terminal_fault_false_approval,
    "reversal_lost": reversal_lost,
    "account_restriction": account_restriction,
    "merchant_configuration": merchant_configuration,
    "operator_error_amount": operator_error_amount,
    "operator_error_cancelled": operator_error_cancelled,
    "payment_method_switch": payment_method_switch,
    "duplicate_processing": duplicate_processing,
}
