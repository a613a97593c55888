"""The simulated world: merchants, their POS terminals, and the cardholders' cards.

Terminals carry the state that makes real traffic awkward for a detector:

* a STAN counter that starts anywhere (a few start just below 999999 and wrap to
  000001), and on ~30 % of terminals resets to 000001 at UTC midnight, so the same
  (terminal, STAN) pair comes back on another day with another ``transmitted_at``;
* a clock skew (uniform in +-``max_clock_skew_s``) applied to the ``occurred_at`` of the
  events it emits, never to ``transmitted_at`` (the acquirer host stamps that);
* its own timeout (20-60 s), which decides when it shows "timeout";
* a busy-until time: a terminal serves one sale at a time, so a follow-up sale (the
  cardholder paying again, a second card) really is the terminal's next STAN;
* a guard after a ghost debit, so no unrelated sale there looks like "paid again".

Cards are tokens (never PAN-like) and belong to a single-message issuer (authorise and
debit at once, 0200) or a dual-message issuer (hold now, clearing debit hours later).
"""

from __future__ import annotations

import base64
import math
import random
import re
from collections import deque
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

from streams.simulator.timefmt import MS_PER_DAY, offset_suffix

STAN_MAX: Final = 999_999
# CONTRACT §6: a run of 13+ digits may be taken for a PAN; no identifier may have one.
LONG_DIGIT_RUN: Final = re.compile(r"[0-9]{13,}")
_PICK_ATTEMPTS: Final = 8
_HISTORY: Final = 4_096
# Follow-ups are reserved at most a few minutes ahead (timeout + 180 s): see allocate_stan.
_HISTORY_BEFORE_MIDNIGHT_MS: Final = 15 * 60_000


@dataclass(frozen=True, slots=True)
class Market:
    """Where a merchant trades: its currency, local UTC offset in late November, prices.

    ``median_minor`` is the median sale in minor units; amounts are log-normal around
    it with ``sigma``, never below ``min_minor``; ``round_to`` mimics price points
    (yen prices end in 0).
    """

    country: str
    currency: str
    weight: float
    offset_minutes: int
    median_minor: int
    sigma: float
    min_minor: int
    round_to: int


# Mostly one currency, as for an acquirer in one country, with a tail of others.
MARKETS: Final = (
    Market("CN", "CNY", 0.55, 480, 6_800, 0.9, 100, 1),
    Market("IN", "INR", 0.15, 330, 45_000, 1.0, 1_000, 100),
    Market("DE", "EUR", 0.10, 60, 2_800, 0.9, 100, 1),
    Market("US", "USD", 0.10, -300, 3_500, 0.9, 100, 1),
    Market("JP", "JPY", 0.05, 540, 2_200, 1.0, 100, 10),
    Market("GB", "GBP", 0.05, 0, 2_400, 0.9, 100, 1),
)


AMOUNT_STEPS: Final = 4096
_NORMAL: Final = NormalDist()


def amount_quantiles(market: Market) -> tuple[float, ...]:
    """``AMOUNT_STEPS + 1`` quantiles of the market's log-normal sale amount.

    Drawing an amount is then one uniform draw and a linear interpolation between two
    neighbouring quantiles (no ``gauss``/``exp`` per sale), which keeps amounts
    continuous, so two unrelated sales rarely share an amount by chance.
    """
    log_median = math.log(market.median_minor)
    return tuple(
        math.exp(log_median + market.sigma * _NORMAL.inv_cdf((i + 0.5) / (AMOUNT_STEPS + 1)))
        for i in range(AMOUNT_STEPS + 1)
    )


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: str
    market: Market
    offset_text: str
    amounts: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Card:
    card_token: str
    dual_message: bool


class Terminal:
    """One POS terminal and its mutable counters (STAN, busy-until)."""

    __slots__ = (
        "busy_until",
        "day",
        "guards",
        "history",
        "index",
        "json_prefix",
        "max_second",
        "merchant",
        "ms_transmitted",
        "next_day_ms",
        "offset_ms",
        "resets_daily",
        "skew_ms",
        "stan",
        "tail_prefix",
        "terminal_id",
        "timeout_ms",
    )

    def __init__(
        self,
        index: int,
        terminal_id: str,
        merchant: Merchant,
        skew_ms: int,
        timeout_ms: int,
        ms_transmitted: bool,
        resets_daily: bool,
        stan: int,
        day: int,
    ) -> None:
        self.index = index
        self.terminal_id = terminal_id
        self.merchant = merchant
        self.skew_ms = skew_ms
        self.timeout_ms = timeout_ms
        self.ms_transmitted = ms_transmitted
        self.resets_daily = resets_daily
        self.stan = stan  # the last STAN used; the next sale takes stan + 1
        self.day = day
        self.busy_until = 0
        # After a ghost debit, no unrelated sale here may look like the cardholder paying
        # again (same card, or same amount) for a while: (until_ms, card, amount) entries,
        # see scenarios.guard.
        self.guards: list[tuple[int, Card, int]] = []
        self.max_second = -1
        self.next_day_ms = (day + 1) * MS_PER_DAY
        self.history: deque[tuple[int, int]] = deque(maxlen=_HISTORY)
        # Rendering, once per terminal: the local UTC offset, the start of every event
        # up to the STAN's value, and the currency before the card token.
        self.offset_ms = merchant.market.offset_minutes * 60_000
        self.json_prefix = (
            f'"terminal_id":"{terminal_id}","merchant_id":"{merchant.merchant_id}","stan":"'
        )
        self.tail_prefix = f',"currency":"{merchant.market.currency}","card_token":"'

    def allocate_stan(self, at_ms: int) -> str:
        """The STAN of a new sale transmitted at ``at_ms``.

        Wraps 999999 -> 000001 and, on resetting terminals, restarts at 000001 on the
        first sale of a new UTC day. The result never repeats a (second, STAN) pair this
        terminal already used, so no two transactions share a key. A repeat needs a
        midnight reset (or a million sales) in between: a follow-up sale reserved just
        after midnight resets the counter, then a sale in the last minutes before
        midnight allocates again. So only sales in the last ``_HISTORY_BEFORE_MIDNIGHT``
        of a day are remembered, and only an allocation out of time order checks them.
        """
        if at_ms >= self.next_day_ms:
            day = at_ms // MS_PER_DAY
            if self.resets_daily and day > self.day:
                self.stan = 0
            self.day = day
            self.next_day_ms = (day + 1) * MS_PER_DAY
        second = at_ms // 1000
        stan = self.stan % STAN_MAX + 1
        if second > self.max_second:
            self.max_second = second
        else:  # out of time order: never reuse a (second, STAN) pair
            while (second, stan) in self.history:
                stan = stan % STAN_MAX + 1
        self.stan = stan
        if self.next_day_ms - at_ms <= _HISTORY_BEFORE_MIDNIGHT_MS:
            self.history.append((second, stan))
        return str(stan + 1_000_000)[1:]  # zero-padded to 6 digits, cheaply


class Fleet:
    """All merchants, terminals and cards of a run, drawn once from the run's RNG."""

    def __init__(self, merchants: list[Merchant], terminals: list[Terminal], cards: list[Card]):
        if not merchants or not terminals or not cards:
            raise ValueError("a fleet needs at least one merchant, terminal and card")
        self.merchants = merchants
        self.terminals = terminals
        self.cards = cards

    def pick_terminal(self, rng: random.Random, at_ms: int) -> Terminal:
        """A terminal that is idle at ``at_ms``, or the least busy of a few if none is."""
        terminals = self.terminals
        count = len(terminals)
        best = terminals[int(rng.random() * count)]
        if best.busy_until <= at_ms:
            return best
        for _ in range(_PICK_ATTEMPTS - 1):
            candidate = terminals[int(rng.random() * count)]
            if candidate.busy_until <= at_ms:
                return candidate
            if candidate.busy_until < best.busy_until:
                best = candidate
        return best

    def pick_card(self, rng: random.Random, *, other_than: Card | None = None) -> Card:
        """A random card; with ``other_than``, a different one (if the fleet has two)."""
        cards = self.cards
        card = cards[int(rng.random() * len(cards))]
        if other_than is not None and len(cards) > 1:
            while card is other_than:
                card = cards[int(rng.random() * len(cards))]
        return card

    def pick_single_message_card(self, rng: random.Random) -> Card:
        """A card whose issuer debits at once (falls back to any card after a few tries)."""
        card = self.pick_card(rng)
        for _ in range(_PICK_ATTEMPTS):
            if not card.dual_message:
                break
            card = self.pick_card(rng)
        return card


def _token(rng: random.Random) -> str:
    """``tok_`` and 20 base-32 characters (100 random bits): letters and the digits 2-7."""
    raw = base64.b32encode(rng.getrandbits(104).to_bytes(13, "big"))[:20]
    return "tok_" + raw.decode().lower()


def build_fleet(
    rng: random.Random,
    *,
    merchants: int,
    terminals: int,
    cards: int,
    start_ms: int,
    max_clock_skew_s: float,
    stan_reset_share: float,
    stan_near_wrap_share: float,
    ms_transmitted_share: float,
    dual_message_share: float,
    name_base: int = 0,
    name_step: int = 1,
) -> Fleet:
    """Draw the fleet. Every merchant gets at least one terminal (if there are enough).

    Merchant and terminal ids number ``name_base + index * name_step``: the parts of a
    sharded run (``streams.simulator.shards``) get disjoint ids.
    """
    if merchants < 1 or terminals < 1 or cards < 1:
        raise ValueError("--merchants, --terminals and --cards must be >= 1")
    weights = [market.weight for market in MARKETS]
    quantiles = {market.currency: amount_quantiles(market) for market in MARKETS}
    merchant_list: list[Merchant] = []
    for index in range(merchants):
        market = rng.choices(MARKETS, weights)[0]
        merchant_list.append(
            Merchant(
                merchant_id=f"M{market.country}{name_base + index * name_step:06d}",
                market=market,
                offset_text=offset_suffix(market.offset_minutes),
                amounts=quantiles[market.currency],
            )
        )
    skew_limit = int(min(max_clock_skew_s, 120.0) * 1000)
    start_day = start_ms // MS_PER_DAY
    terminal_list: list[Terminal] = []
    for index in range(terminals):
        merchant = (
            merchant_list[index]
            if index < merchants
            else merchant_list[int(rng.random() * merchants)]
        )
        resets = rng.random() < stan_reset_share
        if rng.random() < stan_near_wrap_share:
            stan = STAN_MAX - 1 - int(rng.random() * 40)
        elif resets:
            stan = int(rng.random() * 400)  # reset at the last midnight, a few sales since
        else:
            stan = int(rng.random() * STAN_MAX)
        terminal_list.append(
            Terminal(
                index=index,
                terminal_id=f"T{merchant.market.country}{name_base + index * name_step:05d}",
                merchant=merchant,
                skew_ms=int(rng.uniform(-skew_limit, skew_limit)),
                timeout_ms=rng.randint(20, 60) * 1000,
                ms_transmitted=rng.random() < ms_transmitted_share,
                resets_daily=resets,
                stan=stan,
                day=start_day,
            )
        )
    card_list = []
    for _ in range(cards):
        token = _token(rng)
        while LONG_DIGIT_RUN.search(token):
            token = _token(rng)
        card_list.append(Card(token, rng.random() < dual_message_share))
    return Fleet(merchant_list, terminal_list, card_list)
